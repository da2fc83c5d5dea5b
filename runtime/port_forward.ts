/**
 * The daemon's side of port forwarding: {@link PortForwarder} starts one `davit portforward` helper in a pod's
 * network namespace and opens TCP connections to the pod's loopback through it, many at once, each with its own
 * flow control (docs/port-forward-helper.md).
 * @module
 */
import {
  DeadlineExceeded,
  errorMessage,
  FailedPrecondition,
  InvalidArgument,
  ResourceExhausted,
  Unavailable,
} from "../lib/errors.ts";
import { selfCommand } from "../lib/self_exec.ts";
import { Connection, type PortConnection } from "./port_forward_connection.ts";
import {
  encodeOpen,
  errorText,
  type Frame,
  FrameDecoder,
  FrameType,
  frameTypeName,
  FROM_HELPER,
  MAX_CONNECTIONS,
  payloadNumber,
  PROTOCOL_VERSION,
} from "./port_forward_frame.ts";

export type { PortConnection } from "./port_forward_connection.ts";

/** Options of {@link PortForwarder.start}. */
export interface PortForwarderOptions {
  /** Ends the helper and every connection when aborted. */
  signal?: AbortSignal;
  /** How long the helper may take to enter the namespace (default 10 s). */
  startTimeoutMs?: number;
  /** How long {@link PortForwarder.close} waits for the helper to exit before killing it (default 5 s). */
  closeTimeoutMs?: number;
}

const STDERR_KEEP = 8192;

/** Reads all of `stream`, keeping its first bytes: the helper writes errors only, so more is noise. */
async function drainText(stream: ReadableStream<Uint8Array>): Promise<string> {
  const kept: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    if (size < STDERR_KEEP) kept.push(chunk.subarray(0, STDERR_KEEP - size));
    size += chunk.byteLength;
  }
  const all = new Uint8Array(Math.min(size, STDERR_KEEP));
  let off = 0;
  for (const c of kept) {
    all.set(c, off);
    off += c.byteLength;
  }
  return new TextDecoder().decode(all).trim();
}

/**
 * One `davit portforward` helper in a pod's network namespace. Start it with {@link PortForwarder.start}, open
 * connections with {@link connect}, end it with {@link close} (or `await using`).
 */
export class PortForwarder implements AsyncDisposable {
  /** The pinned network namespace the helper serves. */
  readonly netnsPath: string;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #conns = new Map<number, Connection>();
  readonly #ready: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly #closeTimeoutMs: number;
  #nextId = 1;
  #isReady = false;
  #failure: Error | undefined;
  #closing: Promise<void> | undefined;
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;
  #unlisten: () => void = () => {};

