// Tests for layer decompression: gzip and zstd round trips, corrupt input, source errors and cancellation.
import { gzipSync, zstdCompressSync } from "node:zlib";
import { assertEquals, assertRejects } from "../tests/assert.ts";
import { bytesStream } from "../tests/tar_writer.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { decompressStream } from "./decompress.ts";

async function collect(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts = await Array.fromAsync(s);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const data = new Uint8Array(3_000_000);
for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251 ^ (i >> 10);

Deno.test("decompressStream", async (t) => {
  const packed = { gzip: new Uint8Array(gzipSync(data)), zstd: new Uint8Array(zstdCompressSync(data)) };
  for (const kind of ["gzip", "zstd"] as const) {
    await t.step(`${kind} round trip`, async () => {
      assertEquals(await collect(decompressStream(bytesStream(packed[kind], 10_000), kind)), data);
    });
    await t.step(`${kind} corrupt input is InvalidArgument`, async () => {
      await assertRejects(
        () => collect(decompressStream(bytesStream(new Uint8Array(5000).fill(7)), kind)),
        InvalidArgument,
        `Cannot decompress ${kind} layer data`,
      );
    });
    await t.step(`${kind} source errors pass through`, async () => {
      const head = packed[kind].subarray(0, 50_000);
      let sent = false;
      const failing = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent) c.error(new Error("network down"));
          else c.enqueue(head);
          sent = true;
        },
      });
      const err = await assertRejects(() => collect(decompressStream(failing, kind)), Error, "network down");
      assertEquals(err instanceof InvalidArgument, false);
    });
    await t.step(`${kind} cancel reaches the source`, async () => {
      let cancelled = false;
      let off = 0;
      const src = new ReadableStream<Uint8Array>({
        pull(c) {
          c.enqueue(packed[kind].subarray(off, off + 1000));
          off += 1000;
        },
        cancel() {
          cancelled = true;
        },
      });
      const reader = decompressStream(src, kind).getReader();
      await reader.read();
      await reader.cancel(new Error("enough"));
      for (let i = 0; i < 50 && !cancelled; i++) await new Promise((r) => setTimeout(r, 10));
      assertEquals(cancelled, true);
    });
  }
  await t.step("none is the stream itself", () => {
    const s = bytesStream(data);
    assertEquals(decompressStream(s, "none"), s);
  });
});
