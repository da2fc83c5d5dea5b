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

/** The usage text of `davit monitor --help`. */
export const USAGE = `Usage: davit monitor --pod-id ID --dir DIR [--log-level LEVEL]

The pod monitor: started by the davit daemon, one per pod, in its own session. It creates the pod's containers
through the OCI runtime, holds their stdio, writes their CRI logs, reaps them and records their exits, and answers
the daemon on DIR/monitor.sock (newline-delimited JSON, see docs/monitor-protocol.md).

Flags:
  --pod-id ID        the pod this monitor serves (used in messages)
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
  const clean = dir.length > 1 && dir.endsWith("/") ? dir.replace(/\/+$/, "") : dir;
  if (new TextEncoder().encode(monitorPaths(clean).socket).byteLength > MAX_SOCKET_PATH) {
    return { kind: "error", message: `--dir is too long for a unix socket path (${MAX_SOCKET_PATH} bytes)` };
  }
  if (!isLevel(level)) return { kind: "error", message: `bad --log-level ${JSON.stringify(level)}` };
  return { kind: "run", podId, dir: clean, logLevel: level };
}
