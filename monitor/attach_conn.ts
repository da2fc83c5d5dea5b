/**
 * The monitor's end of one attach connection, after its `attach` request was accepted: it writes the ok answer
 * line and then output frames from the container's {@link StdioHub}, and reads STDIN, STDIN_CLOSE and RESIZE
 * frames from the daemon (attach_frame.ts).
 *
 * The log must never wait for an attach client, so output is queued here without blocking the pump that feeds
 * both; a client whose queue grows past {@link AttachConnOptions.maxBacklog} is dropped (its connection closed)
 * rather than buffered without bound. Stdin is written to the container one frame at a time, and the next frame
 * is read only once the pipe took the previous one, so a container that does not read its stdin slows its
 * writers down through the socket instead of filling the monitor's memory.
 * @module
 */
import { DavitError, errorMessage, InvalidArgument } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { DAEMON_FRAME_KINDS, type Frame, FrameDecoder, FrameKind, parseResize } from "./attach_frame.ts";
import type { AttachSink, StdioHub } from "./stdio_hub.ts";

/** The default bound of a connection's output queue. */
export const MAX_ATTACH_BACKLOG = 1024 * 1024;

/** Options for {@link AttachConn}. */
export interface AttachConnOptions {
  containerId: string;
  hub: StdioHub;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  log: Logger;
  /** Queued output bytes past which the client is dropped; default {@link MAX_ATTACH_BACKLOG}. */
  maxBacklog?: number;
}

/** One accepted attach connection. */
export class AttachConn implements AttachSink {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  readonly #conn: Deno.Conn;
  readonly #id: string;
  readonly #hub: StdioHub;
  readonly #log: Logger;
  readonly #maxBacklog: number;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #flushing: Promise<void> | undefined;
  /** EXIT is queued: close once the queue is written. */
  #finishing = false;
  #closed = false;

  /**
   * Queues `answer` (the ok line) as the first bytes of the connection. The caller then registers the connection
   * with the hub, in the same turn, and calls {@link run}.
   */
  constructor(conn: Deno.Conn, answer: Uint8Array, opts: AttachConnOptions) {
    this.#conn = conn;
    this.#id = opts.containerId;
    this.#hub = opts.hub;
    this.#log = opts.log;
    this.#maxBacklog = opts.maxBacklog ?? MAX_ATTACH_BACKLOG;
    this.stdin = opts.stdin;
    this.stdout = opts.stdout;
    this.stderr = opts.stderr;
    this.#enqueue(answer);
  }

  /** Output bytes queued and not yet written. */
  get backlog(): number {
    return this.#queued;
  }

  send(frame: Uint8Array): void {
    if (this.#finishing) return;
    this.#enqueue(frame);
  }

  finish(exitFrame: Uint8Array): void {
    if (this.#finishing) return;
    this.#enqueue(exitFrame);
    this.#finishing = true;
    if (this.#flushing === undefined) this.close();
  }

  /**
   * Reads the daemon's frames (`rest`: bytes that followed the request line) until the connection ends, then lets
   * go of the hub; resolves when the connection is closed and its writes are settled.
   */
  async run(rest: Uint8Array): Promise<void> {
    const decoder = new FrameDecoder(DAEMON_FRAME_KINDS);
    const buf = new Uint8Array(64 * 1024);
    try {
      for (const f of decoder.push(rest)) await this.#handle(f);
      while (!this.#closed) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        for (const f of decoder.push(buf.subarray(0, n))) {
          if (this.#closed) break;
          await this.#handle(f);
        }
      }
    } catch (err) {
      if (err instanceof DavitError) {
        this.#log.warn("attach protocol error: closing", { id: this.#id, err: err.message });
      } else if (!this.#closed && !(err instanceof Deno.errors.ConnectionReset)) {
        this.#log.debug("attach connection read failed", { id: this.#id, err: errorMessage(err) });
      }
    }
    this.close();
    await this.#flushing;
  }

  /** Closes the connection and unregisters from the hub (ending this session's stdin). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#hub.remove(this);
    this.#queue.length = 0;
    this.#queued = 0;
    try {
      this.#conn.close();
    } catch {
      // closed at shutdown
    }
  }

  async #handle(f: Frame): Promise<void> {
    switch (f.kind) {
      case FrameKind.STDIN:
        if (!this.stdin) throw new InvalidArgument("STDIN frame on a session attached without stdin");
        await this.#hub.writeStdin(this, f.payload);
        return;
      case FrameKind.STDIN_CLOSE:
        this.#hub.endStdin(this);
        return;
      case FrameKind.RESIZE:
        this.#hub.resize(parseResize(f.payload));
        return;
    }
  }

  #enqueue(bytes: Uint8Array): void {
    if (this.#closed) return;
    if (this.#queued + bytes.byteLength > this.#maxBacklog) {
      this.#log.warn("attach client is not reading: dropped", { id: this.#id, backlog: this.#queued });
      this.close();
      return;
    }
    this.#queue.push(bytes);
    this.#queued += bytes.byteLength;
    this.#flushing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    try {
      for (;;) {
        const bytes = this.#queue[0];
        if (bytes === undefined || this.#closed) break;
        let off = 0;
        while (off < bytes.byteLength) off += await this.#conn.write(off === 0 ? bytes : bytes.subarray(off));
        if (this.#closed) break;
        this.#queue.shift();
        this.#queued -= bytes.byteLength;
      }
    } catch (err) {
      if (!this.#closed) this.#log.debug("attach connection write failed", { id: this.#id, err: errorMessage(err) });
      this.close();
    }
    this.#flushing = undefined;
    if (this.#finishing) this.close();
  }
}
