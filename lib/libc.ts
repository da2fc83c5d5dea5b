/**
 * Deno FFI bindings to the libc calls Deno lacks (fd-relative file operations, openat2, xattrs, mounts, prctl).
 * libc.so.6 is opened lazily, once. Symbols live in one table so later code adds a line, not a module. Every
 * wrapper throws {@link ErrnoError} (named after errno, with the operation and path) instead of returning -1.
 * Calls are synchronous FFI calls: errno is thread-local and is read right after the call on the same thread.
 * @module
 */

/** The symbol table handed to Deno.dlopen. Aliases of `syscall` cover calls glibc does not wrap everywhere. */
const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "i64" },
  write: { parameters: ["i32", "buffer", "usize"], result: "i64" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  openat2: { name: "syscall", parameters: ["i64", "i32", "buffer", "buffer", "usize"], result: "i64" },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  mknodat: { parameters: ["i32", "buffer", "u32", "u64"], result: "i32" },
  symlinkat: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  readlinkat: { parameters: ["i32", "buffer", "buffer", "usize"], result: "i64" },
  linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  renameat: { parameters: ["i32", "buffer", "i32", "buffer"], result: "i32" },
  renameat2: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32" },
  fchownat: { parameters: ["i32", "buffer", "u32", "u32", "i32"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  fchmodat: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  fsetxattr: { parameters: ["i32", "buffer", "buffer", "usize", "i32"], result: "i32" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "i64" },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "i64" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "i64" },
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  fsopen: { name: "syscall", parameters: ["i64", "buffer", "u32"], result: "i64" },
  fsconfig: { name: "syscall", parameters: ["i64", "i32", "u32", "buffer", "buffer", "i32"], result: "i64" },
  fsmount: { name: "syscall", parameters: ["i64", "i32", "u32", "u32"], result: "i64" },
  move_mount: { name: "syscall", parameters: ["i64", "i32", "buffer", "i32", "buffer", "u32"], result: "i64" },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  // The blocking form runs on a worker thread (a promise), so errno is not readable after it: see waitpidBlocking.
  waitpid_blocking: { name: "waitpid", parameters: ["i32", "buffer", "i32"], result: "i32", nonblocking: true },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i64" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i64" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  // Like waitpid_blocking, it runs on a worker thread and errno is not readable after it: see pollAsync.
  poll_blocking: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  setns: { parameters: ["i32", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
// Opened when this module loads, once per process: every mode that imports it calls into it sooner or later (every
// spawn marks descriptors close-on-exec), and a library opened at load time is never mistaken for a leak of
// whatever test first happened to call it.
const opened: Symbols = Deno.dlopen("libc.so.6", SYMBOLS).symbols;

function libc(): Symbols {
  return opened;
}

/**
 * System call numbers. Calls added to Linux from 5.1 on share one number on every architecture (the unified
 * table that starts at 424), so no per-architecture table is needed for these.
 */
const SYS = { open_tree: 428n, move_mount: 429n, fsopen: 430n, fsconfig: 431n, fsmount: 432n, openat2: 437n } as const;

const arm = Deno.build.arch === "aarch64";

/** open(2) flags; O_DIRECTORY and O_NOFOLLOW differ on arm64 (asm-generic/fcntl.h vs arch/arm64). */
export const O = {
  RDONLY: 0,
  WRONLY: 0o1,
  RDWR: 0o2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DIRECTORY: arm ? 0o40000 : 0o200000,
  NOFOLLOW: arm ? 0o100000 : 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

/** `*at` call constants (linux/fcntl.h). */
export const AT = {
  FDCWD: -100,
  SYMLINK_NOFOLLOW: 0x100,
  REMOVEDIR: 0x200,
  SYMLINK_FOLLOW: 0x400,
  EMPTY_PATH: 0x1000,
} as const;

/** openat2(2) `resolve` flags (linux/openat2.h). */
export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
  IN_ROOT: 0x10,
  CACHED: 0x20,
} as const;

/** File type bits of st_mode (sys/stat.h). */
export const S_IF = {
  MT: 0o170000,
  SOCK: 0o140000,
  LNK: 0o120000,
  REG: 0o100000,
  BLK: 0o060000,
  DIR: 0o040000,
  CHR: 0o020000,
  FIFO: 0o010000,
} as const;

/** mount(2) flags (linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
} as const;

/** umount2(2) flags. */
export const MNT = { FORCE: 1, DETACH: 2, EXPIRE: 4, UMOUNT_NOFOLLOW: 8 } as const;

/** New mount API constants (linux/mount.h). */
export const FS = {
  FSOPEN_CLOEXEC: 1,
  FSMOUNT_CLOEXEC: 1,
  CONFIG_SET_FLAG: 0,
  CONFIG_SET_STRING: 1,
  CONFIG_SET_FD: 5,
  CONFIG_CMD_CREATE: 6,
  MOUNT_ATTR_RDONLY: 0x1,
  MOUNT_ATTR_NOSUID: 0x2,
  MOUNT_ATTR_NODEV: 0x4,
  MOUNT_ATTR_NOEXEC: 0x8,
  MOVE_MOUNT_F_EMPTY_PATH: 0x4,
} as const;

/** renameat2(2) flags. */
export const RENAME = { NOREPLACE: 1, EXCHANGE: 2, WHITEOUT: 4 } as const;

/** Errno names by number (asm-generic/errno*.h, shared by x86_64 and arm64). */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  15: "ENOTBLK",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  31: "EMLINK",
  32: "EPIPE",
  34: "ERANGE",
  35: "EDEADLK",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
  61: "ENODATA",
  75: "EOVERFLOW",
  88: "ENOTSOCK",
  95: "EOPNOTSUPP",
  98: "EADDRINUSE",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  116: "ESTALE",
  122: "EDQUOT",
};

/** The symbolic name of an errno value (`EEXIST`), or `errno <n>` for ones not in the table. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** A failed libc call: `code` is the errno name, the message names the operation and path. */
export class ErrnoError extends Error {
  /** The raw errno value. */
  readonly errno: number;
  /** The errno name, e.g. `ELOOP`. */
  readonly code: string;
  /** The call that failed, e.g. `openat2`. */
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall}${detail === undefined ? "" : ` ${detail}`}: ${code} (${strerror(errno)})`);
    this.name = "ErrnoError";
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

/** True when `err` is an {@link ErrnoError} with one of the given codes. */
export function isErrno(err: unknown, ...codes: string[]): err is ErrnoError {
  return err instanceof ErrnoError && codes.includes(err.code);
}

function errno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

function strerror(n: number): string {
  const p = libc().strerror(n);
  return p === null ? "unknown error" : Deno.UnsafePointerView.getCString(p);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes `s` as a NUL-terminated C string; a NUL inside would silently truncate the path, so it is refused. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new TypeError(`string contains a NUL byte: ${JSON.stringify(s)}`);
  const out = new Uint8Array(s.length * 3 + 1);
  const { written } = encoder.encodeInto(s, out);
  return out.subarray(0, written + 1);
}

/** Throws the call's errno when `ret` is negative, retrying is the caller's choice; returns `ret` as a number. */
function check(ret: number | bigint, op: string, detail?: string): number {
  const n = Number(ret);
  if (n < 0) throw new ErrnoError(op, errno(), detail);
  return n;
}

function q(path: string): string {
  return JSON.stringify(path);
}

function fdDetail(dirfd: number, path: string): string {
  return dirfd === AT.FDCWD ? q(path) : `${q(path)} (dirfd ${dirfd})`;
}

/** A file descriptor that closes itself at the end of a `using` block. */
export class OwnedFd implements Disposable {
  #fd: number;
  constructor(fd: number) {
    this.#fd = fd;
  }
  /** The raw descriptor (-1 once closed). */
  get fd(): number {
    return this.#fd;
  }
  /** Closes the descriptor (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    close(fd);
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** close(2). EINTR after close still released the descriptor on Linux, so it is not retried. */
export function close(fd: number): void {
  const r = libc().close(fd);
  if (r < 0) {
    const e = errno();
    if (e !== 4) throw new ErrnoError("close", e, `fd ${fd}`);
  }
}

/** read(2) into `buf`; returns the byte count (0 at end of file). */
export function read(fd: number, buf: Uint8Array): number {
  for (;;) {
    const n = Number(libc().read(fd, buf, BigInt(buf.byteLength)));
    if (n >= 0) return n;
    const e = errno();
    if (e !== 4) throw new ErrnoError("read", e, `fd ${fd}`);
  }
}

/** Writes all of `buf` to `fd`, looping over short writes and EINTR. */
export function writeAll(fd: number, buf: Uint8Array): void {
  const sym = libc();
  let off = 0;
  while (off < buf.byteLength) {
    const chunk = off === 0 ? buf : buf.subarray(off);
    const n = Number(sym.write(fd, chunk, BigInt(chunk.byteLength)));
    if (n < 0) {
      const e = errno();
      if (e === 4) continue;
      throw new ErrnoError("write", e, `fd ${fd}`);
    }
    off += n;
  }
}

/** openat(2); returns the new descriptor. */
export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  return check(libc().openat(dirfd, cstr(path), flags | O.CLOEXEC, mode), "openat", fdDetail(dirfd, path));
}

const howBuf = new BigUint64Array(3);
const howBytes = new Uint8Array(howBuf.buffer);

/**
 * openat2(2) (Linux 5.6): like openat, with `resolve` restricting how the kernel walks the path, e.g.
 * `RESOLVE.BENEATH | RESOLVE.NO_MAGICLINKS` to refuse anything that leaves `dirfd` (`..`, absolute symlinks).
 */
export function openat2(
  dirfd: number,
  path: string,
  flags: number,
  opts: { mode?: number; resolve?: number } = {},
): number {
  howBuf[0] = BigInt(flags | O.CLOEXEC);
  howBuf[1] = BigInt(opts.mode ?? 0);
  howBuf[2] = BigInt(opts.resolve ?? 0);
  return check(libc().openat2(SYS.openat2, dirfd, cstr(path), howBytes, 24n), "openat2", fdDetail(dirfd, path));
}

/** mkdirat(2). */
export function mkdirat(dirfd: number, path: string, mode: number): void {
  check(libc().mkdirat(dirfd, cstr(path), mode), "mkdirat", fdDetail(dirfd, path));
}

/** Linux's dev_t encoding of a major/minor pair (glibc gnu_dev_makedev). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** mknodat(2); `mode` includes the file type bits (S_IF.CHR, ...). */
export function mknodat(dirfd: number, path: string, mode: number, dev: bigint = 0n): void {
  check(libc().mknodat(dirfd, cstr(path), mode, dev), "mknodat", fdDetail(dirfd, path));
}

/** symlinkat(2): creates `path` (relative to `dirfd`) containing `target`. */
export function symlinkat(target: string, dirfd: number, path: string): void {
  check(libc().symlinkat(cstr(target), dirfd, cstr(path)), "symlinkat", `${fdDetail(dirfd, path)} -> ${q(target)}`);
}

/** readlinkat(2). */
export function readlinkat(dirfd: number, path: string): string {
  const buf = new Uint8Array(4096);
  const n = check(
    libc().readlinkat(dirfd, cstr(path), buf, BigInt(buf.byteLength)),
    "readlinkat",
    fdDetail(dirfd, path),
  );
  return decoder.decode(buf.subarray(0, n));
}

/** linkat(2); without AT.SYMLINK_FOLLOW in `flags` a symlink at `oldpath` is linked itself, not followed. */
export function linkat(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags = 0): void {
  check(
    libc().linkat(olddirfd, cstr(oldpath), newdirfd, cstr(newpath), flags),
    "linkat",
    `${fdDetail(newdirfd, newpath)} -> ${fdDetail(olddirfd, oldpath)}`,
  );
}

/** unlinkat(2); AT.REMOVEDIR removes an empty directory. */
export function unlinkat(dirfd: number, path: string, flags = 0): void {
  check(libc().unlinkat(dirfd, cstr(path), flags), "unlinkat", fdDetail(dirfd, path));
}

/** renameat(2). */
export function renameat(olddirfd: number, oldpath: string, newdirfd: number, newpath: string): void {
  check(
    libc().renameat(olddirfd, cstr(oldpath), newdirfd, cstr(newpath)),
    "renameat",
    `${fdDetail(olddirfd, oldpath)} -> ${fdDetail(newdirfd, newpath)}`,
  );
}

/** renameat2(2) with RENAME.* flags (NOREPLACE fails with EEXIST, EXCHANGE swaps atomically). */
export function renameat2(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void {
  check(
    libc().renameat2(olddirfd, cstr(oldpath), newdirfd, cstr(newpath), flags),
    "renameat2",
    `${fdDetail(olddirfd, oldpath)} -> ${fdDetail(newdirfd, newpath)}`,
  );
}

/** fchownat(2); pass AT.SYMLINK_NOFOLLOW to change a symlink itself. */
export function fchownat(dirfd: number, path: string, uid: number, gid: number, flags: number): void {
  check(libc().fchownat(dirfd, cstr(path), uid, gid, flags), "fchownat", fdDetail(dirfd, path));
}

/** fchown(2). */
export function fchown(fd: number, uid: number, gid: number): void {
  check(libc().fchown(fd, uid, gid), "fchown", `fd ${fd}`);
}

/** fchmodat(2) (follows a symlink at `path`: Linux cannot chmod a symlink). */
export function fchmodat(dirfd: number, path: string, mode: number): void {
  check(libc().fchmodat(dirfd, cstr(path), mode, 0), "fchmodat", fdDetail(dirfd, path));
}

/** fchmod(2). */
export function fchmod(fd: number, mode: number): void {
  check(libc().fchmod(fd, mode), "fchmod", `fd ${fd}`);
}

/** A point in time as seconds and nanoseconds since the epoch (struct timespec). */
export interface Timespec {
  sec: number;
  nsec: number;
}

const timesBuf = new BigInt64Array(4);
const timesBytes = new Uint8Array(timesBuf.buffer);

function fillTimes(atime: Timespec, mtime: Timespec): Uint8Array {
  timesBuf[0] = BigInt(atime.sec);
  timesBuf[1] = BigInt(atime.nsec);
  timesBuf[2] = BigInt(mtime.sec);
  timesBuf[3] = BigInt(mtime.nsec);
  return timesBytes;
}

/** utimensat(2); pass AT.SYMLINK_NOFOLLOW to set a symlink's own times. */
export function utimensat(dirfd: number, path: string, atime: Timespec, mtime: Timespec, flags: number): void {
  check(libc().utimensat(dirfd, cstr(path), fillTimes(atime, mtime), flags), "utimensat", fdDetail(dirfd, path));
}

/** futimens(3). */
export function futimens(fd: number, atime: Timespec, mtime: Timespec): void {
  check(libc().futimens(fd, fillTimes(atime, mtime)), "futimens", `fd ${fd}`);
}

/** lsetxattr(2): sets an extended attribute on `path` without following a final symlink. */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  check(
    libc().lsetxattr(cstr(path), cstr(name), value, BigInt(value.byteLength), 0),
    "lsetxattr",
    `${q(path)} ${name}`,
  );
}

/** fsetxattr(2). */
export function fsetxattr(fd: number, name: string, value: Uint8Array): void {
  check(libc().fsetxattr(fd, cstr(name), value, BigInt(value.byteLength), 0), "fsetxattr", `fd ${fd} ${name}`);
}

/** lgetxattr(2); returns undefined when the attribute is absent (ENODATA). */
export function lgetxattr(path: string, name: string): Uint8Array | undefined {
  const p = cstr(path);
  const n = cstr(name);
  for (;;) {
    const size = Number(libc().lgetxattr(p, n, null, 0n));
    if (size < 0) {
      const e = errno();
      if (e === 61) return undefined;
      throw new ErrnoError("lgetxattr", e, `${q(path)} ${name}`);
    }
    const buf = new Uint8Array(size);
    const got = Number(libc().lgetxattr(p, n, buf, BigInt(size)));
    if (got >= 0) return buf.subarray(0, got);
    const e = errno();
    if (e !== 34) throw new ErrnoError("lgetxattr", e, `${q(path)} ${name}`); // ERANGE: grew meanwhile
  }
}

/** llistxattr(2): the attribute names set on `path` (not following a final symlink). */
export function llistxattr(path: string): string[] {
  const p = cstr(path);
  for (;;) {
    const size = check(libc().llistxattr(p, null, 0n), "llistxattr", q(path));
    if (size === 0) return [];
    const buf = new Uint8Array(size);
    const got = Number(libc().llistxattr(p, buf, BigInt(size)));
    if (got >= 0) return decoder.decode(buf.subarray(0, got)).split("\0").filter((s) => s !== "");
    const e = errno();
    if (e !== 34) throw new ErrnoError("llistxattr", e, q(path));
  }
}

/** One directory entry from getdents64 (d_type uses the DT_* values: 4 dir, 8 regular, 10 symlink, 0 unknown). */
export interface Dirent {
  name: string;
  type: number;
}

/** DT_* directory entry types. */
export const DT = { UNKNOWN: 0, FIFO: 1, CHR: 2, DIR: 4, BLK: 6, REG: 8, LNK: 10, SOCK: 12 } as const;

/**
 * Lists a directory from an open descriptor (getdents64, from the start), without `.` and `..`. Reading through
 * the descriptor keeps the walk on the directory that was opened, whatever happens to its path meanwhile.
 */
export function readDirFd(fd: number): Dirent[] {
  const buf = new Uint8Array(32768);
  const view = new DataView(buf.buffer);
  const out: Dirent[] = [];
  // Rewind: a descriptor listed before would otherwise continue from its end.
  check(libc().lseek(fd, 0n, 0), "lseek", `fd ${fd}`);
  for (;;) {
    const n = check(libc().getdents64(fd, buf, BigInt(buf.byteLength)), "getdents64", `fd ${fd}`);
    if (n === 0) return out;
    // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    for (let off = 0; off < n;) {
      const reclen = view.getUint16(off + 16, true);
      const type = buf[off + 18] ?? 0;
      let end = off + 19;
      while (end < off + reclen && buf[end] !== 0) end++;
      const name = decoder.decode(buf.subarray(off + 19, end));
      if (name !== "." && name !== "..") out.push({ name, type });
      off += reclen;
    }
  }
}

/** mount(2); null arguments pass NULL. */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
): void {
  check(
    libc().mount(
      source === null ? null : cstr(source),
      cstr(target),
      fstype === null ? null : cstr(fstype),
      BigInt(flags),
      data === null ? null : cstr(data),
    ),
    "mount",
    `${fstype ?? ""} on ${q(target)}`,
  );
}

/** umount2(2) with MNT.* flags. */
export function umount2(target: string, flags: number): void {
  check(libc().umount2(cstr(target), flags), "umount2", q(target));
}

/** fsopen(2) (Linux 5.2): a filesystem context; returns its descriptor. */
export function fsopen(fsname: string, flags: number): number {
  return check(libc().fsopen(SYS.fsopen, cstr(fsname), flags), "fsopen", fsname);
}

/** fsconfig(2): one configuration step on a filesystem context (`value`/`aux` as the command requires). */
export function fsconfig(fd: number, cmd: number, key: string | null, value: string | null, aux = 0): void {
  const detail = key === null ? `cmd ${cmd}` : value === null ? key : `${key}=${q(value)}`;
  check(
    libc().fsconfig(SYS.fsconfig, fd, cmd, key === null ? null : cstr(key), value === null ? null : cstr(value), aux),
    "fsconfig",
    detail,
  );
}

/** fsmount(2): turns a created context into a detached mount; returns its descriptor. */
export function fsmount(fd: number, flags: number, attrFlags: number): number {
  return check(libc().fsmount(SYS.fsmount, fd, flags, attrFlags), "fsmount", `fd ${fd}`);
}

/** move_mount(2): attaches a detached mount (`fromPath` "" with FS.MOVE_MOUNT_F_EMPTY_PATH) at `toPath`. */
export function moveMount(fromDirfd: number, fromPath: string, toDirfd: number, toPath: string, flags: number): void {
  check(
    libc().move_mount(SYS.move_mount, fromDirfd, cstr(fromPath), toDirfd, cstr(toPath), flags),
    "move_mount",
    q(toPath),
  );
}

/** prctl(2); returns the call's non-negative result. */
export function prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
  return check(
    libc().prctl(option, BigInt(arg2), BigInt(arg3), BigInt(arg4), BigInt(arg5)),
    "prctl",
    `option ${option}`,
  );
}

/** prctl(2) options (linux/prctl.h). */
export const PR = { SET_CHILD_SUBREAPER: 36, GET_CHILD_SUBREAPER: 37 } as const;

/** waitpid(2) options. */
export const W = { NOHANG: 1 } as const;

const noHangStatus = new Int32Array(1);

/**
 * waitpid(pid, WNOHANG): reaps `pid` if it has exited and returns its raw wait status, or returns undefined while
 * it still runs. Throws ECHILD when `pid` is not (or no longer) a child of this process.
 */
export function waitpidNoHang(pid: number): number | undefined {
  for (;;) {
    const r = libc().waitpid(pid, new Uint8Array(noHangStatus.buffer), W.NOHANG);
    if (r === pid) return noHangStatus[0] ?? 0;
    if (r === 0) return undefined;
    const e = errno();
    if (e !== 4) throw new ErrnoError("waitpid", e, `pid ${pid}`);
  }
}

/**
 * Waits for child `pid` to exit and reaps it, blocking a worker thread rather than the event loop; resolves to the
 * raw wait status. Only ever waits for that one pid: waitpid(-1) would steal the exit of Deno's own children.
 * errno belongs to the worker thread, so a failed blocking call is re-asked synchronously with WNOHANG, which
 * either reaps it, says it still runs (EINTR: wait again), or throws the real error (ECHILD).
 */
export async function waitpidBlocking(pid: number): Promise<number> {
  const status = new Int32Array(1);
  for (;;) {
    const r = await libc().waitpid_blocking(pid, new Uint8Array(status.buffer), 0);
    if (r === pid) return status[0] ?? 0;
    const again = waitpidNoHang(pid);
    if (again !== undefined) return again;
  }
}

/** dup2(2): makes `newfd` a copy of `oldfd` (used to point a detached process's stdio at a log file). */
export function dup2(oldfd: number, newfd: number): void {
  check(libc().dup2(oldfd, newfd), "dup2", `fd ${oldfd} -> ${newfd}`);
}

/** Namespace type flags for setns(2) (linux/sched.h). */
export const CLONE = { NEWNS: 0x00020000, NEWUTS: 0x04000000, NEWIPC: 0x08000000, NEWNET: 0x40000000 } as const;

/**
 * setns(2): moves the calling thread (the JavaScript thread, for a synchronous FFI call) into the namespace `fd`
 * refers to; `nstype` (a {@link CLONE} flag) makes the kernel check that it is that kind of namespace.
 */
export function setns(fd: number, nstype: number): void {
  check(libc().setns(fd, nstype), "setns", `fd ${fd} (nstype 0x${nstype.toString(16)})`);
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/**
 * Marks every open descriptor above stderr close-on-exec, so no child (an OCI runtime, a CNI plugin, the monitor)
 * inherits one by accident: sockets made through Deno's Node compatibility layer (grpc-js's listener and its
 * connections) are not close-on-exec by themselves. Call it right before spawning.
 */
export function markCloseOnExec(): number {
  const fds: number[] = [];
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(e.name);
    if (Number.isInteger(fd) && fd > 2) fds.push(fd);
  }
  const c = libc();
  let marked = 0;
  for (const fd of fds) {
    const flags = c.fcntl(fd, F_GETFD, 0n);
    if (flags < 0 || (flags & FD_CLOEXEC) !== 0) continue; // closed meanwhile (the readdir's own fd), or already set
    if (c.fcntl(fd, F_SETFD, BigInt(flags | FD_CLOEXEC)) === 0) marked++;
  }
  return marked;
}

/** ioctl(2) with a pointer argument (`arg` is the struct or int the request reads or fills). */
export function ioctl(fd: number, request: number, arg: Uint8Array<ArrayBuffer>): number {
  return check(libc().ioctl(fd, BigInt(request), arg), "ioctl", `fd ${fd} request 0x${request.toString(16)}`);
}

/** fcntl(2) F_GETFL / F_SETFL. */
const F_GETFL = 3;
const F_SETFL = 4;

/** Sets O_NONBLOCK on `fd`, so reads and writes answer EAGAIN instead of blocking the calling thread. */
export function setNonBlocking(fd: number): void {
  const flags = check(libc().fcntl(fd, F_GETFL, 0n), "fcntl", `F_GETFL fd ${fd}`);
  if ((flags & O.NONBLOCK) === 0) check(libc().fcntl(fd, F_SETFL, BigInt(flags | O.NONBLOCK)), "fcntl", `fd ${fd}`);
}

/**
 * read(2) on a non-blocking descriptor: the byte count (0 at end of file), or undefined when nothing is ready
 * (EAGAIN). Other errors throw, EIO included (what a pty master answers once its last slave closed).
 */
export function readNonBlocking(fd: number, buf: Uint8Array<ArrayBuffer>): number | undefined {
  for (;;) {
    const n = Number(libc().read(fd, buf, BigInt(buf.byteLength)));
    if (n >= 0) return n;
    const e = errno();
    if (e === 11) return undefined;
    if (e !== 4) throw new ErrnoError("read", e, `fd ${fd}`);
  }
}

/** write(2) on a non-blocking descriptor: the bytes taken (maybe fewer than given), or undefined on EAGAIN. */
export function writeNonBlocking(fd: number, buf: Uint8Array<ArrayBuffer>): number | undefined {
  for (;;) {
    const n = Number(libc().write(fd, buf, BigInt(buf.byteLength)));
    if (n >= 0) return n;
    const e = errno();
    if (e === 11) return undefined;
    if (e !== 4) throw new ErrnoError("write", e, `fd ${fd}`);
  }
}

/** eventfd(2) flags. */
export const EFD = { NONBLOCK: O.NONBLOCK, CLOEXEC: O.CLOEXEC } as const;

/** eventfd(2), always close-on-exec; returns the new descriptor. */
export function eventfd(initval: number, flags: number): number {
  return check(libc().eventfd(initval, flags | EFD.CLOEXEC), "eventfd");
}

/** Socket constants (sys/socket.h); the type flags are the O_ ones. */
export const SOCK = { STREAM: 1, DGRAM: 2, SEQPACKET: 5, NONBLOCK: O.NONBLOCK, CLOEXEC: O.CLOEXEC } as const;

/** Address families. */
export const AF = { UNIX: 1 } as const;

/** socket(2), always close-on-exec; returns the new descriptor. */
export function socket(domain: number, type: number, protocol = 0): number {
  return check(libc().socket(domain, type | SOCK.CLOEXEC, protocol), "socket", `domain ${domain} type ${type}`);
}

/** The longest AF_UNIX path: sun_path holds 108 bytes, the last one the terminating NUL. */
export const UNIX_PATH_MAX = 107;

/** struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; } for `path`; its length is checked. */
function sockaddrUn(op: string, path: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(path);
  if (bytes.includes(0)) throw new TypeError(`string contains a NUL byte: ${q(path)}`);
  if (bytes.byteLength > UNIX_PATH_MAX) {
    throw new ErrnoError(op, 36, `${q(path)} (${bytes.byteLength} bytes, at most ${UNIX_PATH_MAX})`);
  }
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, AF.UNIX, true);
  addr.set(bytes, 2);
  return addr;
}

/** bind(2) of an AF_UNIX socket to a filesystem path. */
export function bindUnix(fd: number, path: string): void {
  const addr = sockaddrUn("bind", path);
  check(libc().bind(fd, addr, addr.byteLength), "bind", q(path));
}

/** connect(2) of an AF_UNIX socket to a filesystem path (a blocking socket waits for the listener's backlog). */
export function connectUnix(fd: number, path: string): void {
  const addr = sockaddrUn("connect", path);
  for (;;) {
    if (libc().connect(fd, addr, addr.byteLength) === 0) return;
    const e = errno();
    if (e !== 4) throw new ErrnoError("connect", e, q(path));
  }
}

/** listen(2). */
export function listen(fd: number, backlog: number): void {
  check(libc().listen(fd, backlog), "listen", `fd ${fd}`);
}

/**
 * accept4(2) on a non-blocking listening socket: the connection's descriptor (non-blocking and close-on-exec),
 * or undefined when no connection is waiting.
 */
export function acceptNonBlocking(fd: number): number | undefined {
  for (;;) {
    const r = libc().accept4(fd, null, null, SOCK.NONBLOCK | SOCK.CLOEXEC);
    if (r >= 0) return r;
    const e = errno();
    if (e === 11) return undefined;
    // EINTR, and a connection reset while queued (ECONNABORTED): try the next one.
    if (e !== 4 && e !== 103) throw new ErrnoError("accept4", e, `fd ${fd}`);
  }
}

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG = { CTRUNC: 0x8, DONTWAIT: 0x40, NOSIGNAL: 0x4000, CMSG_CLOEXEC: 0x40000000 } as const;
/** sizeof(struct cmsghdr) on LP64: size_t cmsg_len; int cmsg_level; int cmsg_type. */
const CMSG_HDR = 16;
/** sizeof(struct msghdr) on LP64 (x86_64, arm64). */
const MSGHDR_SIZE = 56;

function pointerOf(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * struct msghdr for one iovec and a control buffer, in `hdr`: msg_name (0), msg_namelen (8), msg_iov (16),
 * msg_iovlen (24), msg_control (32), msg_controllen (40), msg_flags (48). Callers keep every buffer referenced
 * for the duration of the call.
 */
function fillMsghdr(
  hdr: Uint8Array<ArrayBuffer>,
  iov: Uint8Array<ArrayBuffer>,
  data: Uint8Array<ArrayBuffer>,
  control: Uint8Array<ArrayBuffer> | null,
): void {
  const iv = new DataView(iov.buffer, iov.byteOffset, 16);
  iv.setBigUint64(0, data.byteLength === 0 ? 0n : pointerOf(data), true);
  iv.setBigUint64(8, BigInt(data.byteLength), true);
  const h = new DataView(hdr.buffer, hdr.byteOffset, MSGHDR_SIZE);
  h.setBigUint64(16, pointerOf(iov), true);
  h.setBigUint64(24, 1n, true);
  h.setBigUint64(32, control === null ? 0n : pointerOf(control), true);
  h.setBigUint64(40, BigInt(control?.byteLength ?? 0), true);
}

/** CMSG_SPACE for `n` descriptors: the header plus the data rounded up to 8 bytes. */
function cmsgSpace(n: number): number {
  return CMSG_HDR + Math.ceil((n * 4) / 8) * 8;
}

/**
 * sendmsg(2) of `data` with `fds` in one SCM_RIGHTS control message (cmsg_level SOL_SOCKET, cmsg_type
 * SCM_RIGHTS, an int per descriptor after the header). Returns the bytes of `data` sent.
 */
export function sendFds(fd: number, data: Uint8Array<ArrayBuffer>, fds: readonly number[]): number {
  if (data.byteLength === 0) throw new TypeError("sendFds: a message carrying descriptors needs at least one byte");
  const control = new Uint8Array(cmsgSpace(fds.length));
  const c = new DataView(control.buffer);
  c.setBigUint64(0, BigInt(CMSG_HDR + fds.length * 4), true);
  c.setInt32(8, SOL_SOCKET, true);
  c.setInt32(12, SCM_RIGHTS, true);
  fds.forEach((d, i) => c.setInt32(CMSG_HDR + i * 4, d, true));
  const hdr = new Uint8Array(MSGHDR_SIZE);
  const iov = new Uint8Array(16);
  fillMsghdr(hdr, iov, data, fds.length === 0 ? null : control);
  for (;;) {
    const n = Number(libc().sendmsg(fd, hdr, MSG.NOSIGNAL));
    if (n >= 0) return n;
    const e = errno();
    if (e !== 4) throw new ErrnoError("sendmsg", e, `fd ${fd}`);
  }
}

/** What {@link recvFds} received. */
export interface ReceivedMessage {
  /** Bytes of the payload (0: the peer closed the connection). */
  bytes: number;
  /** Descriptors passed in SCM_RIGHTS, already close-on-exec; the caller owns them. */
  fds: number[];
  /** The kernel cut the control data (MSG_CTRUNC): more descriptors were sent than room was given. */
  truncated: boolean;
}

/**
 * recvmsg(2) without blocking: the payload into `buf` and up to `maxFds` descriptors from SCM_RIGHTS control
 * messages (received with MSG_CMSG_CLOEXEC, so no child can inherit them); undefined when nothing is waiting.
 */
export function recvFds(fd: number, buf: Uint8Array<ArrayBuffer>, maxFds: number): ReceivedMessage | undefined {
  const control = new Uint8Array(cmsgSpace(maxFds));
  const hdr = new Uint8Array(MSGHDR_SIZE);
  const iov = new Uint8Array(16);
  fillMsghdr(hdr, iov, buf, control);
  let n: number;
  for (;;) {
    n = Number(libc().recvmsg(fd, hdr, MSG.DONTWAIT | MSG.CMSG_CLOEXEC));
    if (n >= 0) break;
    const e = errno();
    if (e === 11) return undefined;
    if (e !== 4) throw new ErrnoError("recvmsg", e, `fd ${fd}`);
  }
  const h = new DataView(hdr.buffer);
  const controlLen = Number(h.getBigUint64(40, true));
  const flags = h.getInt32(48, true);
  const fds: number[] = [];
  const c = new DataView(control.buffer);
  for (let off = 0; off + CMSG_HDR <= controlLen;) {
    const len = Number(c.getBigUint64(off, true));
    if (len < CMSG_HDR) break;
    if (c.getInt32(off + 8, true) === SOL_SOCKET && c.getInt32(off + 12, true) === SCM_RIGHTS) {
      for (let p = off + CMSG_HDR; p + 4 <= off + len; p += 4) fds.push(c.getInt32(p, true));
    }
    off += Math.ceil(len / 8) * 8;
  }
  return { bytes: n, fds, truncated: (flags & MSG.CTRUNC) !== 0 };
}

/** poll(2) event bits. */
export const POLL = { IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10, NVAL: 0x20 } as const;

/** One descriptor to watch with {@link pollAsync}. */
export interface PollFd {
  fd: number;
  /** POLL.* bits to wait for (ERR, HUP and NVAL are always reported). */
  events: number;
}

function pollfds(fds: readonly PollFd[]): Uint8Array<ArrayBuffer> {
  // struct pollfd { int fd; short events; short revents; }
  const buf = new Uint8Array(fds.length * 8);
  const v = new DataView(buf.buffer);
  fds.forEach((p, i) => {
    v.setInt32(i * 8, p.fd, true);
    v.setInt16(i * 8 + 4, p.events, true);
  });
  return buf;
}

function revents(buf: Uint8Array<ArrayBuffer>, count: number): number[] {
  const v = new DataView(buf.buffer);
  return Array.from({ length: count }, (_, i) => v.getUint16(i * 8 + 6, true));
}

/**
 * poll(2) on a worker thread, so the event loop keeps running while it waits: resolves to each descriptor's
 * `revents` (all 0 after `timeoutMs`; -1 waits without limit). errno belongs to the worker thread, so a failed
 * call is repeated synchronously with a zero timeout, which either answers or throws the real error (EINTR just
 * reports nothing ready). The promise is an FFI call in flight: await it before closing any of the descriptors.
 */
export async function pollAsync(fds: readonly PollFd[], timeoutMs: number): Promise<number[]> {
  const buf = pollfds(fds);
  const r = await libc().poll_blocking(buf, BigInt(fds.length), Math.trunc(timeoutMs));
  if (r >= 0) return revents(buf, fds.length);
  const again = libc().poll(buf, BigInt(fds.length), 0);
  if (again >= 0) return revents(buf, fds.length);
  const e = errno();
  if (e === 4) return fds.map(() => 0);
  throw new ErrnoError("poll", e, fds.map((p) => `fd ${p.fd}`).join(", "));
}
