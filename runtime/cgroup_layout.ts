/**
 * Which cgroup hierarchies this host has mounted: cgroup v1 (one hierarchy per controller group), hybrid (v1
 * controllers plus the unified cgroup2 tree at /sys/fs/cgroup/unified, systemd's layout) or v2 only. The parsers
 * are pure (mountinfo and /proc/cgroups given as text); {@link readCgroupLayout} is the thin reader.
 * @module
 */

/** One mount from /proc/self/mountinfo (proc(5)). */
export interface MountInfo {
  id: number;
  parentId: number;
  /** `major:minor` of the filesystem. */
  device: string;
  /** The path inside the filesystem that is mounted (`/` for a whole filesystem). */
  root: string;
  mountPoint: string;
  options: string[];
  /** Optional fields such as `shared:1`, `master:2`. */
  optional: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

/** Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo; malformed lines are skipped. */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (sep < 0 || f.length < sep + 4) continue;
    out.push({
      id: Number(f[0]),
      parentId: Number(f[1]),
      device: f[2] ?? "",
      root: unescape(f[3] ?? ""),
      mountPoint: unescape(f[4] ?? ""),
      options: (f[5] ?? "").split(","),
      optional: f.slice(6, sep),
      fsType: f[sep + 1] ?? "",
      source: unescape(f[sep + 2] ?? ""),
      superOptions: (f[sep + 3] ?? "").split(","),
    });
  }
  return out;
}

/** One line of /proc/cgroups. */
export interface CgroupSubsystem {
  name: string;
  /** Hierarchy ID; 0 when bound to cgroup v2 or not mounted at all. */
  hierarchy: number;
  enabled: boolean;
}

/** Parses /proc/cgroups (header line starting with `#` skipped). */
export function parseProcCgroups(text: string): CgroupSubsystem[] {
  const out: CgroupSubsystem[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [name, hierarchy, , enabled] = line.trim().split(/\s+/);
    if (name === undefined || hierarchy === undefined) continue;
    out.push({ name, hierarchy: Number(hierarchy), enabled: enabled === "1" });
  }
  return out;
}

/** A mounted cgroup v1 hierarchy. */
export interface V1Hierarchy {
  mountPoint: string;
  /** The cgroup mounted there (`/` unless the mount is of a sub-tree, as in some containers). */
  root: string;
  /** Controllers bound to it (`cpu`, `cpuacct`), or a named hierarchy such as `name=systemd`. */
  controllers: string[];
}

/** The host's cgroup layout. */
export interface CgroupLayout {
  kind: "v1" | "hybrid" | "v2";
  /** Mounted v1 hierarchies, one entry per hierarchy (duplicate mounts of one hierarchy dropped). */
  v1: V1Hierarchy[];
  /** The cgroup2 mount, with the controllers its root offers (`cgroup.controllers`, filled by the reader). */
  unified?: { mountPoint: string; root: string; controllers: string[] };
}

const V1_OPTIONS_IGNORED = new Set([
  "rw",
  "ro",
  "noprefix",
  "clone_children",
  "xattr",
  "cpuset_v2_mode",
  "favordynmods",
]);

/**
 * Works out the layout from mountinfo and /proc/cgroups: v1 controllers are the super options of `cgroup`
 * mounts that /proc/cgroups lists as enabled (plus `name=` hierarchies); the cgroup2 mount decides between
 * hybrid (beside v1 mounts) and v2 (alone). When a hierarchy is mounted twice the mount under /sys/fs/cgroup wins.
 * Throws when no cgroup filesystem is mounted.
 */
export function parseCgroupLayout(mountinfo: string, procCgroups: string): CgroupLayout {
  const known = new Map(parseProcCgroups(procCgroups).map((s) => [s.name, s]));
  const mounts = parseMountInfo(mountinfo);
  const preferred = (a: string) => a.startsWith("/sys/fs/cgroup/") || a === "/sys/fs/cgroup";
  const byKey = new Map<string, V1Hierarchy>();
  let unified: CgroupLayout["unified"];
  for (const m of mounts) {
    if (m.fsType === "cgroup2") {
      if (unified === undefined || (!preferred(unified.mountPoint) && preferred(m.mountPoint))) {
        unified = { mountPoint: m.mountPoint, root: m.root, controllers: [] };
      }
      continue;
    }
    if (m.fsType !== "cgroup") continue;
    const controllers = m.superOptions.filter((o) =>
      o.startsWith("name=") || (!V1_OPTIONS_IGNORED.has(o) && known.get(o)?.enabled === true)
    );
    if (controllers.length === 0) continue;
    const key = [...controllers].sort().join(",");
    const seen = byKey.get(key);
    if (seen === undefined || (!preferred(seen.mountPoint) && preferred(m.mountPoint))) {
      byKey.set(key, { mountPoint: m.mountPoint, root: m.root, controllers });
    }
  }
  const v1 = [...byKey.values()].sort((a, b) => a.mountPoint.localeCompare(b.mountPoint));
  if (unified === undefined && v1.length === 0) throw new Error("no cgroup filesystem is mounted");
  const kind = v1.some((h) => h.controllers.some((c) => !c.startsWith("name="))) ? (unified ? "hybrid" : "v1") : "v2";
  const layout: CgroupLayout = { kind, v1: kind === "v2" ? [] : v1 };
  if (unified !== undefined) layout.unified = unified;
  if (kind === "v2" && unified === undefined) throw new Error("only named cgroup v1 hierarchies are mounted");
  return layout;
}

/** The v1 hierarchy that holds `controller`, if mounted. */
export function v1HierarchyOf(layout: CgroupLayout, controller: string): V1Hierarchy | undefined {
  return layout.v1.find((h) => h.controllers.includes(controller));
}

/** Reads the running host's layout (mountinfo, /proc/cgroups, and the unified root's cgroup.controllers). */
export async function readCgroupLayout(): Promise<CgroupLayout> {
  const [mountinfo, procCgroups] = await Promise.all([
    Deno.readTextFile("/proc/self/mountinfo"),
    Deno.readTextFile("/proc/cgroups").catch(() => ""),
  ]);
  const layout = parseCgroupLayout(mountinfo, procCgroups);
  if (layout.unified) {
    const text = await Deno.readTextFile(`${layout.unified.mountPoint}/cgroup.controllers`).catch(() => "");
    layout.unified.controllers = text.split(/\s+/).filter(Boolean);
  }
  return layout;
}
