/**
 * A pseudoterminal master as streams: what the slave side writes comes out of {@link Pty.readable}, what
 * {@link Pty.write} takes goes to the slave's reader, and {@link Pty.resize} sets the window size (the kernel then
 * signals SIGWINCH to the slave's foreground process group). The master is non-blocking; reads and writes are
 * synchronous FFI calls tried first and waited for with poll(2) off the event loop only when they would block
 * (see fd_waiter.ts). On Linux a master whose last slave closed reads EIO once its buffer is drained: that is the
 * end of the readable, not an error.
 * @module
 */
import { FdWaiter } from "./fd_waiter.ts";
import {
  AT,
  close,
  ioctl,
  isErrno,
  O,
  openat,
  OwnedFd,
  POLL,
  readNonBlocking,
  setNonBlocking,
  writeNonBlocking,
} from "./libc.ts";

/** Terminal ioctl requests (asm-generic/ioctls.h, shared by x86_64 and arm64). */
export const TIOC = {
  /** Read struct winsize. */
  GWINSZ: 0x5413,
  /** Write struct winsize. */
  SWINSZ: 0x5414,
  /** _IOR('T', 0x30, unsigned int): the pty's number (its slave is /dev/pts/<n>). */
  GPTN: 0x80045430,
  /** _IOW('T', 0x31, int): lock (1) or unlock (0) the slave. */
  SPTLCK: 0x40045431,
} as const;

/** A terminal's size in character cells. */
export interface WindowSize {
  cols: number;
  rows: number;
}

/** How long one poll waits before a cancelled read or write looks again; closing wakes every wait at once. */
const POLL_SLICE_MS = 200;

function checkSize(cols: number, rows: number): void {
  for (const [what, v] of [["cols", cols], ["rows", rows]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) {
      throw new RangeError(`terminal ${what} must be an integer from 0 to 65535, got ${v}`);
    }
  }
}

/** TIOCSWINSZ: struct winsize { u16 ws_row, ws_col, ws_xpixel, ws_ypixel } (pixels left 0). */
export function setWindowSize(fd: number, size: WindowSize): void {
  checkSize(size.cols, size.rows);
  const ws = new Uint16Array([size.rows, size.cols, 0, 0]);
  ioctl(fd, TIOC.SWINSZ, new Uint8Array(ws.buffer));
}

/** TIOCGWINSZ on a master or slave descriptor. */
export function getWindowSize(fd: number): WindowSize {
  const ws = new Uint16Array(4);
  ioctl(fd, TIOC.GWINSZ, new Uint8Array(ws.buffer));
  return { rows: ws[0] ?? 0, cols: ws[1] ?? 0 };
}

function ownedBytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return data.buffer instanceof ArrayBuffer ? data as Uint8Array<ArrayBuffer> : new Uint8Array(data);
}

/** A pseudoterminal master; see the module comment. Owns its descriptor from construction on. */
export class Pty implements AsyncDisposable {
  /** The slave's output: ends when the last slave closes (EIO) or the pty is closed. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The terminal's name when known (`/dev/pts/3`, or what an OCI runtime sent with the descriptor). */
  readonly name: string | undefined;
  #fd: number;
  #closed = false;
  #readDone = false;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  #pulling: Promise<void> | undefined;
  #writing: Promise<void> = Promise.resolve();
  readonly #waiter = new FdWaiter();
  readonly #buf = new Uint8Array(32 * 1024);

