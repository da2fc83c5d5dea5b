/**
 * `davit portforward --netns PATH`: the port-forward helper, started by the daemon for one CRI PortForward session
 * (docs/port-forward-helper.md). It moves its JavaScript thread into the pod's network namespace before any
 * socket exists, then opens TCP connections to the pod's loopback on request and multiplexes them over
 * stdin/stdout as frames (port_forward_frame.ts). Exit status: 0 when stdin ends, 1 when it cannot enter the
 * namespace or the daemon breaks the protocol (the reason on stderr, its only other use), 2 for a bad command line.
 * @module
 */
import { errorMessage, InvalidArgument } from "../lib/errors.ts";
import { connectLoopback, reason } from "./loopback_dial.ts";
import { AT, CLONE, close, O, openat, setns } from "../lib/libc.ts";
import {
  encodeError,
  encodeFrame,
  encodeReady,
  encodeWindow,
  type Frame,
  FrameDecoder,
  FrameType,
  FROM_DAEMON,
  MAX_CONNECTIONS,
  MAX_FRAME_PAYLOAD,
  payloadNumber,
  WINDOW_BYTES,
} from "./port_forward_frame.ts";

/** The usage text of `davit portforward --help`. */
export const USAGE = `Usage: davit portforward --netns PATH

The port-forward helper, started by the davit daemon for a CRI PortForward session: it enters the network
namespace PATH and serves TCP connections to the pod's loopback over stdin/stdout (see docs/port-forward-helper.md).

Flags:
  --netns PATH  the pinned network namespace file to enter
  --help        print this text`;

/**
 * Enters the network namespace pinned at `path` with the calling (JavaScript) thread. Deno creates sockets on the
 * thread that runs JavaScript, so every later Deno.connect is made inside it; other threads (V8's, the blocking
 * pool's) stay where they were, which is why nothing here ever resolves a host name. Checks the thread's namespace
 * afterwards, so a kernel or runtime that behaved otherwise is caught before a connection goes astray.
 */
export function enterNetns(path: string): void {
  const fd = openat(AT.FDCWD, path, O.RDONLY);
  try {
    setns(fd, CLONE.NEWNET);
  } finally {
    close(fd);
  }
  const want = `net:[${Deno.statSync(path).ino}]`;
  const got = Deno.readLinkSync("/proc/thread-self/ns/net");
  if (got !== want) throw new Error(`after setns the thread is in ${got}, not ${want} (${JSON.stringify(path)})`);
}

/** Resolves waiters when notified (one wake-up for all current waiters). */
class Wakeup {
  #waiters: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** The helper's stdout: frames in the order sent; once the daemon stops reading, everything else is dropped. */
class Output {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #broken = false;
  readonly onBroken: () => void;

  constructor(writable: WritableStream<Uint8Array>, onBroken: () => void) {
    this.#writer = writable.getWriter();
    this.onBroken = onBroken;
  }

