/**
 * One monitor process serving one or more pods. Each pod has its own directory (`monitor.sock`, `monitor.pid`,
 * `exits/`) and its own {@link MonitorServer}, so the daemon talks to every pod the same way whichever process
 * serves it. The first pod comes from the command line; the daemon hands over more with `adopt` on any pod's
 * socket. A pod's `shutdown` ends only that pod's server; the process exits when it serves no pod. The process-wide
 * duties stay here: the orphan reaper (it must know every pod's container inits and spawned runtimes), the
 * termination signals, and the process's own log, which lives in one pod's directory and moves to another's when
 * that pod leaves.
 * @module
 */
import { AlreadyExists, errorMessage, FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { AT, close, dup2, O, openat } from "../lib/libc.ts";
import type { Logger } from "../lib/log.ts";
import { cleanMonitorDir, formatPidFile, monitorPaths, processStartTime } from "./cli.ts";
import { reapUnknownZombies } from "./reaper.ts";
import { MonitorServer } from "./server.ts";

/** Points stdin at /dev/null and stdout/stderr at `logPath`, so no fd refers to the daemon's pipes. */
export function redirectStdio(logPath: string): void {
  const logFd = openat(AT.FDCWD, logPath, O.WRONLY | O.APPEND | O.CREAT, 0o600);
  const nullFd = openat(AT.FDCWD, "/dev/null", O.RDONLY);
  try {
    dup2(nullFd, 0);
    dup2(logFd, 1);
    dup2(logFd, 2);
  } finally {
    close(logFd);
    close(nullFd);
  }
}

/** The name of an adopted pod's directory. */
const DIR_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** True when a monitor answers on `socket` (another process serves that directory). */
async function answering(socket: string): Promise<boolean> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch {
    return false;
  }
  conn.close();
  return true;
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone
  }
}

/** One pod served by this process. */
interface Served {
  podId: string;
  dir: string;
  server: MonitorServer;
  listener: Deno.Listener;
  serving: Promise<void>;
}

/** The pods of one monitor process. */
export class MonitorHost {
  readonly #log: Logger;
  readonly #pods = new Map<string, Served>();
  /** Directories being set up by `adopt`, so two adoptions of one pod cannot race. */
  readonly #adding = new Set<string>();
  /** Runtimes (and other children) spawned by any pod's server, shared so the reaper leaves them all alone. */
  readonly #spawned = new Set<number>();
  readonly #startTime = processStartTime(Deno.pid);
  readonly #empty = Promise.withResolvers<void>();
  /** The pod whose directory holds this process's log (stdout and stderr). */
  #logPod: string | undefined;
  /** Where the first pod's directory is: every adopted one must be beside it. */
  #parent: string | undefined;
  /**
   * Servers of pods shut down with `force` while a container of theirs still ran or was being created: the reaper
   * must leave those processes alone until they are waited for.
   */
  readonly #retired = new Set<MonitorServer>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Resolves when the last pod has left (the process should exit then). */
  get empty(): Promise<void> {
    return this.#empty.promise;
  }

