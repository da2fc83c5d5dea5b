/**
 * OOM-kill detection from a container's memory cgroup. The monitor reads the cgroup's kill counter when the
 * container is created and again when its init exits; a higher count means the kernel's OOM killer fired inside
 * the container while it ran (the init itself or any other process: the kubelet reports OOMKilled either way).
 *
 * Counters: cgroup v1 `memory.oom_control` line `oom_kill N` (Linux 4.13+); cgroup v2 `memory.events` line
 * `oom_kill N`. The cgroup comes from the bundle's config.json `linux.cgroupsPath`, either a cgroupfs path or the
 * systemd driver's `slice:prefix:name` form.
 * @module
 */

/** Reads a small text file; undefined when it does not exist or cannot be read. */
export type ReadText = (path: string) => string | undefined;

/** The real file reader. */
export const readTextOrUndefined: ReadText = (path) => {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
};

/** `linux.cgroupsPath` of a parsed OCI runtime config, when it is a non-empty string. */
export function cgroupsPathFromConfig(config: unknown): string | undefined {
  if (typeof config !== "object" || config === null) return undefined;
  const linux = (config as { linux?: unknown }).linux;
  if (typeof linux !== "object" || linux === null) return undefined;
  const p = (linux as { cgroupsPath?: unknown }).cgroupsPath;
  return typeof p === "string" && p !== "" ? p : undefined;
}

/**
 * Expands a systemd slice name into its cgroup path, the way systemd nests them: `a-b.slice` lives at
 * `/a.slice/a-b.slice`; `-.slice` is the root.
 */
export function expandSlice(slice: string): string {
  if (!slice.endsWith(".slice") || slice.includes("/")) {
    throw new TypeError(`bad systemd slice ${JSON.stringify(slice)}`);
  }
  const name = slice.slice(0, -".slice".length);
  if (name === "-") return "";
  if (name === "" || name.startsWith("-") || name.endsWith("-") || name.includes("--")) {
    throw new TypeError(`bad systemd slice ${JSON.stringify(slice)}`);
  }
  let path = "";
  let prefix = "";
  for (const part of name.split("-")) {
    prefix = prefix === "" ? part : `${prefix}-${part}`;
    path += `/${prefix}.slice`;
  }
  return path;
}

/**
 * The cgroup path (relative to a hierarchy's root, starting with `/`) that a runtime derives from
 * `linux.cgroupsPath`: a cgroupfs path as is (a relative one taken from the root), or for the systemd driver's
 * `slice:prefix:name`, the unit `prefix-name.scope` (or the slice `name` itself) under the expanded slice
 * (`system.slice` when empty).
 */
export function resolveCgroupPath(cgroupsPath: string): string {
  const fields = cgroupsPath.split(":");
  if (fields.length === 3 && !cgroupsPath.startsWith("/")) {
    const [slice, prefix, name] = fields as [string, string, string];
    const parent = expandSlice(slice === "" ? "system.slice" : slice);
    const unit = name.endsWith(".slice") ? name : prefix === "" ? `${name}.scope` : `${prefix}-${name}.scope`;
    return `${parent}/${unit}`;
  }
  const clean = cgroupsPath.split("/").filter((s) => s !== "" && s !== ".");
  if (clean.includes("..")) throw new TypeError(`cgroupsPath ${JSON.stringify(cgroupsPath)} contains ".."`);
  return "/" + clean.join("/");
}

/** Where a cgroup's OOM-kill counter may live, most specific layout first. */
export interface CounterFile {
  path: string;
  version: 1 | 2;
}

/**
 * The candidate counter files for cgroup `path` under the cgroup mount `root`: v1 memory controller, pure v2, and
 * the v2 hierarchy of a hybrid layout at `<root>/unified`.
 */
export function oomCounterFiles(path: string, root = "/sys/fs/cgroup"): CounterFile[] {
  return [
    { path: `${root}/memory${path}/memory.oom_control`, version: 1 },
    { path: `${root}${path}/memory.events`, version: 2 },
    { path: `${root}/unified${path}/memory.events`, version: 2 },
  ];
}

/** The `oom_kill` counter from the text of `memory.oom_control` (v1) or `memory.events` (v2). */
export function parseOomKillCount(text: string): number | undefined {
  for (const line of text.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === "oom_kill" && value !== undefined && /^\d+$/.test(value)) return Number(value);
  }
  return undefined;
}

/** A cgroup's OOM-kill counter, from the first candidate file that exists and has one. */
export interface OomCounter {
  /** The file read. */
  file: string;
  /** Reads the current count (undefined once the cgroup is gone). */
  read(): number | undefined;
}

/** Finds the counter for `cgroupsPath` (from config.json); undefined when no layout has it. */
export function findOomCounter(
  cgroupsPath: string,
  opts: { root?: string; readText?: ReadText } = {},
): OomCounter | undefined {
  const readText = opts.readText ?? readTextOrUndefined;
  for (const c of oomCounterFiles(resolveCgroupPath(cgroupsPath), opts.root)) {
    const text = readText(c.path);
    if (text === undefined || parseOomKillCount(text) === undefined) continue;
    return {
      file: c.path,
      read: () => {
        const t = readText(c.path);
        return t === undefined ? undefined : parseOomKillCount(t);
      },
    };
  }
  return undefined;
}
