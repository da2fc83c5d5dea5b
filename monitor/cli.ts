/**
 * The `davit monitor` command line, a contract between daemon versions (an upgraded daemon talks to monitors an
 * older one started): its flags, its usage text, and the files of a monitor directory. Pure, and shared by the
 * monitor (main.ts) and the daemon side that launches it (start.ts).
 * @module
 */
import { isLevel, type Level } from "../lib/log.ts";
import { isValidId } from "./protocol.ts";

/** The longest unix socket path Linux accepts (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/** The files of a monitor directory. */
export function monitorPaths(dir: string): { socket: string; pid: string; log: string; exits: string } {
  return { socket: `${dir}/monitor.sock`, pid: `${dir}/monitor.pid`, log: `${dir}/monitor.log`, exits: `${dir}/exits` };
}

/**
 * `dir` without trailing slashes, or undefined when its socket path would not fit a unix socket address. `dir` is
 * absolute (checked by the caller). Pure.
 */
export function cleanMonitorDir(dir: string): string | undefined {
  const clean = dir.length > 1 && dir.endsWith("/") ? dir.replace(/\/+$/, "") : dir;
  return new TextEncoder().encode(monitorPaths(clean).socket).byteLength > MAX_SOCKET_PATH ? undefined : clean;
}

/**
 * The text of `monitor.pid`: the process's pid and its start time (field 22 of /proc/PID/stat, clock ticks since
 * boot), so that a reader can tell the monitor from a later process that got the same pid. Older monitors wrote
 * the pid alone. Pure.
 */
export function formatPidFile(pid: number, startTime: number | undefined): string {
  return startTime === undefined ? `${pid}\n` : `${pid} ${startTime}\n`;
}

/** Reads {@link formatPidFile}'s text; undefined when it is not one. Pure. */
export function parsePidFile(text: string): { pid: number; startTime?: number } | undefined {
  const m = /^(\d+)(?: (\d+))?\s*$/.exec(text);
  if (!m) return undefined;
  const pid = Number(m[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return m[2] === undefined ? { pid } : { pid, startTime: Number(m[2]) };
}

/** The start time of process `pid` (field 22 of /proc/PID/stat), or undefined when it does not exist. */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const start = Number(fields[19]);
  return Number.isSafeInteger(start) ? start : undefined;
}

/**
 * True when process `pid` runs and started at `startTime` (field 22 of /proc/PID/stat): not gone, not a zombie
 * waiting for its parent to reap it, and not a later process that got the same pid.
 */
export function processAlive(pid: number, startTime: number): boolean {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return false;
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[0] !== "Z" && fields[0] !== "X" && Number(fields[19]) === startTime;
}

/** The usage text of `davit monitor --help`. */
export const USAGE = `Usage: davit monitor --pod-id ID --dir DIR [--log-level LEVEL]

The pod monitor: started by the davit daemon in its own session for pod ID. It creates the pod's containers
through the OCI runtime, holds their stdio, writes their CRI logs, reaps them and records their exits, and answers
the daemon on DIR/monitor.sock (newline-delimited JSON, see docs/monitor-protocol.md). The daemon may hand it more
pods (op "adopt"), each served from its own directory; it exits once it serves none.

Flags:
  --pod-id ID        the first pod this monitor serves
  --dir DIR          the monitor directory (absolute): monitor.sock, monitor.pid, monitor.log, exits/
  --log-level LEVEL  trace, debug, info, warn, error or fatal (default info)
  --help             print this text`;

/** What the command line asks for. */
export type MonitorArgs =
  | { kind: "help" }
  | { kind: "run"; podId: string; dir: string; logLevel: Level }
  | { kind: "error"; message: string };

/** Parses `davit monitor` arguments (`--flag value` or `--flag=value`). Pure. */
export function parseMonitorArgs(args: readonly string[]): MonitorArgs {
  const values: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") return { kind: "help" };
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg : arg.slice(0, eq);
    if (name !== "--pod-id" && name !== "--dir" && name !== "--log-level") {
      return { kind: "error", message: `unknown flag ${JSON.stringify(arg)}` };
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else value = args[++i];
    if (value === undefined) return { kind: "error", message: `${name} needs a value` };
    if (name in values) return { kind: "error", message: `${name} given twice` };
    values[name] = value;
  }
  const podId = values["--pod-id"];
  const dir = values["--dir"];
  const level = values["--log-level"] ?? "info";
  if (podId === undefined) return { kind: "error", message: "--pod-id is required" };
  if (!isValidId(podId)) return { kind: "error", message: `bad --pod-id ${JSON.stringify(podId)}` };
  if (dir === undefined) return { kind: "error", message: "--dir is required" };
  if (!dir.startsWith("/") || dir.includes("\0")) {
    return { kind: "error", message: `--dir must be an absolute path, got ${JSON.stringify(dir)}` };
  }
  const clean = cleanMonitorDir(dir);
  if (clean === undefined) {
    return { kind: "error", message: `--dir is too long for a unix socket path (${MAX_SOCKET_PATH} bytes)` };
  }
  if (!isLevel(level)) return { kind: "error", message: `bad --log-level ${JSON.stringify(level)}` };
  return { kind: "run", podId, dir: clean, logLevel: level };
}
