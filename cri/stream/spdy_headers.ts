/**
 * SPDY/3 header block compression (SPDY Protocol Draft 3.1, Section 2.6.10.1): one zlib stream per direction per
 * connection, primed with the SPDY/3 dictionary, each header block ending in a SYNC_FLUSH. A
 * {@link SpdyHeaderCompressor} serves the sending direction and a {@link SpdyHeaderDecompressor} the receiving one;
 * each keeps its calls in order with a queue, as the shared zlib state demands.
 *
 * Deno's `node:zlib` ignores the `dictionary` option when deflating (it only honours it when inflating), so the
 * compressor primes a raw deflate stream by compressing the dictionary and dropping that output, and writes the
 * RFC 1950 header with FDICT and the dictionary's Adler-32 itself. Any zlib inflater given the dictionary (Go's,
 * Chromium's, this module's) reads the result.
 * @module
 */
import zlib from "node:zlib";
import { SPDY3_DICTIONARY, SPDY3_DICTIONARY_ID } from "./spdy_dictionary.ts";
import { SpdyProtocolError } from "./spdy_frame.ts";
import { DEFAULT_MAX_HEADER_BYTES } from "./spdy_header_block.ts";

// The spec suggests a small window for header compression (Section 2.6.10.1): 2 KiB holds the whole dictionary.
const WINDOW_BITS = 11;
const MEM_LEVEL = 4;

// RFC 1950 Section 2.2: CMF (deflate, window 2^WINDOW_BITS), then FLG with FDICT set and FCHECK making the pair a
// multiple of 31, then DICTID.
function zlibHeader(): Uint8Array {
  const cmf = ((WINDOW_BITS - 8) << 4) | 8;
  let flg = 0x20;
  flg |= 31 - ((cmf * 256 + flg) % 31);
  const out = new Uint8Array(6);
  out[0] = cmf;
  out[1] = flg;
  new DataView(out.buffer).setUint32(2, SPDY3_DICTIONARY_ID);
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Runs one write-and-SYNC_FLUSH through a zlib stream and collects what it emits. `onChunk` may return an error
 * to stop early (the stream is then destroyed and the error returned).
 */
function flushThrough(
  z: zlib.Deflate | zlib.DeflateRaw | zlib.Inflate,
  input: Uint8Array,
  onChunk: (total: number) => Error | undefined,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let total = 0;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      z.off("data", onData);
      z.off("error", onError);
      z.off("close", onClose);
      if (err) reject(err);
      else resolve(concat(chunks));
    };
    const onData = (chunk: Uint8Array) => {
      if (settled) return;
      total += chunk.length;
      const stop = onChunk(total);
      if (stop) {
        z.destroy();
        finish(stop);
        return;
      }
      chunks.push(chunk);
    };
    const onError = (err: Error) => finish(err);
    // Destroyed mid-flush (the session ended): the flush callback may never come.
    const onClose = () => finish(z.errored ?? new Error("the zlib stream is closed"));
    z.on("data", onData);
    z.on("error", onError);
    z.on("close", onClose);
    z.write(input);
    // Deno calls back before it emits 'error', but has marked the stream errored by then.
    z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
      const err = z.errored ?? (z.destroyed ? new Error("the zlib stream is closed") : undefined);
      finish(err ?? undefined);
    });
  });
}

/** Compresses the header blocks one side sends, in order, on one shared zlib stream. */
export class SpdyHeaderCompressor {
  readonly #deflate: zlib.DeflateRaw;
  #queue: Promise<unknown>;
  #first = true;
  #failure: Error | undefined;

  constructor() {
    this.#deflate = zlib.createDeflateRaw({ windowBits: WINDOW_BITS, memLevel: MEM_LEVEL });
    // A zlib stream emits 'error' events; one without a listener would be thrown as uncaught.
    this.#deflate.on("error", (err) => this.#failure ??= err);
    // Priming: compress the dictionary so that it fills the window, and drop that output.
    this.#queue = this.#run(SPDY3_DICTIONARY).catch(() => {});
  }

  #run(input: Uint8Array): Promise<Uint8Array> {
    if (this.#failure) return Promise.reject(this.#failure);
    return flushThrough(this.#deflate, input, () => undefined);
  }

  /** Compresses one uncompressed header block; calls complete in the order they were made. */
  compress(block: Uint8Array): Promise<Uint8Array> {
    const result = this.#queue.then(async () => {
      const body = await this.#run(block);
      if (!this.#first) return body;
      this.#first = false;
      return concat([zlibHeader(), body]);
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Releases the zlib stream; later calls reject. */
  close(): void {
    this.#failure ??= new Error("SPDY header compressor is closed");
    this.#deflate.destroy();
  }
}

/** Decompresses the header blocks one side receives, in order, refusing any block that inflates past a cap. */
export class SpdyHeaderDecompressor {
  readonly #inflate: zlib.Inflate;
  readonly #maxBytes: number;
  #queue: Promise<unknown> = Promise.resolve();
  #failure: Error | undefined;

  /** `maxBytes` caps one decompressed block; default {@link DEFAULT_MAX_HEADER_BYTES}. */
  constructor(opts: { maxBytes?: number } = {}) {
    this.#maxBytes = opts.maxBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.#inflate = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
    this.#inflate.on("error", (err) => this.#failure ??= err);
  }

  /**
   * Decompresses one compressed header block. Rejects with {@link SpdyProtocolError} when the bytes are not
   * valid zlib data (`compression`) or inflate past the cap (`header-block-too-large`); the shared state is then
   * lost, so every later call rejects too and the session must end.
   */
  decompress(data: Uint8Array): Promise<Uint8Array> {
    const result = this.#queue.then(async () => {
      if (this.#failure) throw this.#failure;
      const max = this.#maxBytes;
      try {
        return await flushThrough(this.#inflate, data, (total) => {
          if (total <= max) return undefined;
          return new SpdyProtocolError(
            "header-block-too-large",
            `SPDY header block inflates past the limit of ${max} bytes`,
          );
        });
      } catch (err) {
        this.#failure = err instanceof SpdyProtocolError ? err : new SpdyProtocolError(
          "compression",
          `SPDY header block is not valid zlib data: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
        this.#inflate.destroy();
        throw this.#failure;
      }
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Releases the zlib stream; later calls reject. */
  close(): void {
    this.#failure ??= new SpdyProtocolError("compression", "SPDY header decompressor is closed");
    this.#inflate.destroy();
  }
}
