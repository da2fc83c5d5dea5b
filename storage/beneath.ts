/**
 * Directory operations confined by the kernel beneath a root directory descriptor: every path is resolved with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so `..`, absolute symlinks and symlinks that climb out fail
 * with EXDEV instead of being followed; removal walks descriptors (getdents64 + unlinkat), never paths.
 * @module
 */
import { AT, close, DT, isErrno, mkdirat, O, openat, openat2, readDirFd, RESOLVE, unlinkat } from "../lib/libc.ts";
import { splitPath } from "./layer_paths.ts";

/** The resolve flags used for every lookup under a layer root. */
export const BENEATH = RESOLVE.BENEATH | RESOLVE.NO_MAGICLINKS;

/**
 * Opens directory `path` (relative, "" for the root itself) beneath `rootFd`. `flags` defaults to O_PATH, enough
 * for `*at` calls; pass O.RDONLY for a descriptor that fchown/fsetxattr/futimens accept.
 */
export function openDirBeneath(rootFd: number, path: string, flags: number = O.PATH): number {
  return openat2(rootFd, path === "" ? "." : path, flags | O.DIRECTORY, { resolve: BENEATH });
}

/**
 * Like {@link openDirBeneath}, creating missing directories (mode `mode`, owned by the caller) on the way, as tar
 * does for members whose parents the archive does not list. Each component is resolved from the root again.
 */
export function ensureDirBeneath(rootFd: number, path: string, flags: number = O.PATH, mode = 0o755): number {
  try {
    return openDirBeneath(rootFd, path, flags);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw err;
  }
  const parts = path.split("/");
  for (let i = 1; i < parts.length + 1; i++) {
    const prefix = parts.slice(0, i).join("/");
    try {
      close(openDirBeneath(rootFd, prefix));
      continue;
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
    const { dir, base } = splitPath(prefix);
    const parent = openDirBeneath(rootFd, dir);
    try {
      mkdirat(parent, base, mode);
    } catch (err) {
      // EEXIST here is a dangling symlink: the final open below reports it.
      if (!isErrno(err, "EEXIST")) throw err;
    } finally {
      close(parent);
    }
  }
  return openDirBeneath(rootFd, path, flags);
}

/**
 * Removes `name` in directory `dirfd` whatever it is; a directory is emptied through descriptors opened with
 * O_NOFOLLOW, so a symlink inside is unlinked, never followed. A missing `name` is not an error.
 */
export function removeAllAt(dirfd: number, name: string): void {
  try {
    unlinkat(dirfd, name, 0);
    return;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return;
    if (!isErrno(err, "EISDIR", "EPERM")) throw err;
  }
  const fd = openat(dirfd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
  try {
    for (const ent of readDirFd(fd)) {
      if (ent.type === DT.DIR) removeAllAt(fd, ent.name);
      else {
        try {
          unlinkat(fd, ent.name, 0);
        } catch (err) {
          if (!isErrno(err, "EISDIR")) throw err;
          removeAllAt(fd, ent.name); // DT_UNKNOWN on filesystems without d_type
        }
      }
    }
  } finally {
    close(fd);
  }
  unlinkat(dirfd, name, AT.REMOVEDIR);
}
