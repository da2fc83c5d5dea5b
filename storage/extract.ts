/**
 * Layer extraction: writes an uncompressed layer tar into a directory in overlayfs's format (OCI whiteouts become
 * 0/0 character devices, opaque markers the `trusted.overlay.opaque` xattr). Every filesystem call is made relative
 * to a directory descriptor found with openat2(RESOLVE_BENEATH), and the final component is never followed
 * (O_EXCL|O_NOFOLLOW, mkdirat, mknodat, symlinkat, linkat without AT_SYMLINK_FOLLOW, *_NOFOLLOW flags), so the
 * kernel keeps every entry inside the layer directory. A refused entry aborts the extraction; the caller removes
 * the partial directory.
 * @module
 */
import { createHash } from "node:crypto";
import { DavitError, InvalidArgument, NotFound, ResourceExhausted } from "../lib/errors.ts";
import {
  AT,
  close,
  ErrnoError,
  fchmod,
  fchmodat,
  fchown,
  fchownat,
  fsetxattr,
  futimens,
  isErrno,
  linkat,
  lsetxattr,
  makedev,
  mkdirat,
  mknodat,
  O,
  openat,
  S_IF,
  symlinkat,
  type Timespec,
  utimensat,
  writeAll,
} from "../lib/libc.ts";
import { logger } from "../lib/log.ts";
import { ensureDirBeneath, openDirBeneath, removeAllAt } from "./beneath.ts";
import { classifyEntry, escapeError, normaliseEntryPath, type SplitPath, splitPath } from "./layer_paths.ts";
import { type TarBodySink, type TarHandler, type TarHeader, TarParser } from "./tar_reader.ts";

const log = logger("storage");

/** The xattr overlayfs reads to make a directory opaque. */
export const OPAQUE_XATTR = "trusted.overlay.opaque";
/** Xattrs under this prefix steer overlayfs (redirects, metacopy, whiteouts); a layer may not forge them. */
const OVERLAY_XATTR_PREFIX = "trusted.overlay.";

/** Options of {@link extractLayer}. */
export interface ExtractOptions {
  /** Stops the extraction between chunks. */
  signal?: AbortSignal;
  /** Also compute the sha256 of the uncompressed stream (the layer's DiffID). */
  digest?: boolean;
}

/** What {@link extractLayer} wrote. */
export interface ExtractResult {
  /** Bytes of uncompressed tar read (the layer's uncompressed size). */
  size: number;
  /** Entries written (files, directories, links, devices, whiteouts). */
  files: number;
  /** `sha256:<hex>` of the uncompressed stream, when requested. */
  diffId?: string;
}

/**
 * Extracts the uncompressed layer tar `stream` into the existing directory `destDir`. Members are applied in
 * archive order with tar's replacement rules (a later member replaces an earlier one; a directory over a
 * directory keeps its contents). Members that would reach outside `destDir` are refused with InvalidArgument.
 */
export async function extractLayer(
  stream: ReadableStream<Uint8Array>,
  destDir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  let rootFd: number;
  try {
    rootFd = openat(AT.FDCWD, destDir, O.RDONLY | O.DIRECTORY);
  } catch (err) {
    throw new NotFound(`Cannot extract layer into ${JSON.stringify(destDir)}: not an accessible directory`, {
      cause: err,
    });
  }
  using writer = new LayerWriter(rootFd);
  const parser = new TarParser(writer);
  const hash = opts.digest ? createHash("sha256") : undefined;
  const reader = stream.getReader();
  let size = 0;
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      hash?.update(value);
      parser.push(value);
    }
    parser.finish();
    writer.finish();
  } catch (err) {
    await reader.cancel(err).catch(() => {});
    throw err;
  } finally {
    reader.releaseLock();
  }
  const result: ExtractResult = { size, files: writer.files };
  if (hash) result.diffId = `sha256:${hash.digest("hex")}`;
  return result;
}

