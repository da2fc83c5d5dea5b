// Table tests for SPDY/3.1 framing: every frame type encoded to, and parsed back from, exact bytes; fields the
// encoder refuses.
import { InvalidArgument } from "../../lib/errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { encodeFrame, FLAG_FIN, FLAG_UNIDIRECTIONAL, rstStatusName, type SpdyFrame } from "./spdy_frame.ts";
import { SpdyFrameParser } from "./spdy_frame_parser.ts";

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
}

/** The frames of every type, with their exact bytes; the parser's tests reuse them. */
export const CASES: { name: string; frame: SpdyFrame; wire: string }[] = [
  {
    name: "DATA with FIN",
    frame: { type: "data", streamId: 1, flags: FLAG_FIN, data: hex("6869") },
    wire: "00000001 01000002 6869",
  },
  {
    name: "empty DATA on the highest stream ID",
    frame: { type: "data", streamId: 0x7fffffff, flags: 0, data: new Uint8Array() },
    wire: "7fffffff 00000000",
  },
  {
    name: "SYN_STREAM",
    frame: {
      type: "syn_stream",
      streamId: 1,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      flags: 0,
      headerBlock: hex("aabb"),
    },
    wire: "80030001 0000000c 00000001 00000000 0000 aabb",
  },
  {
    name: "SYN_STREAM with priority, slot, association and both flags",
    frame: {
      type: "syn_stream",
      streamId: 3,
      associatedStreamId: 1,
      priority: 7,
      slot: 2,
      flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
      headerBlock: hex("01"),
    },
    wire: "80030001 0300000b 00000003 00000001 e002 01",
  },
  {
    name: "SYN_REPLY with FIN",
    frame: { type: "syn_reply", streamId: 3, flags: FLAG_FIN, headerBlock: hex("cc") },
    wire: "80030002 01000005 00000003 cc",
  },
  {
    name: "RST_STREAM CANCEL",
    frame: { type: "rst_stream", streamId: 5, status: 5 },
    wire: "80030003 00000008 00000005 00000005",
  },
  {
    name: "SETTINGS with one persisted entry",
    frame: { type: "settings", flags: 0, entries: [{ flags: 1, id: 7, value: 65536 }] },
    wire: "80030004 0000000c 00000001 01000007 00010000",
  },
  {
    name: "SETTINGS with CLEAR and no entries",
    frame: { type: "settings", flags: 1, entries: [] },
    wire: "80030004 01000004 00000000",
  },
  { name: "PING", frame: { type: "ping", id: 1 }, wire: "80030006 00000004 00000001" },
  { name: "PING with a 32-bit ID", frame: { type: "ping", id: 0xfffffffe }, wire: "80030006 00000004 fffffffe" },
  {
    name: "GOAWAY",
    frame: { type: "goaway", lastGoodStreamId: 7, status: 1 },
    wire: "80030007 00000008 00000007 00000001",
  },
  {
    name: "HEADERS with FIN",
    frame: { type: "headers", streamId: 1, flags: FLAG_FIN, headerBlock: hex("ddee") },
    wire: "80030008 01000006 00000001 ddee",
  },
  {
    name: "WINDOW_UPDATE for the connection",
    frame: { type: "window_update", streamId: 0, delta: 0x10000 },
    wire: "80030009 00000008 00000000 00010000",
  },
  {
    name: "an unknown control frame (CREDENTIAL, type 10)",
    frame: { type: "unknown", controlType: 10, flags: 0, payload: hex("0102") },
    wire: "8003000a 00000002 0102",
  },
];

Deno.test("spdy frames encode to and decode from exact bytes", async (t) => {
  for (const c of CASES) {
    await t.step(c.name, () => {
      assertEquals(encodeFrame(c.frame), hex(c.wire));
      assertEquals(new SpdyFrameParser().push(hex(c.wire)), [c.frame]);
    });
  }
});

Deno.test("spdy frame encoder refuses fields out of range", async (t) => {
  const BAD: { name: string; frame: SpdyFrame; includes: string }[] = [
    { name: "stream 0 DATA", frame: { type: "data", streamId: 0, flags: 0, data: hex("") }, includes: "stream ID 0" },
    {
      name: "a 32-bit stream ID",
      frame: { type: "rst_stream", streamId: 0x80000000, status: 1 },
      includes: "stream ID 2147483648",
    },
    { name: "RST status 0", frame: { type: "rst_stream", streamId: 1, status: 0 }, includes: "status 0" },
    { name: "PING ID 0", frame: { type: "ping", id: 0 }, includes: "PING ID 0" },
    {
      name: "WINDOW_UPDATE delta 0",
      frame: { type: "window_update", streamId: 1, delta: 0 },
      includes: "window delta 0",
    },
    {
      name: "priority 8",
      frame: {
        type: "syn_stream",
        streamId: 1,
        associatedStreamId: 0,
        priority: 8,
        slot: 0,
        flags: 0,
        headerBlock: hex(""),
      },
      includes: "priority 8",
    },
    {
      name: "DATA past 24 bits",
      frame: { type: "data", streamId: 1, flags: 0, data: new Uint8Array(0x1000000) },
      includes: "payload length 16777216",
    },
    { name: "flags past 8 bits", frame: { type: "data", streamId: 1, flags: 256, data: hex("") }, includes: "flags" },
  ];
  for (const b of BAD) {
    await t.step(b.name, () => {
      assertThrows(() => encodeFrame(b.frame), InvalidArgument, b.includes);
    });
  }
});

Deno.test("rstStatusName names the spec's codes", () => {
  assertEquals(rstStatusName(5), "CANCEL");
  assertEquals(rstStatusName(7), "FLOW_CONTROL_ERROR");
  assertEquals(rstStatusName(42), "status 42");
});
