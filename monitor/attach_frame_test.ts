// Table tests of the attach framing: encoding, decoding across arbitrary chunk boundaries, the size cap, refused
// kinds, and the RESIZE and EXIT payloads.
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument, ResourceExhausted } from "../lib/errors.ts";
import {
  DAEMON_FRAME_KINDS,
  encodeDataFrames,
  encodeExit,
  encodeFrame,
  encodeResize,
  FrameDecoder,
  FrameKind,
  MAX_FRAME_PAYLOAD,
  MONITOR_FRAME_KINDS,
  parseExit,
  parseResize,
} from "./attach_frame.ts";
import type { ExitRecord } from "./exit_file.ts";

const enc = new TextEncoder();
const ALL = [...DAEMON_FRAME_KINDS, ...MONITOR_FRAME_KINDS];

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

Deno.test("encodeFrame", async (t) => {
  await t.step("header is kind then big-endian length", () => {
    assertEquals([...encodeFrame(FrameKind.STDERR, enc.encode("hi"))], [2, 0, 0, 0, 2, 104, 105]);
    assertEquals([...encodeFrame(FrameKind.STDIN_CLOSE)], [4, 0, 0, 0, 0]);
    const big = encodeFrame(FrameKind.STDOUT, new Uint8Array(0x010203));
    assertEquals([...big.subarray(0, 5)], [1, 0, 1, 2, 3]);
  });
  await t.step("refuses a payload past the cap", () => {
    encodeFrame(FrameKind.STDOUT, new Uint8Array(MAX_FRAME_PAYLOAD));
    assertThrows(() => encodeFrame(FrameKind.STDOUT, new Uint8Array(MAX_FRAME_PAYLOAD + 1)), RangeError);
  });
  await t.step("data is cut into frames at the cap", () => {
    const frames = encodeDataFrames(FrameKind.STDIN, new Uint8Array(MAX_FRAME_PAYLOAD * 2 + 3).fill(7));
    assertEquals(frames.map((f) => f.byteLength - 5), [MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD, 3]);
    assertEquals(encodeDataFrames(FrameKind.STDIN, new Uint8Array(0)), []);
  });
});

Deno.test("FrameDecoder", async (t) => {
  const frames = [
    encodeFrame(FrameKind.STDOUT, enc.encode("out")),
    encodeFrame(FrameKind.STDERR, enc.encode("")),
    encodeFrame(FrameKind.STDIN_CLOSE),
    encodeFrame(FrameKind.STDIN, new Uint8Array(70_000).fill(9)),
    encodeResize({ cols: 80, rows: 24 }),
  ];
  const stream = concat(frames);
  const want = [[1, 3], [2, 0], [4, 0], [0, 70_000], [5, 21]];

  for (const size of [1, 2, 5, 6, 7, 4096, stream.byteLength]) {
    await t.step(`chunks of ${size} bytes`, () => {
      const d = new FrameDecoder(ALL);
      const got: [number, number][] = [];
      for (let off = 0; off < stream.byteLength; off += size) {
        for (const f of d.push(stream.subarray(off, off + size))) got.push([f.kind, f.payload.byteLength]);
      }
      assertEquals(got, want);
      assertEquals(d.heldBytes, 0);
    });
  }

  await t.step("payloads survive reuse of the read buffer", () => {
    const d = new FrameDecoder(ALL);
    const buf = encodeFrame(FrameKind.STDOUT, enc.encode("keep"));
    const [f] = d.push(buf);
    buf.fill(0);
    assertEquals(new TextDecoder().decode(f!.payload), "keep");
  });

  await t.step("a kind the receiver does not accept ends the stream", () => {
    const d = new FrameDecoder(DAEMON_FRAME_KINDS);
    assertThrows(() => d.push(encodeFrame(FrameKind.STDOUT, enc.encode("x"))), InvalidArgument, "kind 1");
    assertThrows(() => new FrameDecoder(MONITOR_FRAME_KINDS).push(encodeFrame(FrameKind.STDIN)), InvalidArgument);
    assertThrows(() => new FrameDecoder(ALL).push(new Uint8Array([9, 0, 0, 0, 0])), InvalidArgument);
  });

  await t.step("a length past the cap ends the stream at the header", () => {
    const d = new FrameDecoder(ALL);
    assertThrows(() => d.push(new Uint8Array([0, 0, 0x10, 0, 1])), ResourceExhausted);
    assertThrows(
      () => new FrameDecoder(ALL, 10).push(encodeFrame(FrameKind.STDIN, new Uint8Array(11))),
      ResourceExhausted,
    );
  });
});

Deno.test("RESIZE payload", async (t) => {
  const ok: [string, TerminalCase][] = [
    ["plain", { cols: 80, rows: 24 }],
    ["zero", { cols: 0, rows: 0 }],
    ["largest", { cols: 65535, rows: 65535 }],
  ];
  for (const [name, size] of ok) {
    await t.step(`accepts ${name}`, () => {
      const frame = encodeResize(size);
      assertEquals(frame[0], FrameKind.RESIZE);
      assertEquals(parseResize(frame.subarray(5)), size);
    });
  }
  const bad: [string, string, string][] = [
    ["not JSON", "{", "not valid JSON"],
    ["not an object", "[80,24]", "not a JSON object"],
    ["missing rows", `{"cols":80}`, `"rows"`],
    ["negative", `{"cols":-1,"rows":24}`, `"cols"`],
    ["too wide", `{"cols":65536,"rows":24}`, `"cols"`],
    ["fraction", `{"cols":80.5,"rows":24}`, `"cols"`],
    ["string", `{"cols":"80","rows":24}`, `"cols"`],
    ["unknown field", `{"cols":80,"rows":24,"x":1}`, `unknown field "x"`],
    ["bad UTF-8", "\xff", "not valid JSON"],
  ];
  for (const [name, text, part] of bad) {
    await t.step(`refuses ${name}`, () => {
      const bytes = text === "\xff" ? new Uint8Array([0xff]) : enc.encode(text);
      assertThrows(() => parseResize(bytes), InvalidArgument, part);
    });
  }
});

type TerminalCase = { cols: number; rows: number };

Deno.test("EXIT payload", async (t) => {
  const rec: ExitRecord = {
    container_id: "c1",
    exit_code: 137,
    signal: 9,
    finished_at: "2026-11-22T15:00:00.123456789Z",
    reason: "Error",
    oom_killed: false,
  };
  await t.step("round trip", () => {
    const frame = encodeExit(rec);
    assertEquals(frame[0], FrameKind.EXIT);
    assertEquals(parseExit(frame.subarray(5)), rec);
  });
  await t.step("refuses what is not an exit record", () => {
    assertThrows(() => parseExit(enc.encode(`{"container_id":"c1"}`)), InvalidArgument, "not an exit record");
    assertThrows(() => parseExit(enc.encode(`null`)), InvalidArgument);
  });
  assert(true);
});
