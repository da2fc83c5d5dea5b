/**
 * The daemon's end of an attach (CRI Attach): a connection of its own to the pod's monitor, an `attach` request,
 * and then the binary frames of attach_frame.ts: the container's stdout and stderr as streams, stdin, its end and
 * terminal sizes as writes, and the exit record once the container has exited and its output was delivered.
 *
 * Flow control is the socket's: frames are read from the monitor only while the stdout and stderr streams have
 * room (a 256 KiB queue each), so a consumer that stops reading either stream stops both, and the monitor, which
 * never lets an attach client hold its log up, drops a client that falls a MiB behind. Closing the session or
 * losing the connection never stops the container.
 * @module
 */
import { DavitError, DeadlineExceeded, errorMessage, InvalidArgument, Unavailable } from "../lib/errors.ts";
import {
  encodeDataFrames,
  encodeFrame,
  encodeResize,
  type Frame,
  FrameDecoder,
  FrameKind,
  MONITOR_FRAME_KINDS,
  parseExit,
} from "./attach_frame.ts";
import { connectWithin } from "./connect.ts";
import type { ExitRecord } from "./exit_file.ts";
import { encodeRequest, LineSplitter, MAX_RESPONSE_BYTES, parseResponse } from "./protocol.ts";

/** Which of the container's streams to connect (at least one). */
export interface AttachStreams {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
}

/** Options for {@link AttachSession.open}. */
export interface AttachOpenOptions extends AttachStreams {
  /** Deadline for connecting, default 2 s. */
  connectTimeoutMs?: number;
  /** Deadline for the monitor's answer, default 30 s; 0 for none. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Bytes each output stream queues before the session stops reading from the monitor. */
const STREAM_HIGH_WATER = 256 * 1024;

/** One output stream and its controller. */
interface Outlet {
  stream: ReadableStream<Uint8Array>;
  controller: ReadableStreamDefaultController<Uint8Array>;
  open: boolean;
}

/**
 * An attach session to one container. Read {@link stdout} and {@link stderr} (those requested), write with
 * {@link writeStdin}, and {@link close} it (or `await using`) when done; {@link exited} settles once the output was
 * read up to the container's exit, or the connection ended.
 */
export class AttachSession implements AsyncDisposable {
  /** The container attached to. */
  readonly containerId: string;
  /** The container's stdout, when requested; ends when the connection does. */
  readonly stdout: ReadableStream<Uint8Array> | null;
  /** The container's stderr, when requested; ends when the connection does. */
  readonly stderr: ReadableStream<Uint8Array> | null;
  /**
   * The exit record, once the container exited and everything it wrote before was delivered; undefined when the
   * connection ended without one (closed by this side, a monitor that went away, or a client dropped for not
   * reading). Never rejects.
   */
  readonly exited: Promise<ExitRecord | undefined>;
  readonly #conn: Deno.UnixConn;
  readonly #stdinRequested: boolean;
  readonly #outlets: Outlet[] = [];
  readonly #out: { stdout: Outlet | undefined; stderr: Outlet | undefined };
  readonly #exit = Promise.withResolvers<ExitRecord | undefined>();
  readonly #reading: Promise<void>;
  #writing: Promise<void> = Promise.resolve();
  #wake: (() => void) | undefined;
  #stdinClosed = false;
  #closed = false;

  private constructor(conn: Deno.UnixConn, containerId: string, streams: AttachStreams, rest: Uint8Array) {
    this.#conn = conn;
    this.containerId = containerId;
    this.#stdinRequested = streams.stdin ?? false;
    this.#out = {
      stdout: streams.stdout ? this.#outlet() : undefined,
      stderr: streams.stderr ? this.#outlet() : undefined,
    };
    this.stdout = this.#out.stdout?.stream ?? null;
    this.stderr = this.#out.stderr?.stream ?? null;
    this.exited = this.#exit.promise;
    this.#reading = this.#read(rest);
  }

