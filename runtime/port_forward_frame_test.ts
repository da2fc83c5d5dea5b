// The port-forward frame codec: encodings byte for byte, decoding across arbitrary chunk boundaries, and every
// malformed input the helper and the daemon refuse.
import { InvalidArgument } from "../lib/errors.ts";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import {
  encodeError,
  encodeFrame,
  encodeOpen,
  encodeReady,
  encodeWindow,
  errorText,
  type Frame,
  FrameDecoder,
  FrameType,
  FROM_DAEMON,
  FROM_HELPER,
  MAX_ERROR_BYTES,
  MAX_FRAME_PAYLOAD,
  payloadNumber,
  WINDOW_BYTES,
} from "./port_forward_frame.ts";

const bytes = (...b: number[]) => new Uint8Array(b);
const text = (s: string) => new TextEncoder().encode(s);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

Deno.test("encode", async (t) => {
  const cases: [string, Uint8Array, number[]][] = [
    ["OPEN port 8080", encodeOpen(1, 8080), [1, 0, 0, 0, 1, 0, 0, 0, 2, 0x1f, 0x90]],
    ["OPENED, id past 2^31", encodeFrame(FrameType.OPENED, 0x80000001), [2, 0x80, 0, 0, 1, 0, 0, 0, 0]],
    ["DATA", encodeFrame(FrameType.DATA, 258, text("hi")), [3, 0, 0, 1, 2, 0, 0, 0, 2, 0x68, 0x69]],
    ["CLOSE_WRITE", encodeFrame(FrameType.CLOSE_WRITE, 7), [4, 0, 0, 0, 7, 0, 0, 0, 0]],
    ["CLOSE", encodeFrame(FrameType.CLOSE, 7), [5, 0, 0, 0, 7, 0, 0, 0, 0]],
    ["ERROR", encodeError(3, "no"), [6, 0, 0, 0, 3, 0, 0, 0, 2, 0x6e, 0x6f]],
    ["CLOSED", encodeFrame(FrameType.CLOSED, 0xffffffff), [7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]],
    ["WINDOW 65536", encodeWindow(2, 65536), [8, 0, 0, 0, 2, 0, 0, 0, 4, 0, 1, 0, 0]],
    ["READY version 1", encodeReady(), [9, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]],
  ];
  for (const [name, got, want] of cases) await t.step(name, () => assertEquals([...got], want));

  await t.step("ERROR is cut to MAX_ERROR_BYTES on a character boundary", () => {
    const f = encodeError(1, "é".repeat(MAX_ERROR_BYTES));
    assertEquals(f.byteLength - 9, MAX_ERROR_BYTES);
    const [frame] = new FrameDecoder(FROM_HELPER).push(f);
    assertEquals(errorText(frame!), "é".repeat(MAX_ERROR_BYTES / 2));
  });

  const refused: [string, () => unknown][] = [
    ["payload past the maximum", () => encodeFrame(FrameType.DATA, 1, new Uint8Array(MAX_FRAME_PAYLOAD + 1))],
    ["negative id", () => encodeFrame(FrameType.CLOSE, -1)],
    ["id past u32", () => encodeFrame(FrameType.CLOSE, 2 ** 32)],
    ["port 0", () => encodeOpen(1, 0)],
    ["port 65536", () => encodeOpen(1, 65536)],
    ["window 0", () => encodeWindow(1, 0)],
    ["window past WINDOW_BYTES", () => encodeWindow(1, WINDOW_BYTES + 1)],
  ];
  for (const [name, fn] of refused) await t.step(`refused: ${name}`, () => void assertThrows(fn, RangeError));
});

