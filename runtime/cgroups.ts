/**
 * Pod cgroups with the cgroupfs driver, on cgroup v1, hybrid and v2 hosts: creation in every hierarchy (cpuset
 * filled from the parent on v1, controllers delegated through cgroup.subtree_control on v2), leaf-first removal
 * that waits briefly for tasks to leave, and usage statistics.
 *
 * Path convention (cgroupfs): a pod's own cgroup (its monitor, pod-level limits) is
 * `<cgroup_parent>/davit-pod-<podId>`, and each container's is `<cgroup_parent>/davit-<containerId>`, a sibling,
 * so a kubelet-made cgroup_parent (the pod's cgroup) bounds both. Paths are absolute cgroup paths joined to each
 * hierarchy's mount point. On hybrid hosts the v1 hierarchies carry the controllers; the unified tree gets the
 * same directories for process tracking only (no controllers are enabled there).
 * @module
 */
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { AT, isErrno, unlinkat } from "../lib/libc.ts";
import { type CgroupLayout, readCgroupLayout } from "./cgroup_layout.ts";

/** Who creates cgroups, as in `cgroup_manager`. */
export type CgroupManager = "cgroupfs" | "systemd";

/** Pod-level limits, as plain numbers (unset fields are left as the kernel made them). */
export interface CgroupResources {
  /** cgroup v1 cpu.shares (2..262144); converted to cpu.weight on v2. */
  cpuShares?: number;
  /** CFS quota and period in microseconds; a quota of -1 or 0 means unlimited. */
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  memoryLimitBytes?: number;
  /** Maximum number of tasks; -1 means unlimited. */
  pidsLimit?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
}

/** One directory a cgroup path maps to. */
export interface CgroupDir {
  /** Absolute directory. */
  dir: string;
  version: 1 | 2;
  /** The controllers of that hierarchy (v1), or of the unified tree (v2). */
  controllers: string[];
  /** True for the hierarchy whose limits are written (all v1 ones, the unified one only on v2 hosts). */
  limits: boolean;
}

/** Usage read from a cgroup; fields are absent when the host lacks the file. */
export interface CgroupStats {
  /** Total CPU time consumed, nanoseconds. */
  cpuUsageNs?: bigint;
  memoryUsageBytes?: number;
  /** Usage minus inactive file pages (what the kubelet evicts on). */
  memoryWorkingSetBytes?: number;
  /** Anonymous memory (v1 total_rss, v2 anon). */
  memoryRssBytes?: number;
  pidsCurrent?: number;
}

const SEGMENT = /^[A-Za-z0-9_.:@+-]+$/;

/** Validates and normalises an absolute cgroup path (`/a/b`); `""` and `/` are the root. */
export function normalizeCgroupPath(path: string): string {
  const parts = path.split("/").filter((p) => p !== "");
  for (const p of parts) {
    if (p === "." || p === ".." || !SEGMENT.test(p)) {
      throw new InvalidArgument(`Invalid cgroup path ${JSON.stringify(path)}: bad component ${JSON.stringify(p)}`);
    }
  }
  return "/" + parts.join("/");
}

/** The pod's own cgroup: `<parent>/davit-pod-<podId>`. */
export function podCgroupPath(parent: string, podId: string): string {
  return normalizeCgroupPath(`${parent}/davit-pod-${podId}`);
}

/**
 * The `linux.cgroupsPath` of a container: `<parent>/davit-<id>` for cgroupfs; `<slice>:davit:<id>` for systemd
 * (the runc systemd form `slice:prefix:name`, parent defaulting to `system.slice`).
 */
export function containerCgroupPath(parent: string, containerId: string, manager: CgroupManager = "cgroupfs"): string {
  if (manager === "systemd") return `${parent === "" ? "system.slice" : parent}:davit:${containerId}`;
  return normalizeCgroupPath(`${parent}/davit-${containerId}`);
}

/**
 * Refuses a cgroup manager the host cannot serve: "systemd" needs systemd as init (sd_booted(3): the directory
 * /run/systemd/system exists). Meant for daemon start.
 */
export async function checkCgroupManager(manager: CgroupManager, opts: { systemdDir?: string } = {}): Promise<void> {
  if (manager !== "systemd") return;
  const dir = opts.systemdDir ?? "/run/systemd/system";
  const booted = await Deno.stat(dir).then((s) => s.isDirectory, () => false);
  if (!booted) {
    throw new FailedPrecondition(
      'cgroup_manager = "systemd" needs systemd as init, which is not running; use "cgroupfs"',
    );
  }
}

