/**
 * Writes a container's output to its CRI log file: frames each chunk read from a stream into records
 * (log_format.ts), appends them with O_APPEND, keeps the file under `log_size_max`, and reopens the path when the
 * kubelet has rotated the file away.
 *
 * Never losing a line rests on two rules: a chunk's records are written completely (synchronously, looping over
 * short writes) before the next read from the pipe, so a slow disk slows the container instead of dropping its
 * output; and everything is single-threaded, so a reopen happens between two chunks, never inside one.
 *
 * `log_size_max` follows CRI-O: when appending a record would take the file past the limit, the file is truncated
 * and re-opened, so the limit is never exceeded. Lines are cut to `min(16 KiB, limit - 64)` bytes so that one
 * record always fits.
 * @module
 */
import {
  encodeRecords,
  formatTimestamp,
  LineFramer,
  type LogPart,
  type LogStream,
  MAX_LOG_LINE,
  nowNs,
  RECORD_OVERHEAD,
} from "./log_format.ts";

/** Options for {@link LogWriter.open}. */
export interface LogWriterOptions {
  /** Size limit in bytes; 0 or negative for none. */
  maxSize?: number;
  /** Nanoseconds since the epoch; the real clock by default (tests pass a fixed one). */
  now?: () => bigint;
  /** Told about write and reopen failures (the writer itself keeps going). */
  onError?: (err: unknown, what: string) => void;
}

const OPEN_APPEND: Deno.OpenOptions = { write: true, append: true, create: true, mode: 0o600 };

/** An open CRI log file. Not safe to share between processes; within one, every call is synchronous. */
export class LogWriter implements Disposable {
  /** The log file's path (the one reopened). */
  readonly path: string;
  /** Content bytes per record: longer lines are cut into `P` parts. */
  readonly maxLine: number;
  readonly #maxSize: number;
  readonly #now: () => bigint;
  readonly #onError: (err: unknown, what: string) => void;
  #file: Deno.FsFile | undefined;
  #size: number;
  #dropped = 0;

  private constructor(path: string, file: Deno.FsFile, opts: LogWriterOptions) {
    this.path = path;
    this.#file = file;
    this.#size = file.statSync().size;
    this.#maxSize = opts.maxSize !== undefined && opts.maxSize > 0 ? opts.maxSize : 0;
    this.maxLine = this.#maxSize > 0 ? Math.min(MAX_LOG_LINE, this.#maxSize - RECORD_OVERHEAD) : MAX_LOG_LINE;
    this.#now = opts.now ?? nowNs;
    this.#onError = opts.onError ?? (() => {});
  }

  /** Opens (creating, mode 0600) `path` for appending. Throws when it cannot be opened. */
  static open(path: string, opts: LogWriterOptions = {}): LogWriter {
    if (opts.maxSize !== undefined && opts.maxSize > 0 && opts.maxSize <= RECORD_OVERHEAD) {
      throw new RangeError(`log size limit ${opts.maxSize} is too small for one record`);
    }
    return new LogWriter(path, Deno.openSync(path, OPEN_APPEND), opts);
  }

  /** Bytes in the current file as far as this writer knows. */
  get size(): number {
    return this.#size;
  }

  /** Bytes of records that could not be written (disk full, file closed). */
  get droppedBytes(): number {
    return this.#dropped;
  }

  /** Writes records that arrived together on `stream`; they share one timestamp. */
  write(stream: LogStream, parts: readonly LogPart[]): void {
    if (parts.length === 0) return;
    const timestamp = formatTimestamp(this.#now());
    const all = encodeRecords(timestamp, stream, parts);
    if (this.#maxSize === 0 || this.#size + all.byteLength <= this.#maxSize) {
      this.#append(all);
      return;
    }
    for (const part of parts) {
      const one = encodeRecords(timestamp, stream, [part]);
      if (this.#size + one.byteLength > this.#maxSize) this.#truncate();
      this.#append(one);
    }
  }

  /** Closes the current file and opens `path` again (after the kubelet renamed it). Throws if that fails. */
  reopen(): void {
    const file = Deno.openSync(this.path, OPEN_APPEND);
    this.#file?.close();
    this.#file = file;
    this.#size = file.statSync().size;
  }

  /** Closes the file; later writes are dropped. Idempotent. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #append(bytes: Uint8Array): void {
    const file = this.#file;
    if (file === undefined) {
      this.#dropped += bytes.byteLength;
      return;
    }
    let off = 0;
    try {
      while (off < bytes.byteLength) off += file.writeSync(off === 0 ? bytes : bytes.subarray(off));
      this.#size += bytes.byteLength;
    } catch (err) {
      this.#size += off;
      this.#dropped += bytes.byteLength - off;
      this.#onError(err, `write ${this.path}`);
    }
  }

  // CRI-O's rule: truncate and re-open the path, so the limit holds for whatever file the path names now.
  #truncate(): void {
    try {
      // O_TRUNC cannot be combined with O_APPEND in Deno's open options: truncate, then open for appending.
      Deno.openSync(this.path, { write: true, create: true, truncate: true, mode: 0o600 }).close();
      this.reopen();
    } catch (err) {
      this.#onError(err, `truncate ${this.path}`);
    }
  }
}

/** Options for {@link pumpStream}. */
export interface PumpOptions {
  /** Which of the container's streams this is. */
  name: LogStream;
  writer: LogWriter;
  /** Told about a read error (the copy then ends). */
  onError?: (err: unknown, what: string) => void;
  /** Sees each chunk after its records were written (attach fan-out); must not block. */
  onChunk?: (chunk: Uint8Array) => void;
}

/**
 * Copies one of a container's streams into `opts.writer` until end of file, framing it into records. Resolves when
 * the stream ends (every process holding the pipe's write end has exited or closed it). A read error ends the
 * copy after flushing what was held, and is reported through `onError`. The log comes first: `onChunk` sees a
 * chunk only once its records are written.
 */
export async function pumpStream(stream: ReadableStream<Uint8Array>, opts: PumpOptions): Promise<void> {
  const { name, writer } = opts;
  const framer = new LineFramer(writer.maxLine);
  try {
    for await (const chunk of stream) {
      writer.write(name, framer.push(chunk));
      opts.onChunk?.(chunk);
    }
  } catch (err) {
    opts.onError?.(err, `read ${name}`);
  }
  writer.write(name, framer.end());
}
