// Tests for SPDY/3 header compression: blocks in sequence on one zlib stream, independent checks against
// node:zlib's own inflate and against bytes made by Python's zlib with the SPDY/3 dictionary, ordering under
// concurrent calls, and refusal of zip bombs and garbage.
import zlib from "node:zlib";
import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/assert.ts";
import { SPDY3_DICTIONARY } from "./spdy_dictionary.ts";
import { SpdyProtocolError } from "./spdy_frame.ts";
import { decodeHeaderBlock, encodeHeaderBlock } from "./spdy_header_block.ts";
import { SpdyHeaderCompressor, SpdyHeaderDecompressor } from "./spdy_headers.ts";

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const BLOCKS = [
  { ":method": "POST", ":path": "/exec/abc", ":version": "HTTP/1.1", streamtype: "error" },
  { streamtype: "stdin", requestid: "0" },
  { streamtype: "stdout", requestid: "0" },
  { ":status": "200 OK", "content-type": "text/plain", port: "8080\u00009090" },
];

Deno.test("spdy header compression", async (t) => {
  await t.step("the first block announces the SPDY/3 dictionary; each block ends in a sync flush", async () => {
    const c = new SpdyHeaderCompressor();
    try {
      const first = await c.compress(encodeHeaderBlock(BLOCKS[0]!));
      // CMF/FLG with FDICT set (RFC 1950), then the dictionary's Adler-32.
      assertEquals((first[0]! * 256 + first[1]!) % 31, 0);
      assertEquals(first[1]! & 0x20, 0x20);
      assertEquals(Array.from(first.subarray(2, 6)), [0xe3, 0xc6, 0xa7, 0xc2]);
      assertEquals(Array.from(first.subarray(-4)), [0, 0, 0xff, 0xff]);
      const second = await c.compress(encodeHeaderBlock(BLOCKS[1]!));
      assertEquals(Array.from(second.subarray(-4)), [0, 0, 0xff, 0xff]);
    } finally {
      c.close();
    }
  });

  await t.step("several blocks round trip in sequence", async () => {
    const c = new SpdyHeaderCompressor();
    const d = new SpdyHeaderDecompressor();
    try {
      for (let round = 0; round < 3; round++) {
        for (const h of BLOCKS) {
          const z = await c.compress(encodeHeaderBlock(h));
          assertEquals(decodeHeaderBlock(await d.decompress(z)), h);
        }
      }
    } finally {
      c.close();
      d.close();
    }
  });

  await t.step("node:zlib's inflate with the dictionary reads the stream; without it, it cannot", async () => {
    const c = new SpdyHeaderCompressor();
    const parts: Uint8Array[] = [];
    try {
      for (const h of BLOCKS) parts.push(await c.compress(encodeHeaderBlock(h)));
    } finally {
      c.close();
    }
    const opts = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
    const plain = zlib.inflateSync(concat(parts), { ...opts, dictionary: SPDY3_DICTIONARY });
    assertEquals(plain, Buffer.from(concat(BLOCKS.map((h) => encodeHeaderBlock(h)))));
    assertThrows(() => zlib.inflateSync(concat(parts), opts));
  });

  await t.step("blocks compressed by Python's zlib with the SPDY/3 dictionary decompress in order", async () => {
    const d = new SpdyHeaderDecompressor();
    try {
      const one = hex(
        "78f9e3c6a7c202253a507ab482a75a9600ffe010500eb32a4804174e9cfaa915a9c9fa894990045952949a980b2d7380493b25bfb4" +
          "04000000ffff",
      );
      const two = hex("026531ac72a9454590c2bd08a486d3c2c0c280c1d2c0d200000000ffff");
      assertEquals(decodeHeaderBlock(await d.decompress(one)), {
        ":method": "POST",
        ":path": "/exec/abc",
        streamtype: "stdout",
      });
      assertEquals(decodeHeaderBlock(await d.decompress(two)), { streamtype: "stderr", port: "8080\u00009090" });
    } finally {
      d.close();
    }
  });

  await t.step("concurrent calls complete in call order", async () => {
    const c = new SpdyHeaderCompressor();
    const d = new SpdyHeaderDecompressor();
    try {
      const many = Array.from({ length: 50 }, (_, i) => ({ streamtype: "data", requestid: String(i) }));
      const compressed = await Promise.all(many.map((h) => c.compress(encodeHeaderBlock(h))));
      const plain = await Promise.all(compressed.map((z) => d.decompress(z)));
      assertEquals(plain.map((p) => decodeHeaderBlock(p)), many);
    } finally {
      c.close();
      d.close();
    }
  });

  await t.step("a zip bomb is refused at the cap, and the decompressor stays failed", async () => {
    const d = new SpdyHeaderDecompressor({ maxBytes: 64 << 10 });
    try {
      const bomb = zlib.deflateSync(new Uint8Array(32 << 20));
      assert(bomb.length < 64 << 10, "the bomb fits a control frame");
      const started = performance.now();
      const err = await assertRejects(() => d.decompress(bomb), SpdyProtocolError, "limit of 65536");
      assertEquals((err as SpdyProtocolError).problem, "header-block-too-large");
      assert(performance.now() - started < 2000, "stopped early");
      await assertRejects(() => d.decompress(hex("00")), SpdyProtocolError, "limit of 65536");
    } finally {
      d.close();
    }
  });

  await t.step("garbage is a compression error", async () => {
    const d = new SpdyHeaderDecompressor();
    try {
      const err = await assertRejects(() => d.decompress(hex("ffffffffffff")), SpdyProtocolError, "not valid zlib");
      assertEquals((err as SpdyProtocolError).problem, "compression");
    } finally {
      d.close();
    }
  });

  await t.step("after close, calls reject", async () => {
    const c = new SpdyHeaderCompressor();
    const d = new SpdyHeaderDecompressor();
    c.close();
    d.close();
    await assertRejects(() => c.compress(encodeHeaderBlock({})), Error, "closed");
    await assertRejects(() => d.decompress(hex("00")), SpdyProtocolError, "closed");
  });
});

Deno.test("closing a header decompressor fails the calls still queued", async () => {
  const d = new SpdyHeaderDecompressor();
  const big = zlib.deflateSync(new Uint8Array(200 << 10));
  const pending = d.decompress(big);
  d.close();
  await assertRejects(() => pending, Error);
});