function describe(name: string, err: unknown): Error {
  if (err instanceof DavitError) return err;
  if (err instanceof ErrnoError) {
    if (err.syscall === "openat2" && (err.code === "EXDEV" || err.code === "ELOOP")) {
      return escapeError(name, "path escapes the layer root (through a symlink)", { cause: err });
    }
    const msg = `layer entry ${JSON.stringify(name)}: ${err.message}`;
    if (err.code === "ENOSPC" || err.code === "EDQUOT") return new ResourceExhausted(msg, { cause: err });
    if (err.code === "ENAMETOOLONG" || err.code === "ENOTDIR") return new InvalidArgument(msg, { cause: err });
    return new DavitError("Internal", msg, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

function typeBits(h: TarHeader): number {
  return h.type === "char" ? S_IF.CHR : h.type === "block" ? S_IF.BLK : S_IF.FIFO;
}

/** Applies parsed members to the layer directory; owns every descriptor it opens. */
class LayerWriter implements TarHandler, TarBodySink, Disposable {
  readonly #root: number;
  /** Descriptor of the parent directory of the previous member, reused while members stay in one directory. */
  #cacheFd = -1;
  #cacheKey: string | null = null;
  /** The regular file whose body is being written. */
  #fileFd = -1;
  #fileHeader: TarHeader | undefined;
  /** Directory mtimes, applied last because creating children changes them. */
  readonly #dirTimes: [string, Timespec][] = [];
  files = 0;

  constructor(rootFd: number) {
    this.#root = rootFd;
  }

  entry(h: TarHeader): TarBodySink | undefined {
    try {
      const target = classifyEntry(h.name);
      switch (target.kind) {
        case "root":
          this.#applyDirMeta(this.#root, h);
          this.#dirTimes.push(["", h.mtime]);
          return undefined;
        case "ignore":
          return undefined;
        case "opaque":
          this.#opaque(target.dir);
          return undefined;
        case "whiteout":
          this.#whiteout(target, h);
          return undefined;
        case "path":
          return this.#create(target, h);
      }
    } catch (err) {
      throw describe(h.name, err);
    }
  }

  /** Body of the current regular file (TarBodySink). */
  write(chunk: Uint8Array): void {
    try {
      writeAll(this.#fileFd, chunk);
    } catch (err) {
      throw describe(this.#fileHeader?.name ?? "", err);
    }
  }

  /** End of the current regular file: ownership, then mode (chown clears setuid), xattrs, times. */
  close(): void {
    const h = this.#fileHeader;
    const fd = this.#fileFd;
    if (h === undefined || fd < 0) return;
    try {
      fchown(fd, h.uid, h.gid);
      fchmod(fd, h.mode);
      this.#setXattrs(h, (n, v) => fsetxattr(fd, n, v));
      futimens(fd, h.mtime, h.mtime);
    } catch (err) {
      throw describe(h.name, err);
    } finally {
      this.#fileFd = -1;
      this.#fileHeader = undefined;
      close(fd);
    }
  }

  /** Sets the deferred directory mtimes. Directories replaced or made unreachable since are skipped. */
  finish(): void {
    for (const [path, mtime] of this.#dirTimes) {
      if (path === "") {
        futimens(this.#root, mtime, mtime);
        continue;
      }
      const { dir, base } = splitPath(path);
      let fd: number;
      try {
        fd = openDirBeneath(this.#root, dir);
      } catch (err) {
        if (isErrno(err, "ENOENT", "ENOTDIR", "EXDEV", "ELOOP")) continue;
        throw describe(path, err);
      }
      try {
        utimensat(fd, base, mtime, mtime, AT.SYMLINK_NOFOLLOW);
      } catch (err) {
        if (!isErrno(err, "ENOENT")) throw describe(path, err);
      } finally {
        close(fd);
      }
    }
  }

  [Symbol.dispose](): void {
    if (this.#fileFd >= 0) close(this.#fileFd);
    if (this.#cacheFd >= 0) close(this.#cacheFd);
    this.#fileFd = this.#cacheFd = -1;
    close(this.#root);
  }

  /** The parent directory of a member, created if the archive did not list it. */
  #parent(dir: string): number {
    if (dir === "") return this.#root;
    if (this.#cacheKey === dir) return this.#cacheFd;
    if (this.#cacheFd >= 0) close(this.#cacheFd);
    this.#cacheFd = -1;
    this.#cacheKey = null;
    this.#cacheFd = ensureDirBeneath(this.#root, dir);
    this.#cacheKey = dir;
    return this.#cacheFd;
  }

  /**
   * Runs `create`; if the name is taken, removes what is there and runs it again (tar's replace semantics). A
   * removal may take a directory the cached descriptor points into, so the cache is no longer trusted (the
   * descriptor stays open until the next lookup: the caller may still be using it as the parent).
   */
  #replacing(dirfd: number, base: string, create: () => void): void {
    try {
      create();
      return;
    } catch (err) {
      if (!isErrno(err, "EEXIST")) throw err;
    }
    removeAllAt(dirfd, base);
    this.#cacheKey = null;
    create();
  }

  #create(t: SplitPath, h: TarHeader): TarBodySink | undefined {
    const dirfd = this.#parent(t.dir);
    this.files++;
    switch (h.type) {
      case "file": {
        let fd = -1;
        this.#replacing(dirfd, t.base, () => {
          fd = openat(dirfd, t.base, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600);
        });
        this.#fileFd = fd;
        this.#fileHeader = h;
        return this;
      }
      case "directory":
        this.#mkdir(dirfd, t, h);
        return undefined;
      case "symlink":
        this.#replacing(dirfd, t.base, () => symlinkat(h.linkname, dirfd, t.base));
        fchownat(dirfd, t.base, h.uid, h.gid, AT.SYMLINK_NOFOLLOW);
        this.#setXattrs(h, (n, v) => lsetxattr(`/proc/self/fd/${dirfd}/${t.base}`, n, v));
        utimensat(dirfd, t.base, h.mtime, h.mtime, AT.SYMLINK_NOFOLLOW);
        return undefined;
      case "hardlink":
        this.#hardlink(dirfd, t, h);
        return undefined;
      case "char":
      case "block":
      case "fifo":
        this.#replacing(
          dirfd,
          t.base,
          () => mknodat(dirfd, t.base, typeBits(h) | 0o600, makedev(h.devmajor, h.devminor)),
        );
        fchownat(dirfd, t.base, h.uid, h.gid, AT.SYMLINK_NOFOLLOW);
        // fchmodat follows symlinks, but the name was created by mknodat just now and is a device or fifo.
        fchmodat(dirfd, t.base, h.mode);
        this.#setXattrs(h, (n, v) => lsetxattr(`/proc/self/fd/${dirfd}/${t.base}`, n, v));
        utimensat(dirfd, t.base, h.mtime, h.mtime, AT.SYMLINK_NOFOLLOW);
        return undefined;
    }
  }

  #mkdir(dirfd: number, t: SplitPath, h: TarHeader): void {
    try {
      mkdirat(dirfd, t.base, 0o700);
    } catch (err) {
      if (!isErrno(err, "EEXIST")) throw err;
      // A directory over a directory keeps the contents; anything else is replaced.
      try {
        close(openat(dirfd, t.base, O.PATH | O.DIRECTORY | O.NOFOLLOW));
      } catch (err2) {
        if (!isErrno(err2, "ENOTDIR", "ELOOP")) throw err2;
        removeAllAt(dirfd, t.base);
        this.#cacheKey = null;
        mkdirat(dirfd, t.base, 0o700);
      }
    }
    const fd = openat(dirfd, t.base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
    try {
      this.#applyDirMeta(fd, h);
    } finally {
      close(fd);
    }
    this.#dirTimes.push([t.path, h.mtime]);
  }

  #applyDirMeta(fd: number, h: TarHeader): void {
    fchown(fd, h.uid, h.gid);
    fchmod(fd, h.mode);
    this.#setXattrs(h, (n, v) => fsetxattr(fd, n, v));
  }

  #hardlink(dirfd: number, t: SplitPath, h: TarHeader): void {
    let target: string;
    try {
      target = normaliseEntryPath(h.linkname);
    } catch (err) {
      throw escapeError(h.name, `hardlink target ${JSON.stringify(h.linkname)} escapes the layer root`, { cause: err });
    }
    if (target === "") throw escapeError(h.name, "hardlink to the layer root");
    if (target === t.path) return; // a link to itself: already in place
    const ts = splitPath(target);
    let tfd: number;
    try {
      tfd = openDirBeneath(this.#root, ts.dir);
    } catch (err) {
      if (!isErrno(err, "ENOENT", "ENOTDIR")) throw err;
      throw new InvalidArgument(
        `layer entry ${JSON.stringify(h.name)}: hardlink target ${JSON.stringify(h.linkname)} is not in the layer`,
        { cause: err },
      );
    }
    try {
      // No AT_SYMLINK_FOLLOW: a symlink target is linked itself, never followed out of the layer.
      this.#replacing(dirfd, t.base, () => linkat(tfd, ts.base, dirfd, t.base, 0));
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
      throw new InvalidArgument(
        `layer entry ${JSON.stringify(h.name)}: hardlink target ${JSON.stringify(h.linkname)} is not in the layer`,
        { cause: err },
      );
    } finally {
      close(tfd);
    }
  }

  #whiteout(t: SplitPath, h: TarHeader): void {
    const dirfd = this.#parent(t.dir);
    this.files++;
    // overlayfs's whiteout: a character device with device number 0/0 (Documentation/filesystems/overlayfs.rst).
    this.#replacing(dirfd, t.base, () => mknodat(dirfd, t.base, S_IF.CHR, 0n));
    fchownat(dirfd, t.base, h.uid, h.gid, AT.SYMLINK_NOFOLLOW);
  }

  #opaque(dir: string): void {
    const fd = ensureDirBeneath(this.#root, dir, O.RDONLY);
    try {
      fsetxattr(fd, OPAQUE_XATTR, new Uint8Array([0x79])); // "y"
    } finally {
      close(fd);
    }
  }

  #setXattrs(h: TarHeader, set: (name: string, value: Uint8Array) => void): void {
    if (h.xattrs.size === 0) return;
    for (const [name, value] of h.xattrs) {
      if (name.startsWith(OVERLAY_XATTR_PREFIX)) {
        log.debug("skipping overlay xattr from layer", { entry: h.name, xattr: name });
        continue;
      }
      try {
        set(name, value);
      } catch (err) {
        // Linux allows user.* only on regular files and directories; tar writers still record them elsewhere.
        if (name.startsWith("user.") && h.type !== "file" && h.type !== "directory" && isErrno(err, "EPERM")) continue;
        throw err;
      }
    }
  }
}
