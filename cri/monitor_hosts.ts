/**
 * Which monitor process serves which pod. A monitor process serves up to `monitor_pods_per_process` pods, each
 * from its own directory `<runroot>/mon/<name>` (name: the first 32 characters of the pod ID). A process with no
 * pod left is kept alive by a placeholder, the spare (a directory named `spare-<hex>`), so that the next pod needs
 * no process start-up; the daemon keeps one process with room at all times. Bookkeeping only: starting, adopting
 * and shutting down are cri/monitors.ts's.
 * @module
 */
import { parsePidFile, processAlive } from "../monitor/mod.ts";

/** A monitor process as the daemon knows it. */
export interface MonitorProcess {
  pid: number;
  /** Its start time (/proc/PID/stat field 22), telling it from a later process with the same pid. */
  startTime: number | undefined;
  /** Directory names of the pods it serves. */
  pods: Set<string>;
  /** Directory name of its spare placeholder, when it has one. */
  spare?: string;
}

/** The prefix of a spare placeholder's directory name. */
export const SPARE_PREFIX = "spare-";

/** True for a spare placeholder's directory name. */
export function isSpareName(name: string): boolean {
  return name.startsWith(SPARE_PREFIX);
}

/** A new spare placeholder name (also its pseudo pod ID). */
export function newSpareName(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return SPARE_PREFIX + [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * The pid of the monitor serving directory `dir` (named `name`) if that process is alive, 0 when it is known to be
 * gone, -1 when there is no pid file (the monitor may still be starting). A pid file with a start time is checked
 * against /proc; an older one (pid alone) by the process's command line naming the monitor mode and `name`.
 */
export function monitorPid(dir: string, name: string): number {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${dir}/monitor.pid`);
  } catch {
    return -1;
  }
  const parsed = parsePidFile(text);
  if (!parsed) return 0;
  // A zombie is gone too: the daemon that started the monitor may not have reaped it yet.
  if (parsed.startTime !== undefined) return processAlive(parsed.pid, parsed.startTime) ? parsed.pid : 0;
  try {
    const cmdline = Deno.readTextFileSync(`/proc/${parsed.pid}/cmdline`);
    return cmdline.includes("monitor") && cmdline.includes(name) ? parsed.pid : 0;
  } catch {
    return 0;
  }
}

/** The table of monitor processes. */
export class MonitorHosts {
  readonly maxPods: number;
  readonly #alive: (p: MonitorProcess) => boolean;
  readonly #procs = new Set<MonitorProcess>();
  readonly #byName = new Map<string, MonitorProcess>();

  /** `alive` defaults to the process running (not a zombie) with the start time recorded. */
  constructor(maxPods: number, alive?: (p: MonitorProcess) => boolean) {
    this.maxPods = maxPods;
    this.#alive = alive ?? ((p) => p.startTime !== undefined && processAlive(p.pid, p.startTime));
  }

  /** The process with this pid, made known if it is not yet. */
  process(pid: number, startTime: number | undefined): MonitorProcess {
    for (const p of this.#procs) if (p.pid === pid && p.startTime === startTime) return p;
    const p: MonitorProcess = { pid, startTime, pods: new Set() };
    this.#procs.add(p);
    return p;
  }

  /** The process serving directory `name` (a pod's or a spare's). */
  of(name: string): MonitorProcess | undefined {
    return this.#byName.get(name);
  }

  /** Records that `p` serves pod directory `name` (moving it from any process it was on). */
  assign(name: string, p: MonitorProcess): void {
    this.unassign(name);
    p.pods.add(name);
    this.#byName.set(name, p);
  }

  /** Records `name` as `p`'s spare placeholder. */
  setSpare(name: string, p: MonitorProcess): void {
    p.spare = name;
    this.#byName.set(name, p);
  }

  /** Forgets `name` (a pod or a spare); a process left with neither is forgotten too. */
  unassign(name: string): void {
    const p = this.#byName.get(name);
    if (!p) return;
    this.#byName.delete(name);
    p.pods.delete(name);
    if (p.spare === name) delete p.spare;
    if (p.pods.size === 0 && p.spare === undefined) this.#procs.delete(p);
  }

  /** Forgets a process and everything it served (it died). */
  drop(p: MonitorProcess): void {
    for (const name of [...p.pods, ...(p.spare ? [p.spare] : [])]) this.#byName.delete(name);
    this.#procs.delete(p);
  }

  /**
   * A live process that can take one more pod, or undefined: the fullest one first, so pods gather on few
   * processes and a spare stays free. Dead processes (full ones too) are forgotten on the way.
   */
  withRoom(except?: MonitorProcess): MonitorProcess | undefined {
    let best: MonitorProcess | undefined;
    for (const p of [...this.#procs]) {
      if (!this.#alive(p)) {
        this.drop(p);
        continue;
      }
      if (p === except || p.pods.size >= this.maxPods) continue;
      if (!best || p.pods.size > best.pods.size) best = p;
    }
    return best;
  }

  /** True while the process lives (by the check given to the constructor). */
  alive(p: MonitorProcess): boolean {
    return this.#alive(p);
  }

  /** Every known process. */
  all(): MonitorProcess[] {
    return [...this.#procs];
  }
}
