/**
 * The daemon's side of the pod monitors. Every pod has a monitor directory `<runroot>/mon/<pod>` with the socket the
 * daemon talks to; the processes behind them are placed here: a pod goes to a live monitor process with room
 * (`monitor_pods_per_process`, handed over with `adopt`), or to the spare process kept ready for it, so
 * RunPodSandbox waits for no process start-up; a process is started for it only when neither answers. When a
 * pod is removed its monitor stops serving it, and a process left with no pod either exits or, when no other
 * has room, stays as the spare. Clients reconnect after a daemon restart, since the monitors outlive the daemon,
 * and the table of processes is read back from the pid files. A monitor found dead (killed: its pid file names a
 * process that is gone) is started again for each pod it served, in the same directory, so the pod can create
 * containers again; the containers of the dead one are then no monitor's children, and the container side learns
 * their end from the OCI runtime (cri/orphans.ts).
 * @module
 */
import { DavitError, errorMessage, Unavailable } from "../lib/errors.ts";
import { type Level, logger } from "../lib/log.ts";
import { MonitorClient, parsePidFile, processStartTime, startMonitor } from "../monitor/mod.ts";
import { isSpareName, MonitorHosts, monitorPid, type MonitorProcess, newSpareName } from "./monitor_hosts.ts";
import type { PodMonitors } from "./pods.ts";

/** How long after a failed restart of a pod's monitor calls fail without trying again. */
const RESTART_BACKOFF_MS = 10_000;

function isKind(err: unknown, kind: string): boolean {
  return err instanceof DavitError && err.kind === kind;
}

