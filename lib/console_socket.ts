/**
 * The receiving end of an OCI runtime's `--console-socket` (runtime-spec "Runtime and Lifecycle", console socket:
 * the runtime connects to an AF_UNIX stream socket and sends the pty master in one message, an SCM_RIGHTS control
 * message holding the descriptor, with a name as the payload: runc 1.1 sends `/dev/ptmx`). The listening socket is made here
 * with FFI, mode 0600, and is closed and unlinked once a terminal arrived, the wait failed, or it was closed.
 * Nothing blocks the event loop: the sockets are non-blocking and waits are poll(2) calls off the event loop
 * that an AbortSignal, a deadline or {@link ConsoleSocket.close} end.
 * @module
 */
import { DavitError, DeadlineExceeded, InvalidArgument } from "./errors.ts";
import { FdWaiter } from "./fd_waiter.ts";
import {
  acceptNonBlocking,
  AF,
  bindUnix,
  close,
  fchmod,
  listen,
  POLL,
  recvFds,
  SOCK,
  socket,
  UNIX_PATH_MAX,
} from "./libc.ts";
import { Pty } from "./pty.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options of {@link ConsoleSocket.receive}. */
export interface ReceiveOptions {
  /** Aborting ends the wait with the signal's reason. */
  signal?: AbortSignal;
  /** Deadline for the runtime to connect and send; the wait then fails with DeadlineExceeded. */
  timeoutMs?: number;
}

/** A listening console socket that hands out one {@link Pty}; see the module comment. */
export class ConsoleSocket implements AsyncDisposable {
  /** The socket's path, to pass as `--console-socket`. */
  readonly path: string;
  #fd: number;
  #closed = false;
  #receiving: Promise<unknown> | undefined;
  readonly #waiter: FdWaiter;

  private constructor(path: string, fd: number, waiter: FdWaiter) {
    this.path = path;
    this.#fd = fd;
    this.#waiter = waiter;
  }

  /**
   * Creates the socket at `path` (at most 107 bytes; the file must not exist) with mode 0600 and listens.
   * Put it in a directory only the daemon can enter: the mode alone does not stop a process already inside.
   */
  static listen(path: string): ConsoleSocket {
    const bytes = encoder.encode(path).byteLength;
    if (bytes > UNIX_PATH_MAX) {
      throw new InvalidArgument(
        `Cannot create console socket ${JSON.stringify(path)}: ${bytes} bytes, a socket path holds ${UNIX_PATH_MAX}`,
      );
    }
    const fd = socket(AF.UNIX, SOCK.STREAM | SOCK.NONBLOCK);
    let bound = false;
    try {
      // The socket inode's mode (less the umask) becomes the file's at bind: no window with a wider mode.
      fchmod(fd, 0o600);
      bindUnix(fd, path);
      bound = true;
      Deno.chmodSync(path, 0o600);
      listen(fd, 1);
      return new ConsoleSocket(path, fd, new FdWaiter());
    } catch (err) {
      close(fd);
      if (bound) removeQuietly(path);
      throw err;
    }
  }

  /** True once the socket was closed (after a receive, or by {@link close}). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Waits for the runtime to connect and send the pty master, and returns it as a {@link Pty} named after the
   * payload. One connection is served; the socket is closed and unlinked afterwards, whatever happened.
   */
  receive(opts: ReceiveOptions = {}): Promise<Pty> {
    if (this.#receiving !== undefined) throw new TypeError(`console socket ${this.path}: already receiving`);
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource(`console socket ${this.path}: closed`));
    const p = this.#receive(opts);
    this.#receiving = p.catch(() => {});
    return p;
  }

  async #receive(opts: ReceiveOptions): Promise<Pty> {
    const { signal } = opts;
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    const onAbort = () => this.#waiter.wake();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      signal?.throwIfAborted();
      let conn: number | undefined;
      while ((conn = acceptNonBlocking(this.#fd)) === undefined) await this.#wait(this.#fd, deadline, opts);
      try {
        return await this.#readMaster(conn, deadline, opts);
      } finally {
        close(conn);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      await this.#shutdown();
    }
  }

  async #readMaster(conn: number, deadline: number, opts: ReceiveOptions): Promise<Pty> {
    const buf = new Uint8Array(4096);
    for (;;) {
      const msg = recvFds(conn, buf, 4);
      if (msg === undefined) {
        await this.#wait(conn, deadline, opts);
        continue;
      }
      const [master, ...extra] = msg.fds;
      for (const fd of extra) close(fd);
      if (master === undefined || msg.truncated) {
        if (master !== undefined) close(master);
        const what = msg.bytes === 0 && master === undefined
          ? "the runtime closed the connection without sending a terminal"
          : msg.truncated
          ? "the runtime's message carried more descriptors than a terminal"
          : "the runtime's message carried no descriptor";
        throw new DavitError("Internal", `console socket ${this.path}: ${what}`);
      }
      try {
        const name = decoder.decode(buf.subarray(0, msg.bytes)).replace(/\0+$/, "");
        return new Pty(master, name === "" ? {} : { name });
      } catch (err) {
        close(master);
        throw err;
      }
    }
  }

  /** One wait for `fd` to be readable, then the checks that end the receive. */
  async #wait(fd: number, deadline: number, opts: ReceiveOptions): Promise<void> {
    const left = deadline - Date.now();
    if (left > 0) await this.#waiter.wait(fd, POLL.IN, Number.isFinite(left) ? Math.ceil(left) : -1);
    opts.signal?.throwIfAborted();
    if (this.#closed) throw new Deno.errors.BadResource(`console socket ${this.path}: closed while waiting`);
    if (Date.now() >= deadline) {
      throw new DeadlineExceeded(`console socket ${this.path}: no terminal received within ${opts.timeoutMs}ms`);
    }
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    await this.#waiter.close();
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      close(fd);
      removeQuietly(this.path);
    }
  }

  /** Ends a waiting {@link receive} (it rejects), closes and unlinks the socket. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#waiter.wake();
    await this.#receiving;
    await this.#shutdown();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
