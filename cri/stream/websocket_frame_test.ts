// Tests of the WebSocket wire format: the examples of RFC 6455 Section 5.7, every length form, frames split at
// every byte, each protocol violation with its close code, message reassembly and close payloads.
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import {
  CloseCode,
  decodeClosePayload,
  encodeClosePayload,
  encodeFrame,
  type Frame,
  FrameDecoder,
  MessageAssembler,
  Opcode,
  WebSocketProtocolError,
} from "./websocket_frame.ts";

const enc = new TextEncoder();
const hex = (...b: number[]) => new Uint8Array(b);
const MASK = hex(0x37, 0xfa, 0x21, 0x3d);

function decodeAll(bytes: Uint8Array, role: "server" | "client", max = 1 << 20): Frame[] {
  const d = new FrameDecoder({ role, maxPayloadBytes: max });
  d.push(bytes);
  const out: Frame[] = [];
  for (let f = d.next(); f; f = d.next()) out.push(f);
  assertEquals(d.buffered, 0);
  return out;
}

function failure(fn: () => unknown): number {
  const err = assertThrows(fn, WebSocketProtocolError);
  return (err as WebSocketProtocolError).code;
}

Deno.test("websocket frame: RFC 6455 Section 5.7 examples", async (t) => {
  const hello = enc.encode("Hello");
  await t.step("an unmasked text frame", () => {
    const wire = hex(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
    assertEquals(encodeFrame({ fin: true, opcode: Opcode.text, payload: hello }), wire);
    assertEquals(decodeAll(wire, "client"), [{ fin: true, opcode: Opcode.text, payload: hello }]);
  });
  await t.step("a masked text frame", () => {
    const wire = hex(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
    assertEquals(encodeFrame({ fin: true, opcode: Opcode.text, payload: hello }, MASK), wire);
    assertEquals(decodeAll(wire, "server"), [{ fin: true, opcode: Opcode.text, payload: hello }]);
  });
  await t.step("a fragmented unmasked text message", () => {
    const frames = decodeAll(hex(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f), "client");
    assertEquals(frames.map((f) => [f.fin, f.opcode, f.payload.length]), [[false, 1, 3], [true, 0, 2]]);
    const a = new MessageAssembler(100);
    assertEquals(a.add(frames[0]!), undefined);
    assertEquals(a.add(frames[1]!), { binary: false, data: hello });
  });
  await t.step("ping and pong", () => {
    assertEquals(encodeFrame({ fin: true, opcode: Opcode.ping, payload: hello })[0], 0x89);
    assertEquals(encodeFrame({ fin: true, opcode: Opcode.pong, payload: hello }, MASK).subarray(0, 2), hex(0x8a, 0x85));
  });
  await t.step("256 bytes and 64 KiB binary frames use the 16- and 64-bit lengths", () => {
    const f256 = encodeFrame({ fin: true, opcode: Opcode.binary, payload: new Uint8Array(256) });
    assertEquals(f256.subarray(0, 4), hex(0x82, 0x7e, 0x01, 0x00));
    const f64k = encodeFrame({ fin: true, opcode: Opcode.binary, payload: new Uint8Array(65536) });
    assertEquals(f64k.subarray(0, 10), hex(0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0));
  });
});

Deno.test("websocket frame: round trips", async (t) => {
  for (const len of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    await t.step(`${len} bytes, masked and not`, () => {
      const payload = crypto.getRandomValues(new Uint8Array(Math.min(len, 65536)));
      const full = new Uint8Array(len);
      full.set(payload);
      const frame = { fin: len % 2 === 0, opcode: Opcode.binary, payload: full };
      assertEquals(decodeAll(encodeFrame(frame), "client"), [frame]);
      assertEquals(decodeAll(encodeFrame(frame, MASK), "server"), [frame]);
    });
  }

  await t.step("three frames split at every byte decode the same", () => {
    const frames: Frame[] = [
      { fin: false, opcode: Opcode.text, payload: enc.encode("ab") },
      { fin: true, opcode: Opcode.ping, payload: enc.encode("p") },
      { fin: true, opcode: Opcode.continuation, payload: new Uint8Array(300).fill(7) },
    ];
    const wire = new Uint8Array(frames.flatMap((f) => [...encodeFrame(f, MASK)]));
    for (let i = 0; i <= wire.length; i++) {
      const d = new FrameDecoder({ role: "server", maxPayloadBytes: 1000 });
      const out: Frame[] = [];
      for (const part of [wire.subarray(0, i), wire.subarray(i)]) {
        d.push(part);
        for (let f = d.next(); f; f = d.next()) out.push(f);
      }
      assertEquals(out, frames);
    }
  });

  await t.step("the encoder refuses what may not be sent", () => {
    assertThrows(() => encodeFrame({ fin: true, opcode: Opcode.ping, payload: new Uint8Array(126) }), RangeError);
    assertThrows(() => encodeFrame({ fin: false, opcode: Opcode.close, payload: new Uint8Array() }), RangeError);
    assertThrows(() => encodeFrame({ fin: true, opcode: Opcode.text, payload: new Uint8Array() }, hex(1)), RangeError);
  });
});

Deno.test("websocket frame: violations fail with their close codes", async (t) => {
  const masked = (b0: number, len: number, extra: number[] = []) => hex(b0, 0x80 | len, ...extra, 1, 2, 3, 4);
  const cases: [string, Uint8Array, "server" | "client", number][] = [
    ["RSV1 set", masked(0xc1, 0), "server", 1002],
    ["RSV3 set", masked(0x91, 0), "server", 1002],
    ["opcode 3", masked(0x83, 0), "server", 1002],
    ["opcode 0xb", masked(0x8b, 0), "server", 1002],
    ["unmasked frame to a server", hex(0x81, 0x00), "server", 1002],
    ["masked frame to a client", masked(0x81, 0), "client", 1002],
    ["fragmented ping", masked(0x09, 0), "server", 1002],
    ["control frame of 126 bytes", masked(0x89, 126, [0, 126]), "server", 1002],
    ["16-bit length under 126", masked(0x82, 126, [0, 125]), "server", 1002],
    ["64-bit length under 65536", masked(0x82, 127, [0, 0, 0, 0, 0, 0, 0xff, 0xff]), "server", 1002],
    ["64-bit length with the top bit", masked(0x82, 127, [0x80, 0, 0, 0, 0, 0, 0, 0]), "server", 1002],
    ["frame over the cap, before its payload", masked(0x82, 127, [0, 0, 0, 1, 0, 0, 0, 0]), "server", 1009],
    ["16-bit frame over the cap", masked(0x82, 126, [0x10, 0]), "server", 1009],
  ];
  for (const [name, wire, role, code] of cases) {
    await t.step(`${name}: ${code}`, () => {
      const d = new FrameDecoder({ role, maxPayloadBytes: 1000 });
      d.push(wire);
      assertEquals(failure(() => d.next()), code);
    });
  }
});

Deno.test("websocket frame: message reassembly", async (t) => {
  const frame = (fin: boolean, opcode: number, data: string | Uint8Array): Frame => ({
    fin,
    opcode,
    payload: typeof data === "string" ? enc.encode(data) : data,
  });

  await t.step("binary fragments join; text must be UTF-8 as a whole", () => {
    const a = new MessageAssembler(100);
    assertEquals(a.add(frame(false, Opcode.binary, hex(0xff))), undefined);
    assertEquals(a.add(frame(false, Opcode.continuation, hex())), undefined);
    assertEquals(a.add(frame(true, Opcode.continuation, hex(0xfe))), { binary: true, data: hex(0xff, 0xfe) });
    // "é" split across two fragments is fine.
    assertEquals(a.add(frame(false, Opcode.text, hex(0xc3))), undefined);
    assertEquals(a.add(frame(true, Opcode.continuation, hex(0xa9))), { binary: false, data: hex(0xc3, 0xa9) });
    assertEquals(failure(() => a.add(frame(true, Opcode.text, hex(0xc3)))), CloseCode.invalidPayload);
  });

  await t.step("broken sequences are 1002", () => {
    assertEquals(failure(() => new MessageAssembler(10).add(frame(true, Opcode.continuation, "x"))), 1002);
    const a = new MessageAssembler(10);
    a.add(frame(false, Opcode.text, "x"));
    assertEquals(failure(() => a.add(frame(true, Opcode.binary, "y"))), 1002);
  });

  await t.step("a message over the cap across fragments is 1009", () => {
    const a = new MessageAssembler(10);
    a.add(frame(false, Opcode.binary, new Uint8Array(6)));
    assertEquals(failure(() => a.add(frame(true, Opcode.continuation, new Uint8Array(5)))), 1009);
    assertEquals(new MessageAssembler(10).add(frame(true, Opcode.binary, new Uint8Array(10)))?.data.length, 10);
  });
});

Deno.test("websocket frame: close payloads", async (t) => {
  await t.step("round trip, and an empty payload means 1005", () => {
    assertEquals(decodeClosePayload(encodeClosePayload(4000, "bye é")), { code: 4000, reason: "bye é" });
    assertEquals(encodeClosePayload(1000), hex(0x03, 0xe8));
    assertEquals(decodeClosePayload(hex()), { code: 1005, reason: "" });
  });
  await t.step("codes that may not appear on the wire are 1002", () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]) {
      assertEquals(failure(() => decodeClosePayload(hex(code >> 8, code & 0xff))), 1002, `code ${code}`);
      assertThrows(() => encodeClosePayload(code), RangeError);
    }
    for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]) {
      assertEquals(decodeClosePayload(hex(code >> 8, code & 0xff)).code, code);
    }
  });
  await t.step("a 1-byte payload is 1002, a non-UTF-8 reason 1007, a long reason is refused", () => {
    assertEquals(failure(() => decodeClosePayload(hex(3))), 1002);
    assertEquals(failure(() => decodeClosePayload(hex(0x03, 0xe8, 0xff))), 1007);
    assertThrows(() => encodeClosePayload(1000, "x".repeat(124)), RangeError);
    assert(encodeClosePayload(1000, "x".repeat(123)).length === 125);
  });
});