  private constructor(netnsPath: string, child: Deno.ChildProcess, opts: PortForwarderOptions) {
    this.netnsPath = netnsPath;
    this.#child = child;
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    this.#stdin = child.stdin.getWriter();
    this.#ready.promise.catch(() => {});
    this.#stderr = drainText(child.stderr).catch(() => "");
    this.#reading = this.#read();
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => void this.#shutdown(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
      signal.addEventListener("abort", onAbort, { once: true });
      this.#unlisten = () => signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Starts a helper in the network namespace pinned at `netnsPath` and waits until it is inside. Rejects with
   * the helper's own message when it cannot enter (Unavailable), or with DeadlineExceeded after startTimeoutMs.
   */
  static async start(netnsPath: string, opts: PortForwarderOptions = {}): Promise<PortForwarder> {
    opts.signal?.throwIfAborted();
    const child = selfCommand(["portforward", "--netns", netnsPath], {
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const fwd = new PortForwarder(netnsPath, child, opts);
    const timeoutMs = opts.startTimeoutMs ?? 10_000;
    const timer = setTimeout(
      () =>
        fwd.#fail(
          new DeadlineExceeded(`port-forward helper for ${JSON.stringify(netnsPath)}: not ready after ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    try {
      await fwd.#ready.promise;
    } catch (err) {
      await fwd.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return fwd;
  }

  /** The helper's process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Connections open or closing (ids not yet freed by the helper). */
  get connections(): number {
    return this.#conns.size;
  }

  /**
   * Opens a TCP connection to `port` on the pod's loopback (127.0.0.1, else [::1]). Rejects with the helper's
   * message (Unavailable), e.g. `connect to port 8080 in the pod: connection refused`.
   */
  async connect(port: number): Promise<PortConnection> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new InvalidArgument(`port ${port} is not in 1-65535`);
    }
    if (this.#failure) throw this.#failure;
    if (this.#conns.size >= MAX_CONNECTIONS) {
      throw new ResourceExhausted(
        `port forward to ${JSON.stringify(this.netnsPath)}: ${MAX_CONNECTIONS} connections open`,
      );
    }
    while (this.#conns.has(this.#nextId)) this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    const conn = new Connection({ id: this.#nextId, port, send: (frame) => this.#write(frame) });
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    this.#conns.set(conn.id, conn);
    await this.#write(encodeOpen(conn.id, port));
    return await conn.opened;
  }

  /** Writes one frame to the helper (frames go out in call order). */
  async #write(frame: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure;
    try {
      await this.#stdin.write(frame);
    } catch (err) {
      this.#fail(
        new Unavailable(`port-forward helper for ${JSON.stringify(this.netnsPath)} stopped reading`, { cause: err }),
      );
      throw this.#failure;
    }
  }

  /** Ends every connection and the helper (stdin closed, then a kill after closeTimeoutMs), and reaps it. */
  close(): Promise<void> {
    return this.#shutdown(new FailedPrecondition(`port forward to ${JSON.stringify(this.netnsPath)} was closed`));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #shutdown(reason: Error): Promise<void> {
    this.#closing ??= (async () => {
      this.#fail(reason);
      await this.#stdin.close().catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        this.#child.status.then(() => true),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), this.#closeTimeoutMs)),
      ]);
      clearTimeout(timer);
      if (!exited) {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      await this.#child.status;
      await this.#reading;
      await this.#stderr;
      this.#unlisten();
    })();
    return this.#closing;
  }

  /** Fails the forwarder: every connection errors with `err`, and so does every later call. */
  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#ready.reject(err);
    for (const c of this.#conns.values()) c.fail(err);
  }

  async #read(): Promise<void> {
    const decoder = new FrameDecoder(FROM_HELPER);
    try {
      for await (const chunk of this.#child.stdout) {
        for (const frame of decoder.push(chunk)) this.#dispatch(frame);
      }
      if (decoder.heldBytes > 0) throw new InvalidArgument(`output ended inside a frame`);
    } catch (err) {
      this.#fail(new Unavailable(`port-forward helper for ${JSON.stringify(this.netnsPath)}: ${errorMessage(err)}`));
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    if (this.#failure) return;
    // The helper ended without being asked to: its status and stderr say why.
    const [status, stderr] = await Promise.all([this.#child.status, this.#stderr]);
    const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
    this.#fail(
      new Unavailable(`port-forward helper for ${JSON.stringify(this.netnsPath)} ${how}${stderr ? `: ${stderr}` : ""}`),
    );
  }

  #dispatch(frame: Frame): void {
    const { type, id } = frame;
    if (type === FrameType.READY) {
      if (this.#isReady) throw new InvalidArgument("READY twice");
      this.#isReady = true;
      const version = payloadNumber(frame);
      if (version !== PROTOCOL_VERSION) {
        throw new InvalidArgument(`helper speaks protocol version ${version}, not ${PROTOCOL_VERSION}`);
      }
      return this.#ready.resolve();
    }
    if (!this.#isReady) throw new InvalidArgument(`${frameTypeName(type)} frame before READY`);
    const conn = this.#conns.get(id);
    if (conn === undefined) throw new InvalidArgument(`${frameTypeName(type)} frame for unknown connection ${id}`);
    switch (type) {
      case FrameType.OPENED:
        return conn.onOpened();
      case FrameType.DATA:
        return conn.onData(frame.payload);
      case FrameType.CLOSE_WRITE:
        return conn.onCloseWrite();
      case FrameType.WINDOW:
        return conn.onWindow(payloadNumber(frame));
      case FrameType.ERROR:
        return conn.fail(new Unavailable(errorText(frame)));
      case FrameType.CLOSED:
        this.#conns.delete(id);
        return conn.onClosed();
    }
  }
}