  /** The pods served, in the order they came. */
  get podIds(): string[] {
    return [...this.#pods.keys()];
  }

  /** Containers of every pod whose exit is not recorded yet. */
  get liveCount(): number {
    let n = 0;
    for (const p of this.#pods.values()) n += p.server.liveCount;
    return n;
  }

  /**
   * Starts serving pod `podId` from `dir`: makes `exits/`, takes over the process log when it is the first pod,
   * writes the pid file, and listens on `dir/monitor.sock`. AlreadyExists when this process or another serves
   * `dir` or the pod already.
   */
  async add(podId: string, rawDir: string): Promise<{ pid: number }> {
    const dir = cleanMonitorDir(rawDir);
    if (dir === undefined) throw new InvalidArgument(`Monitor directory ${JSON.stringify(rawDir)} is too long`);
    const slash = dir.lastIndexOf("/");
    const parent = dir.slice(0, slash) || "/", base = dir.slice(slash + 1);
    // Adopted pods live beside the first one (`<runroot>/mon/<name>`), under a plain name: nothing else is touched.
    if (this.#parent !== undefined && (parent !== this.#parent || !DIR_NAME.test(base))) {
      throw new InvalidArgument(
        `Monitor directory ${JSON.stringify(rawDir)} must be a plain name (letters, digits, "_", ".", "-") in ` +
          this.#parent,
      );
    }
    if (this.#pods.has(podId)) throw new AlreadyExists(`This monitor already serves pod ${JSON.stringify(podId)}`);
    for (const p of this.#pods.values()) {
      if (p.dir === dir) throw new AlreadyExists(`This monitor already serves ${dir} (pod ${p.podId})`);
    }
    if (this.#adding.has(dir) || this.#adding.has(podId)) {
      throw new AlreadyExists(`Pod ${JSON.stringify(podId)} is being adopted already`);
    }
    this.#adding.add(dir).add(podId);
    let listener: Deno.Listener | undefined;
    let wrotePid = false;
    try {
      const paths = monitorPaths(dir);
      Deno.mkdirSync(paths.exits, { recursive: true, mode: 0o700 });
      if (await answering(paths.socket)) {
        throw new AlreadyExists(`Another monitor serves ${dir}`);
      }
      if (this.#logPod === undefined) {
        redirectStdio(paths.log);
        this.#logPod = podId;
      }
      const log = this.#log.with({ pod: podId });
      const server = new MonitorServer({
        podId,
        dir,
        exitsDir: paths.exits,
        log,
        spawned: this.#spawned,
        adopt: (id, d) => this.add(id, d),
      });
      const tmp = `${paths.pid}.tmp`;
      Deno.writeTextFileSync(tmp, formatPidFile(Deno.pid, this.#startTime), { mode: 0o644 });
      Deno.renameSync(tmp, paths.pid);
      wrotePid = true;
      removeQuietly(paths.socket);
      listener = Deno.listen({ transport: "unix", path: paths.socket });
      Deno.chmodSync(paths.socket, 0o600);
      const served: Served = { podId, dir, server, listener, serving: server.serve(listener) };
      this.#pods.set(podId, served);
      this.#parent ??= parent;
      server.stopped.then(() => this.#remove(served));
      log.info("serving pod", { pid: Deno.pid, dir, pods: this.#pods.size });
      return { pid: Deno.pid };
    } catch (err) {
      if (this.#logPod === podId) this.#logPod = undefined;
      // Nothing half-made stays: a pid file naming this live process would make the directory look served.
      if (listener !== undefined) {
        try {
          listener.close();
        } catch {
          // closed already
        }
        removeQuietly(monitorPaths(dir).socket);
      }
      if (wrotePid) removeQuietly(monitorPaths(dir).pid);
      if (err instanceof AlreadyExists || err instanceof InvalidArgument) throw err;
      throw new FailedPrecondition(`Cannot serve pod ${JSON.stringify(podId)} from ${dir}: ${errorMessage(err)}`, {
        cause: err,
      });
    } finally {
      this.#adding.delete(dir);
      this.#adding.delete(podId);
    }
  }

  /**
   * Reaps zombie children that are no pod's container init and no spawned process (call on SIGCHLD). Skipped,
   * answering undefined, while any pod has a `create` in flight (its init may be adopted before its pid is known):
   * the caller tries again later.
   */
  reapOrphans(): number[] | undefined {
    const inits = new Set<number>();
    for (const r of [...this.#retired]) if (r.liveCount === 0) this.#retired.delete(r);
    for (const server of [...[...this.#pods.values()].map((p) => p.server), ...this.#retired]) {
      if (server.creatingCount > 0) return undefined;
      for (const pid of server.initPids()) inits.add(pid);
    }
    const reaped = reapUnknownZombies((pid) => inits.has(pid) || this.#spawned.has(pid));
    if (reaped.length > 0) this.#log.debug("reaped orphans", { pids: reaped });
    return reaped;
  }

  /** Stops serving every pod (at a signal, with no container running): sockets and pid files are removed. */
  stopAll(): void {
    for (const p of [...this.#pods.values()]) this.#remove(p);
  }

  /** Reopens the process log (after an operator rotated it). */
  reopenLog(): void {
    const p = this.#logPod === undefined ? undefined : this.#pods.get(this.#logPod);
    if (p) redirectStdio(monitorPaths(p.dir).log);
  }

  /** Ends a pod's server: no more connections, its socket and pid file gone; the log moves if it was there. */
  #remove(p: Served): void {
    if (this.#pods.get(p.podId) !== p) return;
    this.#pods.delete(p.podId);
    if (p.server.liveCount > 0) this.#retired.add(p.server);
    try {
      p.listener.close();
    } catch {
      // closed already
    }
    p.serving.catch(() => {}).then(() => p.server.closeConnections());
    const paths = monitorPaths(p.dir);
    removeQuietly(paths.socket);
    removeQuietly(paths.pid);
    this.#log.info("stopped serving pod", { pod: p.podId, live: p.server.liveCount, pods: this.#pods.size });
    if (this.#logPod === p.podId) {
      // The daemon removes a pod's directory after its shutdown: the process log goes on in another pod's.
      this.#logPod = undefined;
      const next = this.#pods.values().next().value;
      if (next) {
        try {
          redirectStdio(monitorPaths(next.dir).log);
          this.#logPod = next.podId;
          this.#log.info("monitor log moved here", { from: p.dir, pods: this.podIds });
        } catch (err) {
          this.#log.warn("cannot move the monitor log", { to: next.dir, err: errorMessage(err) });
        }
      }
    }
    if (this.#pods.size === 0) this.#empty.resolve();
  }
}
