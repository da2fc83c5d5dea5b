// Checks the rebuilt SPDY/3 dictionary against facts printed in the spec: its length, its first and last bytes,
// and the Adler-32 that zlib streams using it announce (computed independently with Python's zlib).
import { assertEquals } from "../../tests/assert.ts";
import { adler32, SPDY3_DICTIONARY, SPDY3_DICTIONARY_ID } from "./spdy_dictionary.ts";

Deno.test("spdy dictionary matches the spec", () => {
  assertEquals(SPDY3_DICTIONARY.length, 1423);
  // "\0\0\0\x07options\0\0\0\x04head": the spec's first 16 bytes.
  assertEquals(
    Array.from(SPDY3_DICTIONARY.subarray(0, 16)),
    [0, 0, 0, 7, 0x6f, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x73, 0, 0, 0, 4, 0x68],
  );
  assertEquals(new TextDecoder().decode(SPDY3_DICTIONARY.subarray(-13)), "utf-,*,enq=0.");
  assertEquals(SPDY3_DICTIONARY_ID, 0xe3c6a7c2);
});

Deno.test("adler32 known answers", () => {
  assertEquals(adler32(new Uint8Array()), 1);
  // RFC 1950's algorithm on "Wikipedia", a common worked example.
  assertEquals(adler32(new TextEncoder().encode("Wikipedia")), 0x11e60398);
  // A run longer than 5552 bytes exercises the deferred modulo.
  assertEquals(adler32(new Uint8Array(10_000).fill(0xff)), adler32Slow(new Uint8Array(10_000).fill(0xff)));
});

function adler32Slow(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const x of data) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}