  /** Sends one frame; resolves once written (the back-pressure of each connection's reader). */
  async send(frame: Uint8Array): Promise<void> {
    if (this.#broken) return;
    try {
      await this.#writer.write(frame);
    } catch {
      if (!this.#broken) {
        this.#broken = true;
        this.onBroken();
      }
    }
  }

  async close(): Promise<void> {
    if (!this.#broken) await this.#writer.close().catch(() => {});
  }
}

/** One connection to the pod: connects, then pumps both directions within their windows until both end. */
class Target {
  readonly id: number;
  readonly port: number;
  readonly #out: Output;
  readonly #abort = new AbortController();
  #conn: Deno.TcpConn | undefined;
  /** DATA from the daemon not yet written to the socket. */
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  /** The daemon sent CLOSE_WRITE. */
  #writeEnded = false;
  /** Bytes the daemon still accepts (WINDOW minus unacknowledged DATA sent). */
  #credit = WINDOW_BYTES;
  #failure: string | undefined;
  readonly #wake = new Wakeup();

  constructor(id: number, port: number, out: Output) {
    this.id = id;
    this.port = port;
    this.#out = out;
  }

  /** DATA from the daemon. Throws InvalidArgument when it breaks the protocol. */
  data(payload: Uint8Array): void {
    if (this.#writeEnded) throw new InvalidArgument(`DATA for connection ${this.id} after its CLOSE_WRITE`);
    if (this.#pendingBytes + payload.byteLength > WINDOW_BYTES) {
      throw new InvalidArgument(`DATA for connection ${this.id} exceeds its window of ${WINDOW_BYTES} bytes`);
    }
    if (this.#abort.signal.aborted) return;
    this.#pending.push(payload);
    this.#pendingBytes += payload.byteLength;
    this.#wake.notify();
  }

  /** CLOSE_WRITE from the daemon. */
  closeWrite(): void {
    if (this.#writeEnded) throw new InvalidArgument(`CLOSE_WRITE for connection ${this.id} twice`);
    this.#writeEnded = true;
    this.#wake.notify();
  }

  /** WINDOW from the daemon. */
  window(bytes: number): void {
    this.#credit += bytes;
    if (this.#credit > WINDOW_BYTES) {
      throw new InvalidArgument(`WINDOW for connection ${this.id} returns more than was sent`);
    }
    this.#wake.notify();
  }

  /** CLOSE from the daemon, or the helper ending: drops the connection at once. */
  abort(): void {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
    this.#pending = [];
    this.#wake.notify();
  }

  /** Runs the connection to its end; `forget` frees the id just before CLOSED is sent. */
  async run(forget: () => void): Promise<void> {
    try {
      this.#conn = await connectLoopback(this.port, { signal: this.#abort.signal });
    } catch (err) {
      if (!this.#abort.signal.aborted) this.#failure = errorMessage(err);
    }
    if (this.#conn && this.#abort.signal.aborted) this.#conn.close();
    else if (this.#conn) {
      await this.#out.send(encodeFrame(FrameType.OPENED, this.id));
      await Promise.all([this.#toPod(this.#conn), this.#toDaemon(this.#conn)]);
      this.abort();
    }
    forget();
    if (this.#failure !== undefined) await this.#out.send(encodeError(this.id, this.#failure));
    await this.#out.send(encodeFrame(FrameType.CLOSED, this.id));
  }

  #fail(message: string): void {
    if (this.#abort.signal.aborted) return;
    this.#failure ??= message;
    this.abort();
  }

  /** The daemon's bytes into the socket; each written chunk is acknowledged with WINDOW. */
  async #toPod(conn: Deno.TcpConn): Promise<void> {
    try {
      for (;;) {
        if (this.#abort.signal.aborted) return;
        const chunk = this.#pending.shift();
        if (chunk === undefined) {
          if (this.#writeEnded) return await conn.closeWrite();
          await this.#wake.wait();
          continue;
        }
        for (let off = 0; off < chunk.byteLength;) off += await conn.write(chunk.subarray(off));
        this.#pendingBytes -= chunk.byteLength;
        await this.#out.send(encodeWindow(this.id, chunk.byteLength));
      }
    } catch (err) {
      this.#fail(`write to port ${this.port} in the pod: ${reason(err)}`);
    }
  }

  /** The socket's bytes to the daemon, never more than its window allows. */
  async #toDaemon(conn: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(MAX_FRAME_PAYLOAD);
    try {
      for (;;) {
        if (this.#abort.signal.aborted) return;
        if (this.#credit === 0) {
          await this.#wake.wait();
          continue;
        }
        const n = await conn.read(buf.subarray(0, Math.min(buf.byteLength, this.#credit)));
        if (n === null) return await this.#out.send(encodeFrame(FrameType.CLOSE_WRITE, this.id));
        this.#credit -= n;
        await this.#out.send(encodeFrame(FrameType.DATA, this.id, buf.subarray(0, n)));
      }
    } catch (err) {
      this.#fail(`read from port ${this.port} in the pod: ${reason(err)}`);
    }
  }
}

/** The multiplexer: frames from stdin to connections, until stdin ends or the daemon breaks the protocol. */
export class PortForwardHelper {
  readonly #out: Output;
  readonly #targets = new Map<number, Target>();
  readonly #running = new Set<Promise<void>>();
  #stop: (() => void) | undefined;

  constructor(output: WritableStream<Uint8Array>) {
    this.#out = new Output(output, () => this.#stop?.());
  }

  /** Serves `input` until it ends; returns the exit status (protocol errors go to stderr). */
  async serve(input: ReadableStream<Uint8Array>): Promise<number> {
    const decoder = new FrameDecoder(FROM_DAEMON);
    let status = 0;
    const reader = input.getReader();
    // A broken stdout ends the session as the end of stdin does: cancelling ends the pending read.
    this.#stop = () => void reader.cancel().catch(() => {});
    try {
      await this.#out.send(encodeReady());
      for (;;) {
        const next = await reader.read();
        if (next.done) break;
        for (const frame of decoder.push(next.value)) this.#dispatch(frame);
      }
      if (decoder.heldBytes > 0) throw new InvalidArgument(`input ended inside a frame (${decoder.heldBytes} bytes)`);
    } catch (err) {
      console.error(`davit portforward: ${errorMessage(err)}`);
      status = 1;
    } finally {
      reader.releaseLock();
    }
    for (const t of this.#targets.values()) t.abort();
    await Promise.all(this.#running);
    await this.#out.close();
    return status;
  }

  #dispatch(frame: Frame): void {
    const { type, id } = frame;
    if (type === FrameType.OPEN) return this.#open(id, payloadNumber(frame));
    // A frame may cross the CLOSED that freed its id: it is dropped.
    const t = this.#targets.get(id);
    if (t === undefined) return;
    if (type === FrameType.DATA) t.data(frame.payload);
    else if (type === FrameType.CLOSE_WRITE) t.closeWrite();
    else if (type === FrameType.WINDOW) t.window(payloadNumber(frame));
    else if (type === FrameType.CLOSE) t.abort();
  }

  #open(id: number, port: number): void {
    if (this.#targets.has(id)) throw new InvalidArgument(`OPEN for connection ${id}, which is open`);
    if (this.#targets.size >= MAX_CONNECTIONS) {
      void this.#out.send(encodeError(id, `connect to port ${port} in the pod: ${MAX_CONNECTIONS} connections open`))
        .then(() => this.#out.send(encodeFrame(FrameType.CLOSED, id)));
      return;
    }
    const t = new Target(id, port, this.#out);
    this.#targets.set(id, t);
    const run = t.run(() => this.#targets.delete(id)).finally(() => this.#running.delete(run));
    this.#running.add(run);
  }
}

/** Parses `--netns PATH` (or `--netns=PATH`); returns the path or a message. Pure. */
export function parseArgs(args: readonly string[]): { netns: string } | { help: true } | { error: string } {
  let netns: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") return { help: true };
    let value: string | undefined;
    if (arg === "--netns") value = args[++i];
    else if (arg.startsWith("--netns=")) value = arg.slice("--netns=".length);
    else return { error: `unknown argument ${JSON.stringify(arg)}` };
    if (value === undefined || value === "") return { error: "--netns needs a path" };
    if (netns !== undefined) return { error: "--netns given twice" };
    netns = value;
  }
  return netns === undefined ? { error: "--netns is required" } : { netns };
}

/** The mode's entry point. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  if ("help" in parsed) {
    console.log(USAGE);
    return 0;
  }
  if ("error" in parsed) {
    console.error(`davit portforward: ${parsed.error}\n\n${USAGE}`);
    return 2;
  }
  try {
    enterNetns(parsed.netns);
  } catch (err) {
    console.error(
      `davit portforward: cannot enter network namespace ${JSON.stringify(parsed.netns)}: ${errorMessage(err)}`,
    );
    return 1;
  }
  return await new PortForwardHelper(Deno.stdout.writable).serve(Deno.stdin.readable);
}
