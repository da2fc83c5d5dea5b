/**
 * Overlay mounts of container root filesystems, behind the narrow {@link Mounter} interface.
 *
 * The real mounter prefers the new mount API: fsopen("overlay") and one `fsconfig(FSCONFIG_SET_STRING,
 * "lowerdir+", dir)` per layer (Linux 6.8), which has no option-length limit and needs no current-directory trick,
 * so images of hundreds of layers mount with plain absolute paths. Older kernels get mount(2), whose option string
 * must fit in one page: absolute paths when they fit, otherwise each lower directory is opened (O_PATH) and named
 * `/proc/self/fd/<n>`, about 20 bytes a layer, which avoids the process-wide chdir that relative names would need.
 * @module
 */
import { FailedPrecondition, InvalidArgument, ResourceExhausted, Unavailable } from "../lib/errors.ts";
import {
  AT,
  close,
  ErrnoError,
  FS,
  fsconfig,
  fsmount,
  fsopen,
  isErrno,
  MNT,
  mount,
  moveMount,
  MS,
  O,
  openat,
  read,
  umount2,
} from "../lib/libc.ts";

/** overlayfs's limit on lower layers (OVL_MAX_STACK). */
export const MAX_LOWER_LAYERS = 500;
/** mount(2) copies at most one page of option data, including the terminating NUL. */
export const MOUNT_DATA_MAX = 4095;

/** What to mount. */
export interface OverlayOptions {
  /** Layer directories, top-most first. */
  lowerDirs: string[];
  upperDir: string;
  workDir: string;
  /** Existing directory to mount on. */
  target: string;
  readOnly?: boolean;
  /** Extra overlay options, each `key` or `key=value` (e.g. `metacopy=off`, `volatile`). */
  options?: string[];
}

/** A configuration step of the new mount API, in order. */
export type FsConfigStep = { key: string; value: string } | { key: string; flag: true };

/** Host calls that mount and unmount; the real one is {@link LinuxMounter}, tests may record calls instead. */
export interface Mounter {
  /** Mounts a validated overlay. */
  mountOverlay(opts: OverlayOptions): Promise<void>;
  /** Unmounts `target`; resolves false when nothing was mounted there. */
  unmount(target: string, opts: { detach: boolean }): Promise<boolean>;
}

function badPath(p: string): boolean {
  // ',' separates mount options and ':' lower layers in mount(2) data; refusing them keeps both APIs identical.
  return !p.startsWith("/") || /[,:\\\n\0]/.test(p);
}

/** Checks paths and layer count; throws InvalidArgument naming the first problem. */
export function validateOverlay(opts: OverlayOptions): void {
  if (opts.lowerDirs.length === 0) throw new InvalidArgument("overlay mount needs at least one lower directory");
  if (opts.lowerDirs.length > MAX_LOWER_LAYERS) {
    throw new InvalidArgument(
      `overlay mount of ${opts.lowerDirs.length} layers exceeds the kernel's ${MAX_LOWER_LAYERS}`,
    );
  }
  for (const p of [...opts.lowerDirs, opts.upperDir, opts.workDir, opts.target]) {
    if (badPath(p)) {
      throw new InvalidArgument(`overlay mount path ${JSON.stringify(p)} must be absolute, without , : \\`);
    }
  }
  for (const o of opts.options ?? []) {
    if (!/^[a-z_]+(=[^,:\s]+)?$/.test(o) || /^(lowerdir|upperdir|workdir)/.test(o)) {
      throw new InvalidArgument(`overlay option ${JSON.stringify(o)} is not allowed`);
    }
  }
}

/** The fsconfig steps for the new mount API: one `lowerdir+` per layer, top-most first. */
export function overlayConfigSteps(opts: OverlayOptions): FsConfigStep[] {
  const steps: FsConfigStep[] = [{ key: "source", value: "overlay" }];
  for (const dir of opts.lowerDirs) steps.push({ key: "lowerdir+", value: dir });
  steps.push({ key: "upperdir", value: opts.upperDir }, { key: "workdir", value: opts.workDir });
  for (const o of opts.options ?? []) {
    const eq = o.indexOf("=");
    steps.push(eq < 0 ? { key: o, flag: true } : { key: o.slice(0, eq), value: o.slice(eq + 1) });
  }
  return steps;
}

