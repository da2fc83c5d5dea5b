/**
 * Container exit records: decoding a wait status, choosing the CRI reason, and the durable exit files in the
 * monitor directory's `exits/` (one `<container_id>.json` each). An exit file is written by temp file, fsync,
 * rename and directory fsync before the exit is reported to anyone, so after a crash or restart of the daemon or
 * the monitor the files are the truth.
 * @module
 */
import { isValidId } from "./protocol.ts";

/** The CRI reason strings the kubelet understands for a terminated container. */
export type ExitReason = "Completed" | "Error" | "OOMKilled";

/** The content of an exit file, also the monitor's answer for an exited container. */
export interface ExitRecord {
  container_id: string;
  /** The process's exit status, or 128 + signal for a signal death (the shell convention the kubelet expects). */
  exit_code: number;
  /** The terminating signal's number, present only for a signal death. */
  signal?: number;
  /** When the monitor reaped the process, RFC 3339 UTC with nanoseconds. */
  finished_at: string;
  reason: ExitReason;
  /** True when the container's memory cgroup counted an OOM kill while it ran (whichever process was killed). */
  oom_killed: boolean;
  /** Why the exit status is not exact, when it is not (e.g. the process was not the monitor's child). */
  message?: string;
}

/** A decoded wait(2) status. */
export interface WaitResult {
  exitCode: number;
  signal?: number;
}

/**
 * Decodes a raw wait status (the glibc WIFEXITED/WIFSIGNALED bit layout): a normal exit gives its status, a
 * signal death gives 128 + the signal number and the signal.
 */
export function decodeWaitStatus(status: number): WaitResult {
  const low = status & 0x7f;
  if (low === 0) return { exitCode: (status >> 8) & 0xff };
  if (low !== 0x7f) return { exitCode: 128 + low, signal: low };
  // Stopped or continued: never asked for (no WUNTRACED/WCONTINUED), decoded as not exited.
  throw new RangeError(`wait status 0x${status.toString(16)} is not a termination`);
}

/** The CRI reason: an OOM kill wins over the exit code (the kubelet reports OOMKilled even for code 0 or 1). */
export function exitReason(exitCode: number, oomKilled: boolean): ExitReason {
  if (oomKilled) return "OOMKilled";
  return exitCode === 0 ? "Completed" : "Error";
}

const REASONS: readonly string[] = ["Completed", "Error", "OOMKilled"];

/** Validates the JSON of an exit file; throws a TypeError naming the bad field. */
export function parseExitRecord(text: string): ExitRecord {
  const v: unknown = JSON.parse(text);
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new TypeError("exit record is not an object");
  const o = v as Record<string, unknown>;
  const id = o.container_id;
  if (typeof id !== "string" || !isValidId(id)) throw new TypeError("exit record has a bad container_id");
  if (!Number.isInteger(o.exit_code)) throw new TypeError("exit record has a bad exit_code");
  if (typeof o.finished_at !== "string") throw new TypeError("exit record has a bad finished_at");
  if (typeof o.reason !== "string" || !REASONS.includes(o.reason)) throw new TypeError("exit record has a bad reason");
  if (typeof o.oom_killed !== "boolean") throw new TypeError("exit record has a bad oom_killed");
  const rec: ExitRecord = {
    container_id: id,
    exit_code: o.exit_code as number,
    finished_at: o.finished_at,
    reason: o.reason as ExitReason,
    oom_killed: o.oom_killed,
  };
  if (o.signal !== undefined) {
    if (!Number.isInteger(o.signal)) throw new TypeError("exit record has a bad signal");
    rec.signal = o.signal as number;
  }
  if (o.message !== undefined) {
    if (typeof o.message !== "string") throw new TypeError("exit record has a bad message");
    rec.message = o.message;
  }
  return rec;
}

/** The exit file of `containerId` in the `exits/` directory `exitsDir`. */
export function exitFilePath(exitsDir: string, containerId: string): string {
  if (!isValidId(containerId)) throw new TypeError(`bad container ID ${JSON.stringify(containerId)}`);
  return `${exitsDir}/${containerId}.json`;
}

/** Writes `rec` durably: temp file, fsync, rename over the final name, fsync of the directory. */
export function writeExitFile(exitsDir: string, rec: ExitRecord): void {
  const final = exitFilePath(exitsDir, rec.container_id);
  const tmp = `${exitsDir}/.${rec.container_id}.json.tmp`;
  const bytes = new TextEncoder().encode(JSON.stringify(rec) + "\n");
  {
    using f = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    let off = 0;
    while (off < bytes.byteLength) off += f.writeSync(bytes.subarray(off));
    f.syncSync();
  }
  Deno.renameSync(tmp, final);
  using d = Deno.openSync(exitsDir, { read: true });
  d.syncSync();
}

/** Reads one exit file; undefined when there is none. A corrupt file throws. */
export function readExitFile(exitsDir: string, containerId: string): ExitRecord | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(exitFilePath(exitsDir, containerId));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  return parseExitRecord(text);
}

/** Removes an exit file if present. */
export function removeExitFile(exitsDir: string, containerId: string): void {
  try {
    Deno.removeSync(exitFilePath(exitsDir, containerId));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/**
 * Every valid exit file in `exitsDir`, and the names of files that could not be read (left in place for an
 * operator). Leftover temp files from a crash mid-write are removed: their exit was never reported.
 */
export function listExitFiles(exitsDir: string): { records: ExitRecord[]; bad: string[] } {
  const records: ExitRecord[] = [];
  const bad: string[] = [];
  for (const e of Deno.readDirSync(exitsDir)) {
    if (!e.isFile) continue;
    if (e.name.startsWith(".") && e.name.endsWith(".json.tmp")) {
      Deno.removeSync(`${exitsDir}/${e.name}`);
      continue;
    }
    if (!e.name.endsWith(".json")) continue;
    try {
      const rec = parseExitRecord(Deno.readTextFileSync(`${exitsDir}/${e.name}`));
      if (`${rec.container_id}.json` !== e.name) throw new TypeError("container_id does not match the file name");
      records.push(rec);
    } catch {
      bad.push(e.name);
    }
  }
  return { records, bad };
}
