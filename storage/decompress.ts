/**
 * Decompression of layer blobs for the callers of `extractLayer`. node:zlib is used for both formats: with a
 * 256 KiB output chunk its gunzip ran at ~890 MiB/s on a 200 MB layer against ~540 MiB/s for the web
 * DecompressionStream (fixed small chunks), and DecompressionStream has no zstd at all. Larger chunks also mean
 * fewer write calls during extraction.
 * @module
 */
import { Duplex } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { errorMessage, InvalidArgument } from "../lib/errors.ts";

/** Compression of a layer blob. */
export type Compression = "gzip" | "zstd" | "none";

/** Output chunk size of the decompressors (measured: 256 KiB beats the 16 KiB default by ~40%). */
const CHUNK = 256 * 1024;

/**
 * Returns a stream of the decompressed bytes of `stream`. Corrupt input errors the returned stream with
 * InvalidArgument; errors of the source pass through unchanged; cancelling the result cancels the source.
 * Note: Deno's zstd decoder (2.9.6) ends quietly on a truncated frame, so callers must still check the tar's end
 * marker and the DiffID.
 */
export function decompressStream(stream: ReadableStream<Uint8Array>, kind: Compression): ReadableStream<Uint8Array> {
  if (kind === "none") return stream;
  const codec = kind === "gzip" ? createGunzip({ chunkSize: CHUNK }) : createZstdDecompress({ chunkSize: CHUNK });
  const { readable, writable } = Duplex.toWeb(codec) as {
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  };
  // A failing source also destroys the codec, which then reports the very same error: remember which errors
  // came from the source so that only the codec's own are called corrupt data.
  const fromSource = new Set<unknown>();
  void pump(stream, writable, fromSource);
  const reader = readable.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (err) {
        if (fromSource.has(err)) throw err;
        throw new InvalidArgument(`Cannot decompress ${kind} layer data: ${errorMessage(err)}`, { cause: err });
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Copies `src` into `dst`; a read error aborts `dst` and is recorded, a write error cancels `src`. */
async function pump(
  src: ReadableStream<Uint8Array>,
  dst: WritableStream<Uint8Array>,
  fromSource: Set<unknown>,
): Promise<void> {
  const reader = src.getReader();
  const writer = dst.getWriter();
  try {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (err) {
        fromSource.add(err);
        await writer.abort(err).catch(() => {});
        return;
      }
      if (next.done) break;
      await writer.write(next.value);
    }
    await writer.close();
  } catch (err) {
    // The codec failed or the consumer cancelled: the source is no longer needed.
    await reader.cancel(err).catch(() => {});
  } finally {
    reader.releaseLock();
    writer.releaseLock();
  }
}