/** The mount(2) data string, with `lowerNames` standing for the lower directories (absolute or /proc/self/fd/n). */
export function overlayMountData(opts: OverlayOptions, lowerNames: string[] = opts.lowerDirs): string {
  return [
    `lowerdir=${lowerNames.join(":")}`,
    `upperdir=${opts.upperDir}`,
    `workdir=${opts.workDir}`,
    ...opts.options ?? [],
  ]
    .join(",");
}

/** Mounts an overlay on `opts.target` after validating it. */
export async function mountOverlay(opts: OverlayOptions, env: { mounter?: Mounter } = {}): Promise<void> {
  validateOverlay(opts);
  await (env.mounter ?? defaultMounter()).mountOverlay(opts);
}

/**
 * Unmounts `target` without following a symlink there; `detach` unmounts lazily when busy. Idempotent: a target
 * that is not mounted (or is gone) is left as it is and false is returned.
 */
export async function unmount(target: string, opts: { detach?: boolean; mounter?: Mounter } = {}): Promise<boolean> {
  return await (opts.mounter ?? defaultMounter()).unmount(target, { detach: opts.detach ?? false });
}

let shared: LinuxMounter | undefined;
function defaultMounter(): Mounter {
  return shared ??= new LinuxMounter();
}

/** Which kernel interface {@link LinuxMounter} uses. */
export type MountApi = "auto" | "fsconfig" | "legacy";

/** The real mounter: the new mount API with `lowerdir+` when the kernel has it, else mount(2). */
export class LinuxMounter implements Mounter {
  #api: MountApi;
  constructor(opts: { api?: MountApi } = {}) {
    this.#api = opts.api ?? "auto";
  }

