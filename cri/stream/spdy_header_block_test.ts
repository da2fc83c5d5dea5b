// Table tests for the uncompressed SPDY/3.1 name/value header block: exact bytes, multiple values, and every
// malformed block a peer could send.
import { InvalidArgument } from "../../lib/errors.ts";
import { assertEquals, assertThrows } from "../../tests/assert.ts";
import { SpdyProtocolError } from "./spdy_frame.ts";
import { decodeHeaderBlock, encodeHeaderBlock, headerValues } from "./spdy_header_block.ts";

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
}

Deno.test("spdy header block round trips through exact bytes", async (t) => {
  const CASES: {
    name: string;
    headers: Record<string, string | string[]>;
    decoded: Record<string, string>;
    wire: string;
  }[] = [
    { name: "no headers", headers: {}, decoded: {}, wire: "00000000" },
    {
      name: "one pair",
      headers: { streamtype: "error" },
      decoded: { streamtype: "error" },
      wire: "00000001 0000000a 73747265616d74797065 00000005 6572726f72",
    },
    {
      name: "an empty value and a pseudo-header",
      headers: { ":path": "", port: "80" },
      decoded: { ":path": "", port: "80" },
      wire: "00000002 00000005 3a70617468 00000000 00000004 706f7274 00000002 3830",
    },
    {
      name: "several values go NUL-separated",
      headers: { port: ["80", "443"] },
      decoded: { port: "80\u0000443" },
      wire: "00000001 00000004 706f7274 00000006 3830 00 343433",
    },
  ];
  for (const c of CASES) {
    await t.step(c.name, () => {
      assertEquals(encodeHeaderBlock(c.headers), hex(c.wire));
      assertEquals(decodeHeaderBlock(hex(c.wire)), c.decoded);
    });
  }
  await t.step("headerValues splits a NUL-separated value", () => {
    assertEquals(headerValues("80\u0000443"), ["80", "443"]);
    assertEquals(headerValues("x"), ["x"]);
  });
  await t.step("a name such as __proto__ stays an own property", () => {
    const h = decodeHeaderBlock(encodeHeaderBlock(JSON.parse('{"__proto__":"x"}')));
    assertEquals(Object.getPrototypeOf(h), Object.prototype);
    assertEquals(Object.keys(h), ["__proto__"]);
  });
});

Deno.test("spdy header block encoder refuses what peers must reject", async (t) => {
  const BAD: { name: string; headers: Record<string, string | string[]>; includes: string; max?: number }[] = [
    { name: "an upper-case name", headers: { streamType: "x" }, includes: "not lower case" },
    { name: "an empty name", headers: { "": "x" }, includes: "empty" },
    { name: "a space in a name", headers: { "a b": "x" }, includes: "printable ASCII" },
    { name: "a non-ASCII name", headers: { "é": "x" }, includes: "printable ASCII" },
    { name: "an HTTP/1 connection header", headers: { connection: "close" }, includes: "not allowed" },
    { name: "transfer-encoding", headers: { "transfer-encoding": "chunked" }, includes: "not allowed" },
    { name: "an empty list of values", headers: { port: [] }, includes: "no value" },
    { name: "an empty value in a list", headers: { port: ["80", ""] }, includes: "empty or contains NUL" },
    { name: "a NUL inside a listed value", headers: { port: ["8\u00000"] }, includes: "empty or contains NUL" },
    { name: "a leading NUL", headers: { port: "\u000080" }, includes: "empty value" },
    { name: "a trailing NUL", headers: { port: "80\u0000" }, includes: "empty value" },
    { name: "a block past the limit", headers: { a: "x".repeat(100) }, includes: "limit of 64", max: 64 },
  ];
  for (const b of BAD) {
    await t.step(b.name, () => {
      const opts = b.max === undefined ? {} : { maxBytes: b.max };
      assertThrows(() => encodeHeaderBlock(b.headers, opts), InvalidArgument, b.includes);
    });
  }
});

Deno.test("spdy header block decoder refuses malformed blocks", async (t) => {
  const BAD: { name: string; wire: string; includes: string }[] = [
    { name: "an empty block", wire: "", includes: "truncated before the pair count" },
    { name: "a count that cannot fit", wire: "00000002 00000001 61 00000000", includes: "pair count 2" },
    { name: "a huge count", wire: "ffffffff", includes: "does not fit" },
    { name: "a name running past the end", wire: "00000001 00000009 61 00000000", includes: "runs past the end" },
    { name: "a missing value length", wire: "00000001 00000001 61 000000", includes: "before the value length" },
    { name: "a value running past the end", wire: "00000001 00000001 61 00000005 62", includes: "runs past" },
    { name: "an empty name", wire: "00000001 00000000 00000001 61", includes: "a header name is empty" },
    { name: "an upper-case name", wire: "00000001 00000001 41 00000000", includes: "not lower case" },
    { name: "a duplicate name", wire: "00000002 00000001 61 00000000 00000001 61 00000000", includes: "twice" },
    { name: "a value with an empty part", wire: "00000001 00000001 61 00000002 6200", includes: "empty value" },
    { name: "a value that is not UTF-8", wire: "00000001 00000001 61 00000001 ff", includes: "not UTF-8" },
    { name: "bytes after the last pair", wire: "00000000 00", includes: "1 bytes follow" },
  ];
  for (const b of BAD) {
    await t.step(b.name, () => {
      const err = assertThrows(() => decodeHeaderBlock(hex(b.wire), { streamId: 3 }), SpdyProtocolError, b.includes);
      assertEquals((err as SpdyProtocolError).problem, "header-block");
      assertEquals((err as SpdyProtocolError).streamId, 3);
    });
  }
});
