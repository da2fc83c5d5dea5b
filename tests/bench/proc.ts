// What the benchmarks read from /proc: peak and current RSS, PSS, the processes matching a command line, the
// mounts below a directory (and their removal).
import { MNT, umount2 } from "../../lib/libc.ts";

/** A process as /proc shows it. */
export interface ProcInfo {
  pid: number;
  /** argv, split at NUL. */
  argv: string[];
}

function statusField(pid: number, field: string): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m"));
  return m ? Number(m[1]) : null;
}

/** Peak resident set size (VmHWM) in KiB, or null when the process is gone. */
export function peakRssKiB(pid: number): number | null {
  return statusField(pid, "VmHWM");
}

/** Current resident set size (VmRSS) in KiB, or null when the process is gone. */
export function rssKiB(pid: number): number | null {
  return statusField(pid, "VmRSS");
}

/** Proportional set size in KiB from /proc/PID/smaps_rollup, or null when the process is gone. */
export function pssKiB(pid: number): number | null {
  try {
    const m = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`).match(/^Pss:\s+(\d+) kB$/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Every process whose argv satisfies `pred` (processes that vanish while listed are skipped). */
export function findProcesses(pred: (p: ProcInfo) => boolean): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    let raw: string;
    try {
      raw = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    } catch {
      continue;
    }
    if (raw === "") continue; // kernel threads and zombies
    const p = { pid, argv: raw.replace(/\0$/, "").split("\0") };
    if (pred(p)) out.push(p);
  }
  return out;
}

/** Sends a signal, ignoring a process that is already gone. */
export function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // gone
  }
}

/** Waits until none of `pids` exists any more, or `timeoutMs` passes; answers the ones still there. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids;
  for (;;) {
    left = left.filter((pid) => {
      try {
        // A zombie still has /proc/PID, but its state is Z: it is gone as far as the benchmark cares.
        return !/^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
      } catch {
        return false;
      }
    });
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((r) => setTimeout(r, 20));
  }
}

// mountinfo(5) escapes space, tab, newline and backslash as \ooo.
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir` in this process's mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.replace(/\/+$/, "");
  const points = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter((l) => l !== "")
    .map((l) => unescapeMountPath(l.split(" ")[4] ?? ""))
    .filter((p) => p === prefix || p.startsWith(prefix + "/"));
  // Deepest first, and a path mounted twice is listed twice (each umount removes the top one).
  return points.sort((a, b) => b.split("/").length - a.split("/").length || b.length - a.length);
}

/** Detaches every mount at or below `dir`; answers what could not be unmounted. */
export function unmountUnder(dir: string): string[] {
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return [];
    for (const p of points) {
      try {
        umount2(p, MNT.DETACH);
      } catch {
        // already gone with its parent, or busy: the next round sees
      }
    }
  }
  return mountsUnder(dir);
}

/** Removes a cgroup directory tree (deepest first) in every mounted hierarchy below /sys/fs/cgroup; best effort. */
export function removeCgroup(path: string): void {
  const rel = path.replace(/^\/+/, "");
  if (rel === "" || rel.includes("..")) throw new Error(`refusing to remove cgroup ${JSON.stringify(path)}`);
  const roots = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .filter((l) => / - cgroup2? /.test(l)).map((l) => unescapeMountPath(l.split(" ")[4] ?? ""));
  const rmTree = (dir: string) => {
    try {
      for (const e of Deno.readDirSync(dir)) if (e.isDirectory) rmTree(`${dir}/${e.name}`);
      Deno.removeSync(dir);
    } catch {
      // absent, or still populated
    }
  };
  for (const root of roots) rmTree(`${root}/${rel}`);
}