/** Where `path` lives in each hierarchy of `layout` (pure). */
export function cgroupDirs(layout: CgroupLayout, path: string): CgroupDir[] {
  const p = normalizeCgroupPath(path);
  const join = (mount: string) => p === "/" ? mount : `${mount}${p}`;
  const out: CgroupDir[] = layout.v1.map((h) => ({
    dir: join(h.mountPoint),
    version: 1 as const,
    controllers: h.controllers,
    limits: true,
  }));
  if (layout.unified) {
    out.push({
      dir: join(layout.unified.mountPoint),
      version: 2,
      controllers: layout.unified.controllers,
      limits: layout.kind === "v2",
    });
  }
  return out;
}

/** runc's conversion of cpu.shares (2..262144) to cpu.weight (1..10000). */
export function sharesToWeight(shares: number): number {
  if (shares <= 0) return 0;
  return Math.floor(1 + ((Math.min(Math.max(shares, 2), 262144) - 2) * 9999) / 262142);
}

/** One limit file write. */
export interface LimitWrite {
  /** The controller whose hierarchy holds the file (v1), or "unified". */
  controller: string;
  file: string;
  value: string;
}

/** The files `resources` become on a v1 or v2 hierarchy, in the order they must be written (pure). */
export function planLimitWrites(version: 1 | 2, r: CgroupResources): LimitWrite[] {
  const out: LimitWrite[] = [];
  const unlimitedQuota = r.cpuQuotaUs !== undefined && r.cpuQuotaUs <= 0;
  if (version === 1) {
    if (r.cpuShares !== undefined) out.push({ controller: "cpu", file: "cpu.shares", value: String(r.cpuShares) });
    // The period goes first: a quota is checked against the period in force.
    if (r.cpuPeriodUs !== undefined) {
      out.push({ controller: "cpu", file: "cpu.cfs_period_us", value: String(r.cpuPeriodUs) });
    }
    if (r.cpuQuotaUs !== undefined) {
      out.push({ controller: "cpu", file: "cpu.cfs_quota_us", value: unlimitedQuota ? "-1" : String(r.cpuQuotaUs) });
    }
    if (r.memoryLimitBytes !== undefined) {
      out.push({ controller: "memory", file: "memory.limit_in_bytes", value: String(r.memoryLimitBytes) });
    }
  } else {
    if (r.cpuShares !== undefined) {
      out.push({ controller: "unified", file: "cpu.weight", value: String(sharesToWeight(r.cpuShares)) });
    }
    if (r.cpuQuotaUs !== undefined || r.cpuPeriodUs !== undefined) {
      const quota = r.cpuQuotaUs === undefined || unlimitedQuota ? "max" : String(r.cpuQuotaUs);
      out.push({ controller: "unified", file: "cpu.max", value: `${quota} ${r.cpuPeriodUs ?? 100000}` });
    }
    if (r.memoryLimitBytes !== undefined) {
      out.push({ controller: "unified", file: "memory.max", value: String(r.memoryLimitBytes) });
    }
  }
  const pids = version === 1 ? "pids" : "unified";
  const cpuset = version === 1 ? "cpuset" : "unified";
  if (r.pidsLimit !== undefined) {
    out.push({ controller: pids, file: "pids.max", value: r.pidsLimit < 0 ? "max" : String(r.pidsLimit) });
  }
  if (r.cpusetCpus !== undefined) out.push({ controller: cpuset, file: "cpuset.cpus", value: r.cpusetCpus });
  if (r.cpusetMems !== undefined) out.push({ controller: cpuset, file: "cpuset.mems", value: r.cpusetMems });
  return out;
}

/** Controllers delegated to children on v2 when the parent offers them. */
const V2_CONTROLLERS = ["cpu", "cpuset", "io", "memory", "pids", "hugetlb"];

/**
 * What to write to a v2 cgroup.subtree_control so children get the wanted controllers: `+c` for each wanted one
 * the cgroup offers (its cgroup.controllers) and has not yet enabled; "" when nothing is missing (pure).
 */
export function subtreeControlWrite(available: string[], enabled: string[], wanted = V2_CONTROLLERS): string {
  return wanted.filter((c) => available.includes(c) && !enabled.includes(c)).map((c) => `+${c}`).join(" ");
}

async function readTrim(file: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(file)).trim();
  } catch {
    return undefined;
  }
}

