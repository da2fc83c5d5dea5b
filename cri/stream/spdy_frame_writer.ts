/**
 * The sending side of a SPDY/3.1 connection: one queue in front of the connection's writer, so that frames go
 * out whole and in order, with the header compressor in front of it, so that header blocks reach the wire in the
 * order they went through the shared zlib stream (SPDY Protocol Draft 3.1, Section 2.6.10.1).
 * @module
 */
import { ResourceExhausted, Unavailable } from "../../lib/errors.ts";
import { encodeFrame, type SpdyFrame } from "./spdy_frame.ts";
import { SpdyHeaderCompressor } from "./spdy_headers.ts";

// Frames queued for a peer that does not read (answers to its PINGs, resets) are bounded by failing.
const MAX_QUEUED_BYTES = 8 << 20;
/** How long a close waits, by default, for queued frames (a GOAWAY) to go out before it gives up on the peer. */
export const CLOSE_FLUSH_MS = 2_000;

/** What a {@link SpdyFrameWriter} reports to, and how it gives up. */
export interface FrameWriterOptions {
  /** Hears once that the connection cannot be written to, or that its peer does not read. */
  onFailure: (err: Error) => void;
  /**
   * Closes the connection outright. A write stuck on a peer that does not read holds a writable stream's close
   * and abort up; only closing the connection itself (`Deno.Conn.close`) ends it.
   */
  hardClose?: () => void;
  /** How long {@link SpdyFrameWriter.close} waits for queued frames; default {@link CLOSE_FLUSH_MS}. */
  flushMs?: number;
}

/** Writes frames to one connection. */
export class SpdyFrameWriter {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #deflate = new SpdyHeaderCompressor();
  readonly #opts: FrameWriterOptions;
  #queue: Promise<unknown> = Promise.resolve();
  #headerQueue: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #closed: Error | undefined;
  #lastWrite = Date.now();

  constructor(writable: WritableStream<Uint8Array>, opts: FrameWriterOptions) {
    this.#writer = writable.getWriter();
    this.#opts = opts;
  }

  /** Milliseconds since the epoch when the last frame started on its way. */
  get lastWrite(): number {
    return this.#lastWrite;
  }

  /** Queues a frame; resolves once it is written. */
  send(frame: SpdyFrame): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#queued += bytes.length;
    if (this.#queued > MAX_QUEUED_BYTES) {
      const err = new ResourceExhausted(`SPDY peer is not reading: ${this.#queued} bytes wait to be sent`);
      this.#fail(err);
      return Promise.reject(err);
    }
    const result = this.#queue.then(() => {
      this.#lastWrite = Date.now();
      return this.#writer.write(bytes);
    }).finally(() => this.#queued -= bytes.length);
    this.#queue = result.catch((err) => this.#fail(new Unavailable("SPDY connection write failed", { cause: err })));
    return result;
  }

  /** Compresses an uncompressed header block and queues the frame `build` makes of it. */
  sendHeaders(build: (headerBlock: Uint8Array) => SpdyFrame, block: Uint8Array): Promise<void> {
    const result = this.#headerQueue.then(async () => this.send(build(await this.#deflate.compress(block))));
    this.#headerQueue = result.catch(() => {});
    return result;
  }

  /**
   * Refuses further frames, lets queued ones go out, then closes the connection's writing side. A peer that
   * stopped reading cannot hold this up: past the flush deadline the connection is closed outright.
   */
  async close(): Promise<void> {
    this.#closed ??= new Unavailable("SPDY connection is closed");
    this.#deflate.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flushed = this.#queue.then(() => this.#writer.close());
    flushed.catch(() => {});
    const ms = this.#opts.flushMs ?? CLOSE_FLUSH_MS;
    const deadline = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
    let late = false;
    try {
      late = await Promise.race([flushed, deadline]) === "late";
    } catch {
      late = true; // the writer failed: make sure the connection is gone
    } finally {
      clearTimeout(timer);
    }
    if (!late) return;
    // Neither is awaited: both wait for a stuck write, which only closing the connection ends.
    this.#writer.abort().catch(() => {});
    try {
      this.#opts.hardClose?.();
    } catch {
      // Already closed.
    }
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = err;
    this.#opts.onFailure(err);
  }
}
