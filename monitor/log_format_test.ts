// Table tests for the CRI log format: framing into P/F records, rendering, parsing and joining.
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  encodeRecords,
  formatTimestamp,
  frameLines,
  joinCriLog,
  LineFramer,
  type LogPart,
  nowNs,
  parseCriLogLine,
} from "./log_format.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function show(parts: LogPart[]): string[] {
  return parts.map((p) => `${p.tag}:${dec.decode(p.content)}`);
}

Deno.test("frameLines", async (t) => {
  const cases: {
    name: string;
    pending?: string;
    chunk: string;
    max?: number;
    eof?: boolean;
    parts: string[];
    rest: string;
  }[] = [
    { name: "one full line", chunk: "hello\n", parts: ["F:hello"], rest: "" },
    { name: "two lines", chunk: "a\nb\n", parts: ["F:a", "F:b"], rest: "" },
    { name: "empty line", chunk: "\n", parts: ["F:"], rest: "" },
    { name: "tail held", chunk: "a\nbc", parts: ["F:a"], rest: "bc" },
    { name: "pending joined", pending: "ab", chunk: "c\nd", parts: ["F:abc"], rest: "d" },
    { name: "eof flushes tail as F", chunk: "a\nbc", eof: true, parts: ["F:a", "F:bc"], rest: "" },
    { name: "eof with nothing held", chunk: "", eof: true, parts: [], rest: "" },
    { name: "eof flushes pending", pending: "xy", chunk: "", eof: true, parts: ["F:xy"], rest: "" },
    { name: "line of exactly max is one F", chunk: "abcd\n", max: 4, parts: ["F:abcd"], rest: "" },
    { name: "max+1 is P then F", chunk: "abcde\n", max: 4, parts: ["P:abcd", "F:e"], rest: "" },
    { name: "two max is P then F", chunk: "abcdefgh\n", max: 4, parts: ["P:abcd", "F:efgh"], rest: "" },
    { name: "long line split thrice", chunk: "abcdefghij\n", max: 4, parts: ["P:abcd", "P:efgh", "F:ij"], rest: "" },
    { name: "tail of exactly max is held", chunk: "abcd", max: 4, parts: [], rest: "abcd" },
    { name: "tail over max cut", chunk: "abcdef", max: 4, parts: ["P:abcd"], rest: "ef" },
    { name: "held max then newline", pending: "abcd", chunk: "\n", max: 4, parts: ["F:abcd"], rest: "" },
    { name: "held max then more", pending: "abcd", chunk: "e\n", max: 4, parts: ["P:abcd", "F:e"], rest: "" },
    { name: "carriage return kept", chunk: "a\r\n", parts: ["F:a\r"], rest: "" },
    { name: "eof long tail", chunk: "abcdefghi", max: 4, eof: true, parts: ["P:abcd", "P:efgh", "F:i"], rest: "" },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const got = frameLines(enc.encode(c.pending ?? ""), enc.encode(c.chunk), c.max ?? 16, c.eof ?? false);
      assertEquals(show(got.parts), c.parts);
      assertEquals(dec.decode(got.rest), c.rest);
    });
  }
  await t.step("rejects a bad maximum", () => {
    assertThrows(() => frameLines(new Uint8Array(), new Uint8Array(), 0), RangeError);
  });
});

Deno.test("LineFramer gives the same records however the input is chunked", async (t) => {
  const input = "shrt\n" + "x".repeat(10) + "\n" + "y".repeat(8) + "\n\nlast-no-newline";
  const want = ["F:shrt", "P:xxxx", "P:xxxx", "F:xx", "P:yyyy", "F:yyyy", "F:", "P:last", "P:-no-", "P:newl", "F:ine"];
  for (const size of [1, 2, 3, 4, 5, 7, 64]) {
    await t.step(`chunks of ${size}`, () => {
      const f = new LineFramer(4);
      const bytes = enc.encode(input);
      const parts: LogPart[] = [];
      for (let i = 0; i < bytes.byteLength; i += size) {
        // Copies, as a reader reusing its buffer would leave nothing stable behind.
        for (const p of f.push(bytes.slice(i, i + size))) parts.push({ tag: p.tag, content: p.content.slice() });
        assert(f.pendingBytes <= 4);
      }
      parts.push(...f.end());
      assertEquals(show(parts), want);
    });
  }
});

Deno.test("formatTimestamp", async (t) => {
  const cases: [bigint, string][] = [
    [0n, "1970-01-01T00:00:00.000000000Z"],
    [1n, "1970-01-01T00:00:00.000000001Z"],
    [1_795_356_485_123_456_789n, "2026-11-22T14:08:05.123456789Z"],
    [1_795_356_485_000_000_000n, "2026-11-22T14:08:05.000000000Z"],
  ];
  for (const [ns, want] of cases) {
    await t.step(want, () => assertEquals(formatTimestamp(ns), want));
  }
  await t.step("nowNs is near Date.now and does not go backwards", () => {
    const a = nowNs();
    const b = nowNs();
    assert(b >= a);
    const diffMs = Number(a / 1_000_000n) - Date.now();
    assert(Math.abs(diffMs) < 1000, `clock skew ${diffMs} ms`);
  });
});

Deno.test("encodeRecords and parseCriLogLine round trip", async (t) => {
  const ts = "2026-11-22T13:33:39.123456789Z";
  await t.step("renders each part on its own line", () => {
    const parts: LogPart[] = [{ tag: "P", content: enc.encode("ab") }, { tag: "F", content: enc.encode("c d") }];
    assertEquals(dec.decode(encodeRecords(ts, "stderr", parts)), `${ts} stderr P ab\n${ts} stderr F c d\n`);
  });
  const cases: { line: string; want?: ReturnType<typeof parseCriLogLine>; error?: string }[] = [
    { line: `${ts} stdout F hello world`, want: { timestamp: ts, stream: "stdout", tag: "F", content: "hello world" } },
    { line: `${ts} stderr P `, want: { timestamp: ts, stream: "stderr", tag: "P", content: "" } },
    {
      line: `${ts} stdout F:x  two  spaces`,
      want: { timestamp: ts, stream: "stdout", tag: "F", content: " two  spaces" },
    },
    {
      line: "2026-11-22T13:33:39.1+02:00 stdout F a",
      want: { timestamp: "2026-11-22T13:33:39.1+02:00", stream: "stdout", tag: "F", content: "a" },
    },
    { line: `${ts} stdout F`, error: "fewer than four fields" },
    { line: `yesterday stdout F a`, error: "bad timestamp" },
    { line: `${ts} stdin F a`, error: "bad stream" },
    { line: `${ts} stdout X a`, error: "bad tag" },
  ];
  for (const c of cases) {
    await t.step(c.line, () => {
      if (c.error !== undefined) assertThrows(() => parseCriLogLine(c.line), TypeError, c.error);
      else assertEquals(parseCriLogLine(c.line), c.want);
    });
  }
});

Deno.test("joinCriLog joins P parts per stream", () => {
  const ts = "2026-11-22T13:33:39.123456789Z";
  const text = [
    `${ts} stdout P ab`,
    `${ts} stderr F err`,
    `${ts} stdout P cd`,
    `${ts} stdout F ef`,
    `${ts} stdout F `,
    "",
  ].join("\n");
  assertEquals(joinCriLog(text), [
    { stream: "stderr", line: "err" },
    { stream: "stdout", line: "abcdef" },
    { stream: "stdout", line: "" },
  ]);
});
