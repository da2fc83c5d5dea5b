// Tests for the incremental SPDY/3.1 frame parser: any split of the input yields the same frames, partial frames
// wait, and every malformed header is refused with the problem named.
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { type SpdyFrame, SpdyProtocolError } from "./spdy_frame.ts";
import { SpdyFrameParser } from "./spdy_frame_parser.ts";
import { CASES } from "./spdy_frame_test.ts";

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
}

Deno.test("spdy frame parser", async (t) => {
  const wire = hex(CASES.map((c) => c.wire).join(""));
  const all = CASES.map((c) => c.frame);

  await t.step("one byte at a time yields every frame once, in order", () => {
    const p = new SpdyFrameParser();
    const got: SpdyFrame[] = [];
    for (const b of wire) got.push(...p.push(Uint8Array.of(b)));
    assertEquals(got, all);
    assertEquals(p.bufferedBytes, 0);
  });

  await t.step("all at once, and split at odd places", () => {
    assertEquals(new SpdyFrameParser().push(wire), all);
    const p = new SpdyFrameParser();
    const got = [...p.push(wire.subarray(0, 13)), ...p.push(wire.subarray(13, 50)), ...p.push(wire.subarray(50))];
    assertEquals(got, all);
  });

  await t.step("a partial frame stays buffered", () => {
    const p = new SpdyFrameParser();
    assertEquals(p.push(hex("80030006 000000")), []);
    assertEquals(p.bufferedBytes, 7);
    assertEquals(p.push(hex("04 000000")), []);
    assertEquals(p.push(hex("09")), [{ type: "ping", id: 9 }]);
  });

  await t.step("reserved bits in stream IDs are ignored", () => {
    assertEquals(new SpdyFrameParser().push(hex("80030003 00000008 80000005 00000001")), [
      { type: "rst_stream", streamId: 5, status: 1 },
    ]);
  });

  const BAD: { name: string; wire: string; problem: string; includes: string; limits?: object }[] = [
    { name: "version 2", wire: "80020006 00000004 00000001", problem: "version", includes: "version 2" },
    { name: "version 4", wire: "80040001 0000000a", problem: "version", includes: "expected 3" },
    {
      name: "a DATA length past the limit, refused from the header alone",
      wire: "00000001 00100001",
      problem: "frame-too-large",
      includes: "1048577 bytes",
    },
    {
      name: "a control length past a configured limit",
      wire: "80030001 00002001",
      problem: "frame-too-large",
      includes: "SYN_STREAM frame of 8193 bytes exceeds the limit of 8192",
      limits: { maxControlBytes: 8192 },
    },
    {
      name: "the largest 24-bit length on an unknown type",
      wire: "8003ffff 00ffffff",
      problem: "frame-too-large",
      includes: "type 65535",
    },
    { name: "PING of 8 bytes", wire: "80030006 00000008", problem: "frame-length", includes: "expected 4" },
    { name: "RST_STREAM of 4 bytes", wire: "80030003 00000004", problem: "frame-length", includes: "expected 8" },
    { name: "GOAWAY of 12 bytes", wire: "80030007 0000000c", problem: "frame-length", includes: "expected 8" },
    { name: "WINDOW_UPDATE of 0 bytes", wire: "80030009 00000000", problem: "frame-length", includes: "expected 8" },
    { name: "SYN_STREAM of 9 bytes", wire: "80030001 00000009", problem: "frame-length", includes: "at least 10" },
    { name: "SYN_REPLY of 3 bytes", wire: "80030002 00000003", problem: "frame-length", includes: "at least 4" },
    {
      name: "SETTINGS whose count does not match its length",
      wire: "80030004 0000000c 00000002 00000007 00000001",
      problem: "frame-length",
      includes: "for 2 entries",
    },
    { name: "DATA on stream 0", wire: "00000000 00000000", problem: "stream-id", includes: "stream 0" },
    {
      name: "SYN_STREAM on stream 0",
      wire: "80030001 0000000a 00000000 00000000 0000",
      problem: "stream-id",
      includes: "SYN_STREAM",
    },
    {
      name: "RST_STREAM with status 0",
      wire: "80030003 00000008 00000001 00000000",
      problem: "field",
      includes: "status 0",
    },
    {
      name: "WINDOW_UPDATE with delta 0",
      wire: "80030009 00000008 00000001 80000000",
      problem: "field",
      includes: "delta of 0",
    },
  ];
  for (const b of BAD) {
    await t.step(`refuses ${b.name}`, () => {
      const p = new SpdyFrameParser(b.limits);
      const err = assertThrows(() => p.push(hex(b.wire)), SpdyProtocolError, b.includes) as SpdyProtocolError;
      assertEquals(err.problem, b.problem);
      // Once broken, the parser stays broken.
      assertThrows(() => p.push(hex("80030006 00000004 00000001")), SpdyProtocolError, b.includes);
    });
  }

  await t.step("frames before a malformed one are not lost when fed separately", () => {
    const p = new SpdyFrameParser();
    assertEquals(p.push(hex("80030006 00000004 00000001")), [{ type: "ping", id: 1 }]);
    assertThrows(() => p.push(hex("80020006 00000004 00000001")), SpdyProtocolError, "version");
  });
});