function olderThan(path: string, ms: number): boolean {
  try {
    const m = Deno.statSync(path).mtime;
    return m !== null && Date.now() - m.getTime() > ms;
  } catch {
    return false;
  }
}

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
  readonly #hosts: MonitorHosts;
  /** The spare process being started, when one is. */
  #spareLaunch: Promise<void> | undefined;
  /** The last spare could not be started. */
  #spareFailed = false;
  #closed = false;
  readonly #clients = new Map<string, MonitorClient>();
  /** Monitors being launched by this daemon (a pod's first, or a replacement), by pod. */
  readonly #starting = new Map<string, Promise<MonitorClient>>();
  /** Pods whose monitor is being shut down: never restarted. */
  readonly #stopping = new Set<string>();
  /** When a restart last failed, by pod: not tried again for {@link RESTART_BACKOFF_MS}. */
  readonly #failedAt = new Map<string, number>();
  readonly #log = logger("monitors");
  /** Spare placeholders being released. */
  readonly #releasing = new Set<Promise<void>>();
  /**
   * Adoptions (placements and spares kept), one at a time: a process is asked through a pod it already serves,
   * which must not be one whose own adoption or shutdown is under way.
   */
  #adopting: Promise<unknown> = Promise.resolve();

  constructor(runroot: string, logLevel: Level, opts: { podsPerProcess?: number } = {}) {
    this.#runroot = runroot;
    this.#logLevel = logLevel;
    this.#hosts = new MonitorHosts(opts.podsPerProcess ?? 8);
  }

  /**
   * The monitor directory of a pod. Kept short: it holds the monitor's socket, and unix socket paths are limited to
   * 107 bytes; 32 hex digits of a random 64-digit pod ID are as unique as needed.
   */
  dir(podId: string): string {
    return `${this.#runroot}/mon/${this.#name(podId)}`;
  }

  #name(podId: string): string {
    return podId.slice(0, 32);
  }

  /**
   * At daemon start: learns which live process serves which monitor directory (from the pid files), keeps one
   * spare, releases any other, and starts a spare in the background when no process has room.
   */
  async prepare(): Promise<void> {
    const mon = `${this.#runroot}/mon`;
    let names: string[] = [];
    try {
      names = [...Deno.readDirSync(mon)].filter((e) => e.isDirectory).map((e) => e.name);
    } catch {
      // no monitor yet
    }
    for (const name of names) {
      const dir = `${mon}/${name}`;
      const pid = monitorPid(dir, name);
      if (isSpareName(name) && (pid === 0 || (pid < 0 && olderThan(dir, 30_000)))) {
        // A dead spare, or one released while the daemon stopped before removing it (a spare being started has
        // no pid file for the few seconds its start takes).
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
      if (pid <= 0) continue;
      let startTime: number | undefined;
      try {
        startTime = parsePidFile(Deno.readTextFileSync(`${dir}/monitor.pid`))?.startTime;
      } catch {
        continue;
      }
      // A monitor of an older protocol (pid file without start time) is left out: it cannot adopt pods anyway.
      if (startTime === undefined) continue;
      const proc = this.#hosts.process(pid, startTime);
      if (!isSpareName(name)) this.#hosts.assign(name, proc);
      else if (proc.spare === undefined) this.#hosts.setSpare(name, proc);
      else this.#releaseSpare(name);
    }
    for (const proc of this.#hosts.all()) {
      // A spare beside pods (a crash between an adoption and the spare's release) is not needed.
      if (proc.spare !== undefined && proc.pods.size > 0) {
        const spare = proc.spare;
        this.#hosts.unassign(spare);
        this.#releaseSpare(spare);
      }
    }
    this.#log.debug("monitor processes", {
      processes: this.#hosts.all().map((p) => ({ pid: p.pid, pods: p.pods.size, spare: p.spare !== undefined })),
    });
    this.#ensureRoom();
  }

  /** Runs `fn` after every adoption before it (see #adopting). */
  #serially<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#adopting.then(fn);
    this.#adopting = p.catch(() => {});
    return p;
  }

  /** A name through which `proc` can be asked to adopt: its spare, or a pod that is neither new nor stopping. */
  #via(proc: MonitorProcess, except: string): string | undefined {
    if (proc.spare !== undefined) return proc.spare;
    const stopping = new Set([...this.#stopping].map((id) => this.#name(id)));
    return [...proc.pods].find((n) => n !== except && !stopping.has(n));
  }

  /** Starts the pod's monitor: on a process with room, or on a new one. */
  async start(podId: string): Promise<{ dir: string }> {
    await this.#launch(podId, () => this.#place(podId));
    return { dir: this.dir(podId) };
  }

  /**
   * Hands the pod to a live process with room (the spare's placeholder then goes), or starts a process for it when
   * none takes it. Resolves to a client of the pod's own socket.
   */
  async #place(podId: string): Promise<MonitorClient> {
    const name = this.#name(podId), dir = this.dir(podId);
    // Waiting for room (a spare being started) is not a failure; three failed adoptions, or no room after a spare
    // could not be started, mean a process of the pod's own.
    let failures = 0;
    for (let round = 0; round < 50 && failures < 3 && !this.#closed; round++) {
      if (!this.#hosts.withRoom()) {
        this.#ensureRoom();
        await this.#spareLaunch;
        if (!this.#hosts.withRoom() && this.#spareFailed) break;
      }
      const placed = await this.#serially(() => this.#adoptOn(podId, name, dir));
      if (placed === "retry") failures++;
      else if (placed !== "none") return placed;
    }
    const m = await startMonitor({ podId, dir, logLevel: this.#logLevel });
    this.#hosts.assign(name, this.#hosts.process(m.pid, processStartTime(m.pid)));
    this.#ensureRoom();
    return m.client;
  }

  /**
   * One placement attempt, run serially: the fullest live process with room adopts the pod (through its spare
   * placeholder, which then goes, or one of its pods). "none" when no process has room, "retry" when this one
   * failed; a process is forgotten only when it is dead or cannot adopt at all (older protocol).
   */
  async #adoptOn(podId: string, name: string, dir: string): Promise<MonitorClient | "none" | "retry"> {
    const proc = this.#hosts.withRoom();
    if (!proc) return "none";
    const via = this.#via(proc, name);
    if (via === undefined) return "retry"; // every pod it serves is stopping
    const spare = proc.spare;
    this.#hosts.assign(name, proc);
    if (spare !== undefined) this.#hosts.unassign(spare);
    try {
      let pid: number;
      try {
        pid = await (await this.#connect(via)).adopt(podId, dir);
      } catch (err) {
        // An earlier attempt that timed out may have succeeded after all: then the pod's socket answers already.
        if (!isKind(err, "AlreadyExists")) throw err;
        pid = proc.pid;
      }
      const c = new MonitorClient(`${dir}/monitor.sock`);
      try {
        const pong = await c.ping();
        if (pong.pid !== proc.pid) throw new Unavailable(`pid ${pong.pid} answers on ${dir} instead of ${pid}`);
      } catch (err) {
        await c.close();
        throw err;
      }
      if (spare !== undefined) this.#releaseSpare(spare);
      this.#ensureRoom();
      this.#log.debug("pod placed on a running monitor", { pod: podId, pid, pods: proc.pods.size });
      return c;
    } catch (err) {
      this.#hosts.unassign(name);
      const unusable = isKind(err, "Unimplemented") || isKind(err, "InvalidArgument") || !this.#hosts.alive(proc);
      this.#log.warn("cannot hand the pod to a running monitor", {
        pod: podId,
        pid: proc.pid,
        error: errorMessage(err),
        ...(unusable ? { forgotten: true } : {}),
      });
      if (unusable) {
        this.#hosts.drop(proc);
        if (spare !== undefined) this.#releaseSpare(spare);
      } else if (spare !== undefined) {
        this.#hosts.setSpare(spare, proc);
      }
      return "retry";
    }
  }

  /** Starts a spare process in the background unless one has room or is starting. */
  #ensureRoom(): void {
    if (this.#closed || this.#spareLaunch !== undefined || this.#hosts.withRoom() !== undefined) return;
    const name = newSpareName();
    this.#spareLaunch = startMonitor({ podId: name, dir: this.dir(name), logLevel: this.#logLevel }).then(
      (m) => {
        this.#spareFailed = false;
        this.#clients.set(name, m.client);
        if (this.#closed) this.#releaseSpare(name);
        else this.#hosts.setSpare(name, this.#hosts.process(m.pid, processStartTime(m.pid)));
      },
      (err) => {
        this.#spareFailed = true;
        this.#log.warn("cannot start a spare monitor", { error: errorMessage(err) });
      },
    ).finally(() => this.#spareLaunch = undefined);
  }

  /** Ends a spare placeholder (the process exits when it serves nothing else) and removes its directory. */
  #releaseSpare(name: string): Promise<void> {
    const p = (async () => {
      try {
        await (await this.#connect(name)).shutdown({ force: true });
      } catch (err) {
        this.#log.debug("spare monitor already gone", { spare: name, error: errorMessage(err) });
      }
      await this.forgetClient(name);
      await Deno.remove(this.dir(name), { recursive: true }).catch(() => {});
    })();
    this.#releasing.add(p);
    return p.finally(() => this.#releasing.delete(p));
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
    return monitorPid(this.dir(podId), this.#name(podId)) <= 0;
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
    const dir = this.dir(podId), name = this.#name(podId);
    this.#stopping.add(podId);
    try {
      await this.#starting.get(podId)?.catch(() => {});
      await this.#keepAsSpare(podId);
      for (let attempt = 0; attempt < 30; attempt++) {
        try {
          const c = await this.#connect(podId);
          await c.shutdown({ force: true });
          break;
        } catch (err) {
          await this.forgetClient(podId);
          const pid = monitorPid(dir, name);
          if (!exists(dir) || pid === 0) {
            this.#log.debug("monitor already gone", { pod: podId, error: errorMessage(err) });
            break;
          }
          // A process serving other pods too is not killed for this one's sake.
          const proc = this.#hosts.of(name);
          const alone = proc === undefined || (proc.pods.size <= 1 && proc.spare === undefined);
          if (attempt === 29 && pid > 0 && alone) {
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
      this.#hosts.unassign(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    } finally {
      this.#stopping.delete(podId);
      this.#failedAt.delete(podId);
    }
  }

  /**
   * Before the pod's shutdown: when its process would be left serving nothing while no other process has room,
   * the process takes a spare placeholder first, so it stays for the next pod instead of exiting.
   */
  #keepAsSpare(podId: string): Promise<void> {
    return this.#serially(async () => {
      const proc = this.#hosts.of(this.#name(podId));
      if (this.#closed || proc === undefined || proc.pods.size !== 1 || proc.spare !== undefined) return;
      if (this.#spareLaunch !== undefined || this.#hosts.withRoom(proc) !== undefined) return;
      const spare = newSpareName();
      try {
        await (await this.#connect(podId)).adopt(spare, this.dir(spare));
      } catch (err) {
        this.#log.debug("the pod's monitor cannot stay as the spare", { pod: podId, error: errorMessage(err) });
        return;
      }
      // Recorded once it exists, and only while the daemon runs (close() ends spares after the adoptions).
      if (this.#closed) this.#releaseSpare(spare);
      else this.#hosts.setSpare(spare, proc);
    });
  }

  /**
   * Closes every client; monitors serving pods keep running, spare ones are ended (a stopped daemon leaves no
   * idle process behind; the next one starts a spare of its own).
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#spareLaunch;
    await this.#adopting;
    for (const proc of this.#hosts.all()) {
      if (proc.spare === undefined) continue;
      const spare = proc.spare;
      this.#hosts.unassign(spare);
      this.#releaseSpare(spare);
    }
    await Promise.allSettled([...this.#releasing]);
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
      const m = await startMonitor({ podId, dir, logLevel: this.#logLevel });
      this.#hosts.assign(this.#name(podId), this.#hosts.process(m.pid, processStartTime(m.pid)));
      return m.client;
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
