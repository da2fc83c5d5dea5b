/**
 * The daemon's side of the pod monitors: one `davit monitor` per pod under `<runroot>/mon/<pod>`, started with the
 * pod and shut down after it is removed. Clients reconnect after a daemon restart, since the monitors outlive the
 * daemon. A monitor found dead (killed: its pid file names a process that is gone) is started again in the same
 * directory, so the pod can create containers again; the containers of the dead one are then no monitor's children,
 * and the container side learns their end from the OCI runtime (cri/orphans.ts).
 * @module
 */
import { DavitError, errorMessage, Unavailable } from "../lib/errors.ts";
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

/** How long after a failed restart of a pod's monitor calls fail without trying again. */
const RESTART_BACKOFF_MS = 10_000;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Monitors by pod. */
export class MonitorSet implements PodMonitors {
  readonly #runroot: string;
  readonly #logLevel: Level;
  readonly #clients = new Map<string, MonitorClient>();
  /** Monitors being launched by this daemon (a pod's first, or a replacement), by pod. */
  readonly #starting = new Map<string, Promise<MonitorClient>>();
  /** Pods whose monitor is being shut down: never restarted. */
  readonly #stopping = new Set<string>();
  /** When a restart last failed, by pod: not tried again for {@link RESTART_BACKOFF_MS}. */
  readonly #failedAt = new Map<string, number>();
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
    await this.#launch(podId, () => startMonitor({ podId, dir, logLevel: this.#logLevel }).then((m) => m.client));
    return { dir };
  }

  /**
   * A client of the pod's monitor that answers, connecting (again) when needed. When the monitor cannot be
   * reached and is {@link gone}, a new monitor is started in the pod's directory first (unless the pod is being
   * removed, its directory no longer exists, or a restart failed in the last 10 s: then the error is thrown).
   */
  async client(podId: string): Promise<MonitorClient> {
    await this.#starting.get(podId)?.catch(() => {});
    try {
      return await this.#connect(podId);
    } catch (err) {
      const unreachable = err instanceof DavitError && (err.kind === "Unavailable" || err.kind === "DeadlineExceeded");
      // A concurrent call may have replaced the monitor meanwhile.
      const now = this.#clients.get(podId);
      if (now?.connected) return now;
      if (!unreachable || this.#stopping.has(podId) || !this.gone(podId)) throw err;
      const failed = this.#failedAt.get(podId);
      if (failed !== undefined && Date.now() - failed < RESTART_BACKOFF_MS) throw err;
      try {
        const c = await this.#restart(podId, err);
        this.#failedAt.delete(podId);
        return c;
      } catch (restartErr) {
        this.#failedAt.set(podId, Date.now());
        throw restartErr;
      }
    }
  }

  /**
   * True when the pod's monitor process is known to be dead: its pid file names a process that is gone, or there
   * is no pid file (a monitor removes it only when it exits) and this daemon is not starting one.
   */
  gone(podId: string): boolean {
    if (this.#starting.has(podId)) return false;
    return monitorPid(this.dir(podId), podId) <= 0;
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
   * waited for briefly; one that never answers is killed through its pid file. A dead monitor is not restarted.
   */
  async stop(podId: string): Promise<void> {
    const dir = this.dir(podId);
    this.#stopping.add(podId);
    try {
      await this.#starting.get(podId)?.catch(() => {});
      for (let attempt = 0; attempt < 30; attempt++) {
        try {
          const c = await this.#connect(podId);
          await c.shutdown({ force: true });
          break;
        } catch (err) {
          await this.forgetClient(podId);
          const pid = monitorPid(dir, podId);
          if (!exists(dir) || pid === 0) {
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
    } finally {
      this.#stopping.delete(podId);
      this.#failedAt.delete(podId);
    }
  }

  /** Closes every client (the monitors keep running). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#starting.values()]);
    for (const id of [...this.#clients.keys()]) await this.forgetClient(id);
  }

  /** The cached client while its connection is open; otherwise a new one, kept once it answered `ping`. */
  async #connect(podId: string): Promise<MonitorClient> {
    const have = this.#clients.get(podId);
    if (have?.connected) return have;
    const c = new MonitorClient(`${this.dir(podId)}/monitor.sock`);
    try {
      await c.ping();
    } catch (err) {
      await c.close();
      throw err;
    }
    // Another call may have connected meanwhile: keep one client.
    const other = this.#clients.get(podId);
    if (other !== undefined && other !== have && other.connected) {
      await c.close();
      return other;
    }
    this.#clients.set(podId, c);
    if (have !== undefined && have !== c) await have.close().catch(() => {});
    return c;
  }

  /** Starts a monitor in place of a dead one, once even when several calls find it dead together. */
  #restart(podId: string, cause: unknown): Promise<MonitorClient> {
    const dir = this.dir(podId);
    // The pod was removed (its directory goes last) or the host rebooted (the runroot is a tmpfs): nothing to serve.
    if (!exists(dir)) {
      return Promise.reject(
        new Unavailable(`The monitor of pod ${podId} is gone, and so is its directory ${dir}`, { cause }),
      );
    }
    return this.#launch(podId, async () => {
      this.#log.warn("the pod's monitor is gone; starting a new one", { pod: podId, error: errorMessage(cause) });
      return (await startMonitor({ podId, dir, logLevel: this.#logLevel })).client;
    });
  }

  /** Runs `start` as the pod's one launch in flight and keeps the client it gives. */
  #launch(podId: string, start: () => Promise<MonitorClient>): Promise<MonitorClient> {
    const pending = this.#starting.get(podId);
    if (pending) return pending;
    const p = start().then(async (c) => {
      await this.forgetClient(podId);
      this.#clients.set(podId, c);
      return c;
    }).finally(() => this.#starting.delete(podId));
    this.#starting.set(podId, p);
    return p;
  }
}
