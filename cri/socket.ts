/**
 * The public socket's life: refusing to take over a socket another process still serves, replacing a stale one
 * left by a crash, creating the parent directory with safe modes, and setting the socket's own mode.
 * @module
 */
import { FailedPrecondition } from "../lib/errors.ts";

/** Returns true when something accepts connections on the unix socket at `path`. */
export async function socketIsLive(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes `path` free for a new listener: a live socket is an error (another daemon serves it), a dead socket is
 * removed, any other kind of file is an error (never deleted on the daemon's behalf).
 */
export async function claimSocketPath(path: string): Promise<"fresh" | "stale"> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "fresh";
    throw err;
  }
  if (!info.isSocket) {
    throw new FailedPrecondition(`Cannot listen on ${path}: it exists and is not a socket; remove it by hand`);
  }
  if (await socketIsLive(path)) {
    throw new FailedPrecondition(`Cannot listen on ${path}: another process is serving it`);
  }
  await Deno.remove(path);
  return "stale";
}

/** Creates a directory (and parents) with `mode`, tightening an existing one that is looser. */
export async function ensureDir(path: string, mode: number): Promise<void> {
  await Deno.mkdir(path, { recursive: true, mode });
  const info = await Deno.stat(path);
  if (info.mode !== null && (info.mode & 0o777 & ~mode) !== 0) await Deno.chmod(path, info.mode & 0o777 & mode);
}

/** The parent directory of a path. */
export function parentDir(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}
