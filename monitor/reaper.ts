/**
 * The subreaper's chores. Container inits are reparented to the monitor (PR_SET_CHILD_SUBREAPER) when their
 * `runc create` exits; each is waited for by pid (lib/libc.ts waitpidBlocking). Other processes can be
 * reparented too: those of a container sharing the host's pid namespace whose parent died. They must be reaped
 * or they stay zombies, but never with waitpid(-1), which would also collect the exits of the children Deno
 * spawned itself (the runtime) before Deno can. So on SIGCHLD the monitor lists its children and reaps only the
 * zombies it does not know: neither a tracked container init nor a process it spawned.
 * @module
 */
import { isErrno, waitpidNoHang } from "../lib/libc.ts";

/** Reads a file's text, or undefined when it cannot be read. */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
};

/** The pids listed in /proc/self/task/<tid>/children files (children are attached to the thread that forked or adopted them). */
export function childPids(read: ReadText = readText, tasks?: string[]): number[] {
  const tids = tasks ?? [...Deno.readDirSync("/proc/self/task")].map((e) => e.name);
  const pids = new Set<number>();
  for (const tid of tids) {
    const text = read(`/proc/self/task/${tid}/children`) ?? "";
    for (const word of text.split(/\s+/)) if (/^\d+$/.test(word)) pids.add(Number(word));
  }
  return [...pids];
}

/** The state letter of /proc/<pid>/stat (`R`, `S`, `Z`, ...); the command name may hold spaces and parentheses. */
export function parseStatState(stat: string): string | undefined {
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  return stat.slice(close + 2, close + 3) || undefined;
}

/**
 * Reaps zombie children for which `known(pid)` is false; returns the reaped pids. A pid that is already gone
 * (ECHILD) is skipped.
 */
export function reapUnknownZombies(known: (pid: number) => boolean, read: ReadText = readText): number[] {
  const reaped: number[] = [];
  for (const pid of childPids(read)) {
    if (known(pid)) continue;
    if (parseStatState(read(`/proc/${pid}/stat`) ?? "") !== "Z") continue;
    try {
      if (waitpidNoHang(pid) !== undefined) reaped.push(pid);
    } catch (err) {
      if (!isErrno(err, "ECHILD")) throw err;
    }
  }
  return reaped;
}