  /** Takes ownership of the master descriptor `fd` (made non-blocking here). */
  constructor(fd: number, opts: { name?: string } = {}) {
    this.#fd = fd;
    this.name = opts.name;
    try {
      setNonBlocking(fd);
    } catch (err) {
      void this.#waiter.close();
      throw err;
    }
    // highWaterMark 0: nothing is read (and no poll is in flight) until someone asks, so an unread terminal
    // applies backpressure to the writer on the slave side instead of buffering here.
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      pull: (c) => {
        const p = this.#pull(c);
        this.#pulling = p;
        return p.finally(() => this.#pulling = undefined);
      },
      cancel: async () => {
        this.#readDone = true;
        await this.#pulling;
      },
    }, { highWaterMark: 0 });
  }

  /** The master descriptor (-1 once closed). */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  async #pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      if (this.#readDone) return;
      if (this.#closed) return this.#endRead();
      let n: number | undefined;
      try {
        n = readNonBlocking(this.#fd, this.#buf);
      } catch (err) {
        if (isErrno(err, "EIO")) return this.#endRead();
        this.#readDone = true;
        c.error(err);
        return;
      }
      if (n === 0) return this.#endRead();
      if (n !== undefined) {
        c.enqueue(this.#buf.slice(0, n));
        return;
      }
      await this.#waiter.wait(this.#fd, POLL.IN, POLL_SLICE_MS);
    }
  }

  #endRead(): void {
    if (this.#readDone) return;
    this.#readDone = true;
    try {
      this.#controller?.close();
    } catch {
      // already closed or errored
    }
  }

  /**
   * Writes all of `data` to the terminal (the slave's input), waiting while the terminal's buffer is full.
   * Writes are queued, so concurrent calls never interleave. Rejects once the pty is closed, and with EIO when
   * the slave side is gone.
   */
  write(data: Uint8Array): Promise<void> {
    const p = this.#writing.then(() => this.#writeAll(ownedBytes(data)));
    this.#writing = p.catch(() => {});
    return p;
  }

  async #writeAll(data: Uint8Array<ArrayBuffer>): Promise<void> {
    let off = 0;
    while (off < data.byteLength) {
      if (this.#closed) throw new Deno.errors.BadResource(`pty ${this.name ?? this.#fd}: closed`);
      const n = writeNonBlocking(this.#fd, off === 0 ? data : data.subarray(off));
      if (n === undefined) await this.#waiter.wait(this.#fd, POLL.OUT, POLL_SLICE_MS);
      else off += n;
    }
  }

  /** Sets the window size (TIOCSWINSZ); the slave's foreground process group gets SIGWINCH. */
  resize(cols: number, rows: number): void {
    if (this.#closed) throw new Deno.errors.BadResource(`pty ${this.name ?? this.#fd}: closed`);
    setWindowSize(this.#fd, { cols, rows });
  }

  /** The current window size (TIOCGWINSZ). */
  size(): WindowSize {
    if (this.#closed) throw new Deno.errors.BadResource(`pty ${this.name ?? this.#fd}: closed`);
    return getWindowSize(this.#fd);
  }

  /**
   * Ends the readable, fails queued writes, waits until no read, write or poll is in flight, and closes the
   * master (the slave side then sees a hangup). Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) {
      await this.#writing;
      return;
    }
    this.#closed = true;
    this.#waiter.wake();
    await this.#pulling;
    this.#endRead();
    await this.#writing;
    await this.#waiter.close();
    close(this.#fd);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A new pseudoterminal pair from /dev/ptmx; see {@link openPty}. */
export interface PtyPair {
  master: Pty;
  /** The slave, opened without becoming anyone's controlling terminal; close it to hang up the master. */
  slave: OwnedFd;
  /** The slave's path, `/dev/pts/<n>`. */
  slavePath: string;
}

/**
 * Puts a terminal in raw mode, as termios(3) describes cfmakeraw: no line editing, echo, signals or output
 * processing; 8-bit characters; reads return as soon as one byte is there. Uses the TCGETS/TCSETS ioctls on the
 * kernel's `struct termios` (four flag words, the line discipline byte, 19 control characters).
 */
export function setRawMode(fd: number): void {
  const t = new Uint8Array(36);
  const v = new DataView(t.buffer);
  ioctl(fd, TCGETS, t);
  const le = true;
  v.setUint32(0, v.getUint32(0, le) & ~(0o1 | 0o2 | 0o10 | 0o40 | 0o100 | 0o200 | 0o400 | 0o2000), le); // iflag
  v.setUint32(4, v.getUint32(4, le) & ~0o1, le); // oflag: OPOST
  v.setUint32(8, (v.getUint32(8, le) & ~(0o60 | 0o400)) | 0o60, le); // cflag: CS8, no parity
  v.setUint32(12, v.getUint32(12, le) & ~(0o10 | 0o100 | 0o2 | 0o1 | 0o100000), le); // lflag: ECHO ECHONL ICANON ISIG IEXTEN
  t[17 + 6] = 1; // VMIN
  t[17 + 5] = 0; // VTIME
  ioctl(fd, TCSETS, t);
}

const TCGETS = 0x5401;
const TCSETS = 0x5402;

/**
 * Opens a new pseudoterminal (posix_openpt, unlockpt and ptsname by their ioctls) and its slave, both
 * close-on-exec and neither becoming a controlling terminal. Holding the slave open keeps the master from
 * reading EIO before another process (a child given the slave's path) has opened it. With `raw`, the slave is put
 * in raw mode before anyone uses it: a relay such as a foreground `runc exec -t` then passes every byte through,
 * including ^D, which the container's own terminal (not this one) must interpret.
 */
export function openPty(opts: { size?: WindowSize; raw?: boolean } = {}): PtyPair {
  const master = openat(AT.FDCWD, "/dev/ptmx", O.RDWR | O.NOCTTY | O.NONBLOCK);
  let slave = -1;
  try {
    ioctl(master, TIOC.SPTLCK, new Uint8Array(new Int32Array([0]).buffer));
    const n = new Uint32Array(1);
    ioctl(master, TIOC.GPTN, new Uint8Array(n.buffer));
    const slavePath = `/dev/pts/${n[0]}`;
    slave = openat(AT.FDCWD, slavePath, O.RDWR | O.NOCTTY);
    if (opts.size !== undefined) setWindowSize(master, opts.size);
    if (opts.raw) setRawMode(slave);
    return { master: new Pty(master, { name: slavePath }), slave: new OwnedFd(slave), slavePath };
  } catch (err) {
    if (slave >= 0) close(slave);
    close(master);
    throw err;
  }
}