Deno.test("FrameDecoder: frames across any chunking", async (t) => {
  const stream = concat([
    encodeOpen(1, 80),
    encodeFrame(FrameType.DATA, 1, new Uint8Array(MAX_FRAME_PAYLOAD).fill(7)),
    encodeWindow(1, 100),
    encodeFrame(FrameType.CLOSE_WRITE, 1),
    encodeFrame(FrameType.CLOSE, 2),
  ]);
  const want = (frames: Frame[]) => {
    assertEquals(frames.map((f) => [f.type, f.id, f.payload.byteLength]), [
      [FrameType.OPEN, 1, 2],
      [FrameType.DATA, 1, MAX_FRAME_PAYLOAD],
      [FrameType.WINDOW, 1, 4],
      [FrameType.CLOSE_WRITE, 1, 0],
      [FrameType.CLOSE, 2, 0],
    ]);
    assertEquals(payloadNumber(frames[0]!), 80);
    assertEquals(payloadNumber(frames[2]!), 100);
    assertEquals(frames[1]!.payload.every((b) => b === 7), true);
  };
  for (const size of [1, 2, 9, 10, 4096, stream.byteLength]) {
    await t.step(`chunks of ${size}`, () => {
      const d = new FrameDecoder(FROM_DAEMON);
      const frames: Frame[] = [];
      for (let off = 0; off < stream.byteLength; off += size) frames.push(...d.push(stream.slice(off, off + size)));
      want(frames);
      // Payloads own their buffers: a consumer may transfer one without touching the others.
      for (const f of frames) {
        assertEquals(f.payload.byteOffset === 0 && f.payload.buffer.byteLength, f.payload.byteLength);
      }
      assertEquals(d.heldBytes, 0);
    });
  }
  await t.step("an unfinished frame is held", () => {
    const d = new FrameDecoder(FROM_HELPER);
    assertEquals(d.push(encodeReady().subarray(0, 10)), []);
    assertEquals(d.heldBytes, 10);
  });
});

Deno.test("FrameDecoder: malformed input", async (t) => {
  const header = (type: number, id: number, length: number) => {
    const h = new Uint8Array(9);
    const v = new DataView(h.buffer);
    v.setUint8(0, type);
    v.setUint32(1, id);
    v.setUint32(5, length);
    return h;
  };
  const cases: [string, readonly FrameType[], Uint8Array, string][] = [
    ["unknown type", FROM_DAEMON, header(99, 1, 0), "unexpected frame type 99"],
    ["helper type sent by the daemon", FROM_DAEMON, encodeFrame(FrameType.OPENED, 1), "unexpected frame OPENED"],
    ["daemon type sent by the helper", FROM_HELPER, encodeOpen(1, 80), "unexpected frame OPEN"],
    ["length past the maximum (header alone)", FROM_DAEMON, header(3, 1, MAX_FRAME_PAYLOAD + 1), "exceeds"],
    ["OPEN with 3 bytes", FROM_DAEMON, encodeFrame(FrameType.OPEN, 1, bytes(0, 80, 0)), "expected 2"],
    ["OPEN to port 0", FROM_DAEMON, encodeFrame(FrameType.OPEN, 1, bytes(0, 0)), "port 0"],
    ["empty DATA", FROM_DAEMON, encodeFrame(FrameType.DATA, 1), "empty payload"],
    ["CLOSE with a payload", FROM_DAEMON, encodeFrame(FrameType.CLOSE, 1, bytes(1)), "expected none"],
    ["CLOSE_WRITE with a payload", FROM_HELPER, encodeFrame(FrameType.CLOSE_WRITE, 1, bytes(1)), "expected none"],
    ["WINDOW of 0", FROM_DAEMON, encodeFrame(FrameType.WINDOW, 1, bytes(0, 0, 0, 0)), "increment 0"],
    ["WINDOW too large", FROM_DAEMON, encodeFrame(FrameType.WINDOW, 1, bytes(0, 0x10, 0, 1)), "increment"],
    ["WINDOW of 2 bytes", FROM_HELPER, encodeFrame(FrameType.WINDOW, 1, bytes(0, 1)), "expected 4"],
    ["OPEN on id 0", FROM_DAEMON, encodeOpen(0, 80), "id 0 is reserved"],
    ["READY on a connection id", FROM_HELPER, encodeFrame(FrameType.READY, 5, bytes(0, 1)), "id must be 0"],
    ["empty ERROR", FROM_HELPER, encodeFrame(FrameType.ERROR, 1), "empty message"],
  ];
  for (const [name, accepted, input, message] of cases) {
    await t.step(name, () => void assertThrows(() => new FrameDecoder(accepted).push(input), InvalidArgument, message));
  }
  await t.step("ERROR that is not UTF-8", () => {
    const [frame] = new FrameDecoder(FROM_HELPER).push(encodeFrame(FrameType.ERROR, 1, bytes(0xff)));
    assertThrows(() => errorText(frame!), InvalidArgument, "not UTF-8");
  });
});