async function writeCgroupFile(file: string, value: string): Promise<void> {
  try {
    await Deno.writeTextFile(file, value, { create: false });
  } catch (err) {
    throw new FailedPrecondition(`Cannot write ${JSON.stringify(value)} to ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** v1 cpuset: a new cgroup has empty cpus/mems and refuses tasks until they are set; copy them from its parent. */
async function fillCpuset(parent: string, dir: string): Promise<void> {
  for (const f of ["cpuset.cpus", "cpuset.mems"]) {
    if ((await readTrim(`${dir}/${f}`)) === "") {
      await writeCgroupFile(`${dir}/${f}`, (await readTrim(`${parent}/${f}`)) ?? "");
    }
  }
}

async function enableSubtree(dir: string): Promise<void> {
  const available = ((await readTrim(`${dir}/cgroup.controllers`)) ?? "").split(/\s+/).filter(Boolean);
  const enabled = ((await readTrim(`${dir}/cgroup.subtree_control`)) ?? "").split(/\s+/).filter(Boolean);
  const write = subtreeControlWrite(available, enabled);
  if (write !== "") await writeCgroupFile(`${dir}/cgroup.subtree_control`, write);
}

/**
 * Creates the cgroup `path` (and missing ancestors) in every hierarchy and applies `resources`; an existing
 * cgroup is reused. Returns the normalised path.
 */
export async function createCgroup(
  path: string,
  opts: { resources?: CgroupResources; layout?: CgroupLayout } = {},
): Promise<string> {
  const p = normalizeCgroupPath(path);
  if (p === "/") throw new InvalidArgument("Cannot create the root cgroup");
  const layout = opts.layout ?? await readCgroupLayout();
  const segments = p.split("/").filter(Boolean);
  for (const h of cgroupDirs(layout, "/")) {
    let cur = h.dir;
    for (const seg of segments) {
      const parent = cur;
      // On v2 a cgroup's children only get the controllers its subtree_control enables (cgroup-v2.rst,
      // "Enabling and Disabling"); the pod's own cgroup holds processes, so only its ancestors delegate.
      if (h.version === 2 && h.limits) await enableSubtree(parent);
      cur = `${parent}/${seg}`;
      await Deno.mkdir(cur).catch((err) => {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      });
      if (h.version === 1 && h.controllers.includes("cpuset")) await fillCpuset(parent, cur);
    }
    if (opts.resources && h.limits) {
      for (const w of planLimitWrites(h.version, opts.resources)) {
        if (h.version === 1 && !h.controllers.includes(w.controller)) continue;
        await writeCgroupFile(`${cur}/${w.file}`, w.value);
      }
    }
  }
  return p;
}

/** Creates the pod's cgroup `<parent>/davit-pod-<podId>` (see the module comment); returns its path. */
export function createPodCgroup(
  parent: string,
  podId: string,
  opts: { resources?: CgroupResources; layout?: CgroupLayout } = {},
): Promise<string> {
  return createCgroup(podCgroupPath(parent, podId), opts);
}

/** Moves `pid` into the cgroup in every hierarchy (cgroup.procs). */
export async function addProcessToCgroup(
  path: string,
  pid: number,
  opts: { layout?: CgroupLayout } = {},
): Promise<void> {
  const layout = opts.layout ?? await readCgroupLayout();
  for (const h of cgroupDirs(layout, path)) await writeCgroupFile(`${h.dir}/cgroup.procs`, String(pid));
}

async function subdirsPostOrder(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) out.push(...await subdirsPostOrder(`${dir}/${e.name}`));
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return out;
    throw err;
  }
  out.push(dir);
  return out;
}

/**
 * Removes the cgroup `path` and its descendants from every hierarchy, leaves first. A cgroup whose tasks are
 * still leaving (EBUSY) is retried until `timeoutMs` (default 2s), then {@link FailedPrecondition} names the
 * PIDs left. Missing directories are fine, so the call is idempotent.
 */
export async function removeCgroup(
  path: string,
  opts: { layout?: CgroupLayout; timeoutMs?: number } = {},
): Promise<void> {
  const p = normalizeCgroupPath(path);
  if (p === "/") throw new InvalidArgument("Cannot remove the root cgroup");
  const layout = opts.layout ?? await readCgroupLayout();
  const deadline = Date.now() + (opts.timeoutMs ?? 2000);
  for (const h of cgroupDirs(layout, p)) {
    for (const dir of await subdirsPostOrder(h.dir)) {
      for (;;) {
        try {
          unlinkat(AT.FDCWD, dir, AT.REMOVEDIR);
          break;
        } catch (err) {
          if (isErrno(err, "ENOENT")) break;
          if (!isErrno(err, "EBUSY") || Date.now() > deadline) {
            const procs = ((await readTrim(`${dir}/cgroup.procs`)) ?? "").split("\n").filter(Boolean);
            const why = procs.length > 0 ? `processes ${procs.join(", ")} are still in it` : (err as Error).message;
            throw new FailedPrecondition(`Cannot remove cgroup ${dir}: ${why}`, { cause: err });
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  }
}

/** Parses a flat-keyed cgroup file (`key value` lines, memory.stat, cpu.stat) into bigints (pure). */
export function parseFlatKeyed(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === undefined || v === undefined || !/^\d+$/.test(v)) continue;
    out.set(k, BigInt(v));
  }
  return out;
}

/** The statistics files read from each version; absent keys are files the host lacks. */
export interface StatFiles {
  v1?: { "cpuacct.usage"?: string; "memory.usage_in_bytes"?: string; "memory.stat"?: string; "pids.current"?: string };
  v2?: { "cpu.stat"?: string; "memory.current"?: string; "memory.stat"?: string; "pids.current"?: string };
}

const num = (v: bigint | undefined): number | undefined => v === undefined ? undefined : Number(v);
const int = (s: string | undefined): bigint | undefined =>
  s !== undefined && /^\d+$/.test(s.trim()) ? BigInt(s.trim()) : undefined;

/** Computes {@link CgroupStats} from file contents, v1 values first and v2 ones filling gaps (pure). */
export function statsFromFiles(files: StatFiles): CgroupStats {
  const v1 = files.v1 ?? {};
  const v2 = files.v2 ?? {};
  const v1mem = parseFlatKeyed(v1["memory.stat"] ?? "");
  const v2mem = parseFlatKeyed(v2["memory.stat"] ?? "");
  const v2cpu = parseFlatKeyed(v2["cpu.stat"] ?? "");
  const out: CgroupStats = {};
  const usec = v2cpu.get("usage_usec");
  const cpu = int(v1["cpuacct.usage"]) ?? (usec === undefined ? undefined : usec * 1000n);
  if (cpu !== undefined) out.cpuUsageNs = cpu;
  let usage = int(v1["memory.usage_in_bytes"]);
  let inactive = v1mem.get("total_inactive_file");
  let rss = v1mem.get("total_rss");
  if (usage === undefined) {
    usage = int(v2["memory.current"]);
    inactive = v2mem.get("inactive_file");
    rss = v2mem.get("anon");
  }
  if (usage !== undefined) {
    out.memoryUsageBytes = Number(usage);
    const ws = inactive !== undefined && inactive < usage ? usage - inactive : inactive === undefined ? usage : 0n;
    out.memoryWorkingSetBytes = Number(ws);
  }
  const r = num(rss);
  if (r !== undefined) out.memoryRssBytes = r;
  const pids = num(int(v1["pids.current"]) ?? int(v2["pids.current"]));
  if (pids !== undefined) out.pidsCurrent = pids;
  return out;
}

/** Reads the cgroup's usage from whichever hierarchies hold it. */
export async function cgroupStats(path: string, opts: { layout?: CgroupLayout } = {}): Promise<CgroupStats> {
  const layout = opts.layout ?? await readCgroupLayout();
  const files: StatFiles = {};
  const dirs = cgroupDirs(layout, path);
  const v1Dir = (c: string) => dirs.find((d) => d.version === 1 && d.controllers.includes(c))?.dir;
  const set = async <T extends Record<string, string | undefined>>(target: T, key: keyof T & string, dir?: string) => {
    if (dir === undefined) return;
    const text = await Deno.readTextFile(`${dir}/${key}`).catch(() => undefined);
    if (text !== undefined) (target as Record<string, string>)[key] = text;
  };
  if (layout.v1.length > 0) {
    const v1: NonNullable<StatFiles["v1"]> = {};
    await set(v1, "cpuacct.usage", v1Dir("cpuacct"));
    await set(v1, "memory.usage_in_bytes", v1Dir("memory"));
    await set(v1, "memory.stat", v1Dir("memory"));
    await set(v1, "pids.current", v1Dir("pids"));
    files.v1 = v1;
  }
  const u = dirs.find((d) => d.version === 2)?.dir;
  if (u !== undefined) {
    const v2: NonNullable<StatFiles["v2"]> = {};
    for (const f of ["cpu.stat", "memory.current", "memory.stat", "pids.current"] as const) await set(v2, f, u);
    files.v2 = v2;
  }
  return statsFromFiles(files);
}
