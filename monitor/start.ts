/**
 * Launching a pod's monitor from the daemon: `davit monitor` through lib/self_exec.ts (so the compiled binary and
 * `deno run main.ts` behave the same), detached into its own session, with V8 flags that keep its heap small,
 * then waiting until it answers `ping` on its socket.
 * @module
 */
import { DeadlineExceeded, errorMessage, InvalidArgument, Unavailable } from "../lib/errors.ts";
import type { Level } from "../lib/log.ts";
import { selfCommand } from "../lib/self_exec.ts";
import { monitorPaths, parseMonitorArgs } from "./cli.ts";
import { MonitorClient, type MonitorClientOptions } from "./client.ts";

/**
 * V8 flags for monitors. `--single-threaded` drops V8's background compiler and GC threads (two fewer threads,
 * and no concurrent marking to reserve for); `--max-semi-space-size=1` bounds the young generation at 1 MiB. The
 * old space is left unbounded: a monitor that hit a heap limit would die and break its containers' pipes.
 */
export const MONITOR_V8_FLAGS = "--single-threaded,--max-semi-space-size=1";

/** Options for {@link startMonitor}. */
export interface StartMonitorOptions {
  podId: string;
  /** The monitor directory (absolute); created 0700 when missing. */
  dir: string;
  logLevel?: Level;
  /** How long to wait for the monitor to answer, default 10 s. */
  timeoutMs?: number;
  /** V8 flags passed through DENO_V8_FLAGS; default {@link MONITOR_V8_FLAGS}; "" for none. */
  v8Flags?: string;
  /** Options of the returned client. */
  client?: MonitorClientOptions;
}

/** A running monitor. */
export interface StartedMonitor {
  pid: number;
  socketPath: string;
  /** Connected and answering. */
  client: MonitorClient;
  /**
   * Resolves when the monitor exits, if this process is still its parent (tests await it after `shutdown`). The
   * child is unref'd: it never keeps this process alive.
   */
  exited: Promise<Deno.CommandStatus>;
}

async function readText(stream: ReadableStream<Uint8Array>, max: number, signal?: AbortSignal): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  // Once the monitor answers, nothing more is read: a copy of the pipe that Deno itself keeps in the child may hold
  // it open for the monitor's whole life.
  const stop = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size < max) chunks.push(value.subarray(0, max - size));
      size += value.byteLength;
    }
  } catch {
    // the monitor went away, or reading was stopped
  } finally {
    signal?.removeEventListener("abort", stop);
  }
  const dec = new TextDecoder();
  return chunks.map((c) => dec.decode(c, { stream: true })).join("");
}

/** How often {@link startMonitor} looks for the new monitor's socket. */
const POLL_MS = 5;

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function tail(path: string, lines: number): string {
  try {
    return Deno.readTextFileSync(path).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/**
 * Starts the monitor of pod `podId` in `dir` and resolves once it answers `ping` on `dir/monitor.sock`. Throws
 * InvalidArgument for arguments the monitor would refuse, Unavailable when it exits early (with its error
 * output), DeadlineExceeded when it does not answer in time (it is then killed).
 */
export async function startMonitor(opts: StartMonitorOptions): Promise<StartedMonitor> {
  const args = ["monitor", "--pod-id", opts.podId, "--dir", opts.dir, "--log-level", opts.logLevel ?? "info"];
  const parsed = parseMonitorArgs(args.slice(1));
  if (parsed.kind !== "run") {
    throw new InvalidArgument(`Cannot start monitor: ${parsed.kind === "error" ? parsed.message : "bad arguments"}`);
  }
  const paths = monitorPaths(parsed.dir);
  await Deno.mkdir(parsed.dir, { recursive: true, mode: 0o700 });
  const flags = opts.v8Flags ?? MONITOR_V8_FLAGS;
  const child = selfCommand(args, {
    // The monitor's modules import nothing through deno.json: skipping it (and npm set-up) saves memory.
    bare: true,
    detached: true,
    stdin: "null",
    stdout: "null",
    // Read until the monitor points its stderr at monitor.log: what comes before is a start-up failure.
    stderr: "piped",
    // No update check: it would be one more thing a long-lived process sets up (the compiled binary has none).
    env: flags === "" ? { DENO_NO_UPDATE_CHECK: "1" } : { DENO_NO_UPDATE_CHECK: "1", DENO_V8_FLAGS: flags },
  }).spawn();
  const exited = child.status;
  const stopReading = new AbortController();
  const early = readText(child.stderr, 8192, stopReading.signal);
  let gone = false;
  exited.then(() => gone = true, () => gone = true);
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastError = "";
  for (;;) {
    if (gone) {
      const status = await exited;
      const text = (await early).trim() || tail(paths.log, 5);
      throw new Unavailable(
        `Monitor of pod ${JSON.stringify(opts.podId)} exited with code ${status.code} at start: ${text}`,
      );
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    // Until the socket exists there is nothing to connect to: look again soon (a Deno boot takes tens of ms, and
    // this wait is on RunPodSandbox's path), without making a client for each look.
    if (!exists(paths.socket)) {
      lastError = `no socket ${paths.socket}`;
      await new Promise((r) => setTimeout(r, POLL_MS));
      continue;
    }
    const client = new MonitorClient(paths.socket, { connectTimeoutMs: Math.min(remaining, 1000), ...opts.client });
    try {
      const pong = await client.ping({ timeoutMs: Math.min(remaining, 2000) });
      // A stale monitor of the same directory would answer too: only ours counts.
      if (pong.pid === child.pid) {
        child.unref();
        stopReading.abort();
        await early;
        return { pid: child.pid, socketPath: paths.socket, client, exited };
      }
      lastError = `pid ${pong.pid} answers instead`;
    } catch (err) {
      lastError = errorMessage(err);
    }
    await client.close();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // exited meanwhile
  }
  await exited;
  await early;
  throw new DeadlineExceeded(
    `Monitor of pod ${JSON.stringify(opts.podId)} did not answer within ${opts.timeoutMs ?? 10_000} ms (${lastError})`,
  );
}
