/**
 * A container's stdio as attach sessions share it: output fanned out to every attached session (after the log has
 * it), stdin from any session with stdin fed into the one stdin the monitor holds (a pipe, or the terminal), and
 * the `stdin_once` rule.
 *
 * Stdin rules (the kubelet's, as CRI-O and Docker apply them): with `stdin_once`, the container's stdin is closed
 * for good when the first session that attached with stdin ends its stdin (STDIN_CLOSE) or goes away; without it,
 * stdin stays open across sessions, and a session that ends its stdin or detaches only stops writing. Data for a
 * stdin that is closed is dropped. A session never stops the container.
 *
 * A container with a terminal has one output, routed as `stdout`, a stdin that is the terminal's input, and a size:
 * resizes reach it through {@link StdioHubOptions.resize}. Pipes have no size, so resizes are ignored.
 * @module
 */
import { errorMessage } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { encodeDataFrames, encodeExit, FrameKind, type TerminalSize } from "./attach_frame.ts";
import type { ExitRecord } from "./exit_file.ts";
import type { LogStream } from "./log_format.ts";

/** One attached session as the hub sees it (attach_conn.ts's connections; fakes in tests). */
export interface AttachSink {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
  /** Queues an encoded frame; never blocks (a session that cannot keep up drops itself). */
  send(frame: Uint8Array): void;
  /** Queues the EXIT frame; the session closes once it is written. */
  finish(exitFrame: Uint8Array): void;
}

/** Options for {@link StdioHub}. */
export interface StdioHubOptions {
  containerId: string;
  /** The container's stdin (a pipe's write end, or its terminal's input), when it was created with stdin. */
  stdin?: WritableStreamDefaultWriter<Uint8Array> | undefined;
  stdinOnce?: boolean;
  /** Applies a terminal size (containers with a terminal); absent for pipes, whose resizes are ignored. */
  resize?: (size: TerminalSize) => void;
  log: Logger;
}

/** The attach side of one container's stdio. */
export class StdioHub {
  /** True when the container was created with stdin (whether or not it is still open). */
  readonly hasStdin: boolean;
  readonly #id: string;
  readonly #stdinOnce: boolean;
  readonly #resize: ((size: TerminalSize) => void) | undefined;
  readonly #log: Logger;
  readonly #sinks = new Set<AttachSink>();
  /** Sessions whose stdin is still open. */
  readonly #stdinSinks = new Set<AttachSink>();
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** The first session that attached with stdin (`stdin_once` closes stdin when it ends its stdin). */
  #onceOwner: AttachSink | undefined;
  #exit: ExitRecord | undefined;

  constructor(opts: StdioHubOptions) {
    this.#id = opts.containerId;
    this.#stdin = opts.stdin;
    this.hasStdin = opts.stdin !== undefined;
    this.#stdinOnce = opts.stdinOnce ?? false;
    this.#resize = opts.resize;
    this.#log = opts.log;
  }

  /** True while the container's stdin is open. */
  get stdinOpen(): boolean {
    return this.#stdin !== undefined;
  }

  /** Attached sessions. */
  get size(): number {
    return this.#sinks.size;
  }

  /** Registers a session; it receives output from now on. */
  add(sink: AttachSink): void {
    if (this.#exit !== undefined) {
      sink.finish(encodeExit(this.#exit));
      return;
    }
    this.#sinks.add(sink);
    if (sink.stdin) {
      this.#stdinSinks.add(sink);
      if (this.#stdinOnce && this.#onceOwner === undefined) this.#onceOwner = sink;
    }
  }

  /** Unregisters a session that went away (closed, dropped); ends its stdin first. */
  remove(sink: AttachSink): void {
    if (!this.#sinks.delete(sink)) return;
    this.endStdin(sink);
  }

  /** A session's stdin ended (STDIN_CLOSE, or it went away). With `stdin_once`, the first one closes stdin. */
  endStdin(sink: AttachSink): void {
    if (!this.#stdinSinks.delete(sink)) return;
    if (sink === this.#onceOwner) {
      this.#log.debug("stdin_once: first attach session ended its stdin", { id: this.#id });
      this.closeStdin();
    }
  }

  /** Writes a session's stdin data to the container; resolves once the pipe took it. Never rejects. */
  async writeStdin(sink: AttachSink, data: Uint8Array): Promise<void> {
    const w = this.#stdin;
    if (w === undefined || !this.#stdinSinks.has(sink) || data.byteLength === 0) return;
    try {
      await w.write(data);
    } catch (err) {
      // The container closed its end (EPIPE) or exited: nothing can be written any more.
      this.#log.debug("container stdin write failed", { id: this.#id, err: errorMessage(err) });
      if (this.#stdin === w) this.closeStdin();
    }
  }

  /** Closes the container's stdin for good (stdin_once, exit, forget). Idempotent. */
  closeStdin(): void {
    const w = this.#stdin;
    this.#stdin = undefined;
    w?.close().catch(() => {});
  }

  /** A session's terminal size: applied to a terminal, ignored for pipes. */
  resize(size: TerminalSize): void {
    this.#resize?.(size);
  }

  /** Fans out a chunk the container wrote (call after the log has it). */
  output(stream: LogStream, chunk: Uint8Array): void {
    if (this.#sinks.size === 0 || chunk.byteLength === 0) return;
    const want = stream === "stdout" ? (s: AttachSink) => s.stdout : (s: AttachSink) => s.stderr;
    let frames: Uint8Array[] | undefined;
    // Copied so the set may change under us: a sink that falls behind removes itself.
    for (const sink of [...this.#sinks]) {
      if (!want(sink)) continue;
      frames ??= encodeDataFrames(stream === "stdout" ? FrameKind.STDOUT : FrameKind.STDERR, chunk);
      for (const f of frames) sink.send(f);
    }
  }

  /** The container's exit is recorded: every session gets EXIT and is let go; stdin is closed. */
  exit(rec: ExitRecord): void {
    this.#exit = rec;
    this.closeStdin();
    const frame = encodeExit(rec);
    const sinks = [...this.#sinks];
    this.#sinks.clear();
    this.#stdinSinks.clear();
    for (const sink of sinks) sink.finish(frame);
  }
}