  mountOverlay(opts: OverlayOptions): Promise<void> {
    validateOverlay(opts);
    if (this.#api !== "legacy") {
      try {
        mountWithFsconfig(opts);
        return Promise.resolve();
      } catch (err) {
        // ENOSYS: no new mount API; EINVAL on "lowerdir+": kernel before 6.8. Remember, and use mount(2).
        if (this.#api === "auto" && err instanceof LowerdirPlusUnsupported) this.#api = "legacy";
        else return Promise.reject(err);
      }
    }
    mountLegacy(opts);
    return Promise.resolve();
  }

  unmount(target: string, opts: { detach: boolean }): Promise<boolean> {
    try {
      umount2(target, MNT.UMOUNT_NOFOLLOW | (opts.detach ? MNT.DETACH : 0));
      return Promise.resolve(true);
    } catch (err) {
      if (isErrno(err, "EINVAL", "ENOENT")) return Promise.resolve(false);
      if (isErrno(err, "EBUSY")) {
        return Promise.reject(new FailedPrecondition(`Cannot unmount ${JSON.stringify(target)}: busy`, { cause: err }));
      }
      return Promise.reject(new Unavailable(`Cannot unmount ${JSON.stringify(target)}`, { cause: err }));
    }
  }
}

class LowerdirPlusUnsupported extends Error {}

/** Reads the messages the kernel logged on a filesystem context ("e overlayfs: ...") to explain a failure. */
function contextMessages(fsfd: number): string {
  const buf = new Uint8Array(4096);
  const out: string[] = [];
  for (let i = 0; i < 16; i++) {
    try {
      const n = read(fsfd, buf);
      if (n <= 0) break;
      out.push(new TextDecoder().decode(buf.subarray(0, n)).trim());
    } catch {
      break; // ENODATA: no more messages
    }
  }
  return out.length === 0 ? "" : ` (${out.join("; ")})`;
}

function mountError(opts: OverlayOptions, err: unknown, detail = ""): Error {
  const what = `Cannot mount overlay of ${opts.lowerDirs.length} layers on ${JSON.stringify(opts.target)}`;
  const msg = `${what}: ${err instanceof Error ? err.message : String(err)}${detail}`;
  if (isErrno(err, "ENOENT", "ENOTDIR", "EINVAL")) return new InvalidArgument(msg, { cause: err });
  if (isErrno(err, "ENOMEM", "ENOSPC")) return new ResourceExhausted(msg, { cause: err });
  return new Unavailable(msg, { cause: err });
}

function mountWithFsconfig(opts: OverlayOptions): void {
  let fsfd: number;
  try {
    fsfd = fsopen("overlay", FS.FSOPEN_CLOEXEC);
  } catch (err) {
    if (isErrno(err, "ENOSYS")) throw new LowerdirPlusUnsupported("no fsopen");
    throw mountError(opts, err);
  }
  try {
    const steps = overlayConfigSteps(opts);
    for (const [i, step] of steps.entries()) {
      try {
        if ("flag" in step) fsconfig(fsfd, FS.CONFIG_SET_FLAG, step.key, null);
        else fsconfig(fsfd, FS.CONFIG_SET_STRING, step.key, step.value);
      } catch (err) {
        // The first lowerdir+ failing with EINVAL means the kernel does not know the key (before 6.8).
        if (i === 1 && step.key === "lowerdir+" && isErrno(err, "EINVAL")) {
          const detail = contextMessages(fsfd);
          if (/unknown parameter|lowerdir\+/i.test(detail) || detail === "") throw new LowerdirPlusUnsupported(detail);
        }
        throw mountError(opts, err, contextMessages(fsfd));
      }
    }
    try {
      fsconfig(fsfd, FS.CONFIG_CMD_CREATE, null, null);
    } catch (err) {
      throw mountError(opts, err, contextMessages(fsfd));
    }
    let mfd: number;
    try {
      mfd = fsmount(fsfd, FS.FSMOUNT_CLOEXEC, opts.readOnly ? FS.MOUNT_ATTR_RDONLY : 0);
    } catch (err) {
      throw mountError(opts, err, contextMessages(fsfd));
    }
    try {
      moveMount(mfd, "", AT.FDCWD, opts.target, FS.MOVE_MOUNT_F_EMPTY_PATH);
    } catch (err) {
      throw mountError(opts, err);
    } finally {
      close(mfd);
    }
  } finally {
    close(fsfd);
  }
}

function mountLegacy(opts: OverlayOptions): void {
  const flags = opts.readOnly ? MS.RDONLY : 0;
  let data = overlayMountData(opts);
  const fds: number[] = [];
  try {
    if (new TextEncoder().encode(data).length > MOUNT_DATA_MAX) {
      // The kernel resolves the lower paths during mount(2), so descriptors held just for the call suffice.
      for (const dir of opts.lowerDirs) fds.push(openat(AT.FDCWD, dir, O.PATH | O.DIRECTORY));
      data = overlayMountData(opts, fds.map((fd) => `/proc/self/fd/${fd}`));
      if (data.length > MOUNT_DATA_MAX) {
        throw new ResourceExhausted(
          `Cannot mount overlay of ${opts.lowerDirs.length} layers on ${
            JSON.stringify(opts.target)
          }: options exceed one page and this kernel lacks "lowerdir+"`,
        );
      }
    }
    mount("overlay", opts.target, "overlay", flags, data);
  } catch (err) {
    if (err instanceof ErrnoError) throw mountError(opts, err);
    throw err;
  } finally {
    for (const fd of fds) close(fd);
  }
}

/** Disk usage of a tree. */
export interface DiskUsage {
  /** Allocated bytes (st_blocks × 512, as du counts), each inode once. */
  bytes: number;
  /** Inodes, hardlinked ones counted once. */
  inodes: number;
  /** True when the walk stopped at `maxEntries` (the counts are then lower bounds). */
  partial?: boolean;
}

/**
 * Walks `dir` without following symlinks and sums allocated bytes and inodes, counting a hardlinked inode once.
 * Entries that vanish during the walk are skipped (a container may be writing). With `maxEntries`, the walk stops
 * after that many entries and says so (`partial`), so a huge tree cannot stall a caller that asks often.
 */
export async function diskUsage(dir: string, opts: { maxEntries?: number } = {}): Promise<DiskUsage> {
  const max = opts.maxEntries ?? Infinity;
  const seen = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  const add = (st: Deno.FileInfo): void => {
    if (!st.isDirectory && (st.nlink ?? 1) > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    bytes += (st.blocks ?? 0) * 512;
    inodes++;
  };
  add(await Deno.lstat(dir));
  const stack = [dir];
  while (stack.length > 0) {
    if (inodes >= max) return { bytes, inodes, partial: true };
    const d = stack.pop()!;
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(d)) names.push(e.name);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) continue;
      throw err;
    }
    const stats = await Promise.all(names.map((n) => Deno.lstat(`${d}/${n}`).catch(() => null)));
    for (const [i, st] of stats.entries()) {
      if (st === null) continue;
      add(st);
      if (st.isDirectory) stack.push(`${d}/${names[i]}`);
    }
  }
  return { bytes, inodes };
}
