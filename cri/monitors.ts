/**
 * The daemon's side of the pod monitors: one `davit monitor` per pod under `<runroot>/pods/<id>/monitor`, started
 * with the pod and shut down after it is removed. Clients reconnect after a daemon restart, since the monitors
 * outlive the daemon.
 * @module
 */
import { errorMessage } from "../lib/errors.ts";
import { type Level, logger } from "../lib/log.ts";
import { MonitorClient, startMonitor } from "../monitor/mod.ts";
import type { PodMonitors } from "./pods.ts";

/**
 * The pid of the pod's monitor if its process is alive (from the pid file, checked against /proc), 0 when it is
 * known to be gone, -1 when the monitor may still be starting (no pid file yet).
 */
function monitorPid(dir: string, podId: string): number {
  let pid: number;
  try {
    pid = Number(Deno.readTextFileSync(`${dir}/monitor.pid`).trim());
  } catch {
    return -1;
  }
  try {
    const cmdline = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    return cmdline.includes("monitor") && cmdline.includes(podId) ? pid : 0;
  } catch {
    return 0;
  }
}

/** Monitors by pod. */
export class MonitorSet implements PodMonitors {
  readonly #runroot: string;
  readonly #logLevel: Level;
  readonly #clients = new Map<string, MonitorClient>();
  readonly #log = logger("monitors");

  constructor(runroot: string, logLevel: Level) {
    this.#runroot = runroot;
    this.#logLevel = logLevel;
  }

  /**
   * The monitor directory of a pod. Kept short: it holds the monitor's socket, and unix socket paths are limited to
   * 107 bytes; 32 hex digits of a random 64-digit pod ID are as unique as needed.
   */
  dir(podId: string): string {
    return `${this.#runroot}/mon/${podId.slice(0, 32)}`;
  }

  /** Starts the pod's monitor. */
  async start(podId: string): Promise<{ dir: string }> {
    const dir = this.dir(podId);
    const m = await startMonitor({ podId, dir, logLevel: this.#logLevel });
    this.#clients.set(podId, m.client);
    return { dir };
  }

  /** A client of the pod's monitor, connecting (again) when needed. */
  async client(podId: string): Promise<MonitorClient> {
    const have = this.#clients.get(podId);
    if (have) return have;
    const c = new MonitorClient(`${this.dir(podId)}/monitor.sock`);
    await c.ping();
    this.#clients.set(podId, c);
    return c;
  }

  /** Drops a client whose connection failed, so the next call reconnects. */
  async forgetClient(podId: string): Promise<void> {
    const c = this.#clients.get(podId);
    this.#clients.delete(podId);
    await c?.close().catch(() => {});
  }

  /**
   * Shuts the pod's monitor down (it kills nothing: containers are gone by now) and removes its directory;
   * idempotent. A monitor that is still starting (a daemon killed just after launching it, then recovering) is
   * waited for briefly; one that never answers is killed through its pid file.
   */
  async stop(podId: string): Promise<void> {
    const dir = this.dir(podId);
    for (let attempt = 0; attempt < 30; attempt++) {
      try {
        const c = await this.client(podId);
        await c.shutdown({ force: true });
        break;
      } catch (err) {
        await this.forgetClient(podId);
        const pid = monitorPid(dir, podId);
        const exists = await Deno.stat(dir).then(() => true, () => false);
        if (!exists || pid === 0) {
          this.#log.debug("monitor already gone", { pod: podId, error: errorMessage(err) });
          break;
        }
        if (attempt === 29 && pid > 0) {
          this.#log.warn("monitor does not answer; killing it", { pod: podId, pid });
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // gone meanwhile
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await this.forgetClient(podId);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  /** Closes every client (the monitors keep running). */
  async close(): Promise<void> {
    for (const id of [...this.#clients.keys()]) await this.forgetClient(id);
  }
}