  /**
   * Connects to the monitor at `socketPath` and attaches to `containerId`. Rejects with the monitor's error
   * (NotFound, FailedPrecondition for an exited container, InvalidArgument for stdin the container lacks),
   * Unavailable when it cannot be reached, DeadlineExceeded past the deadline.
   */
  static async open(socketPath: string, containerId: string, opts: AttachOpenOptions = {}): Promise<AttachSession> {
    opts.signal?.throwIfAborted();
    const streams = { stdin: opts.stdin ?? false, stdout: opts.stdout ?? false, stderr: opts.stderr ?? false };
    const conn = await connectWithin(socketPath, opts.connectTimeoutMs ?? 2000);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped: Error | undefined;
    const stop = (err: Error) => {
      stopped ??= err;
      try {
        conn.close(); // ends the read below
      } catch {
        // already closed
      }
    };
    const onAbort = () => stop(opts.signal?.reason ?? new DeadlineExceeded(`attach was aborted`));
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => stop(new DeadlineExceeded(`Monitor ${socketPath} did not answer attach within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const request = new TextEncoder().encode(encodeRequest(1, "attach", { container_id: containerId, ...streams }));
      let off = 0;
      while (off < request.byteLength) off += await conn.write(request.subarray(off));
      const splitter = new LineSplitter(MAX_RESPONSE_BYTES);
      const buf = new Uint8Array(64 * 1024);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) throw new Unavailable(`Monitor ${socketPath} closed the connection before answering attach`);
        const next = splitter.pushOne(buf.subarray(0, n));
        if (next === undefined) continue;
        const res = parseResponse(next.line);
        if (!res.ok) throw res.error;
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
        return new AttachSession(conn, containerId, streams, next.rest.slice());
      }
    } catch (err) {
      try {
        conn.close();
      } catch {
        // closed by the deadline or the signal
      }
      if (stopped) throw stopped;
      if (err instanceof DavitError) throw err;
      throw new Unavailable(`Cannot attach through monitor ${socketPath}: ${errorMessage(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Writes to the container's stdin (in frames of at most 1 MiB); resolves once handed to the socket. Rejects
   * with InvalidArgument when the session was opened without stdin or its stdin was closed, Unavailable when the
   * connection is gone.
   */
  async writeStdin(data: Uint8Array): Promise<void> {
    if (!this.#stdinRequested) throw new InvalidArgument(`Attach to ${this.containerId} was opened without stdin`);
    if (this.#stdinClosed) throw new InvalidArgument(`Stdin of the attach to ${this.containerId} is closed`);
    for (const frame of encodeDataFrames(FrameKind.STDIN, data)) await this.#send(frame);
  }

  /**
   * Ends this session's stdin (STDIN_CLOSE). The container sees end of file when it was created with `stdin_once`
   * and this was the first session with stdin; otherwise its stdin stays open for other sessions. Idempotent.
   */
  async closeStdin(): Promise<void> {
    if (!this.#stdinRequested || this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#send(encodeFrame(FrameKind.STDIN_CLOSE));
  }

  /** Sends a terminal size (ignored by the monitor for containers without a terminal). */
  async resize(cols: number, rows: number): Promise<void> {
    for (const v of [cols, rows]) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
        throw new InvalidArgument(`Terminal size must be integers in [0, 65535], got ${cols}x${rows}`);
      }
    }
    await this.#send(encodeResize({ cols, rows }));
  }

  /** Detaches: closes the connection (the container keeps running) and ends the streams. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // closed by the monitor's end
      }
      this.#wake?.();
    }
    await this.#reading;
    await this.#writing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #outlet(): Outlet {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const outlet: Outlet = {
      stream: new ReadableStream<Uint8Array>({
        start: (c) => {
          controller = c;
        },
        pull: () => this.#wake?.(),
        cancel: () => {
          outlet.open = false;
          this.#wake?.();
        },
      }, { highWaterMark: STREAM_HIGH_WATER, size: (chunk) => chunk.byteLength }),
      controller,
      open: true,
    };
    this.#outlets.push(outlet);
    return outlet;
  }

  #send(frame: Uint8Array): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new Unavailable(`Attach to ${this.containerId} is closed`));
    }
    const done = this.#writing.then(async () => {
      let off = 0;
      while (off < frame.byteLength) off += await this.#conn.write(off === 0 ? frame : frame.subarray(off));
    });
    this.#writing = done.catch(() => {});
    return done.catch((err) => {
      throw new Unavailable(`Cannot write to the attach of ${this.containerId}: ${errorMessage(err)}`, {
        cause: err,
      });
    });
  }

  /** True while an open stream's queue is full. */
  #full(): boolean {
    return this.#outlets.some((o) => o.open && (o.controller.desiredSize ?? 1) <= 0);
  }

  #deliver(frames: Frame[]): void {
    for (const f of frames) {
      if (f.kind === FrameKind.EXIT) {
        this.#exit.resolve(parseExit(f.payload));
        continue;
      }
      const outlet = f.kind === FrameKind.STDOUT ? this.#out.stdout : this.#out.stderr;
      if (outlet?.open) outlet.controller.enqueue(f.payload);
    }
  }

  async #read(rest: Uint8Array): Promise<void> {
    const decoder = new FrameDecoder(MONITOR_FRAME_KINDS);
    const buf = new Uint8Array(64 * 1024);
    try {
      this.#deliver(decoder.push(rest));
      while (!this.#closed) {
        while (this.#full() && !this.#closed) {
          const { promise, resolve } = Promise.withResolvers<void>();
          this.#wake = resolve;
          await promise;
          this.#wake = undefined;
        }
        if (this.#closed) break;
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#deliver(decoder.push(buf.subarray(0, n)));
      }
    } catch {
      // A reset connection, one closed by close(), or frames this side cannot read: all end the session.
    }
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    for (const o of this.#outlets) {
      if (!o.open) continue;
      o.open = false;
      o.controller.close();
    }
    this.#exit.resolve(undefined);
  }
}
