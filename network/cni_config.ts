/**
 * Finding the CNI network configuration: the first valid file in lexical order in the network directory, as the
 * CNI spec's conventions and CRI-O do. Readiness of the pod network follows whether one exists.
 * @module
 */

/** A usable network configuration file, or why there is none. */
export type NetworkConfigLookup =
  | { ok: true; path: string; name: string; cniVersion: string }
  | { ok: false; reason: string; skipped: { path: string; reason: string }[] };

const EXTENSIONS = [".conflist", ".conf", ".json"];

/** Checks one parsed config file's shape; returns the network name and version or a reason. */
export function checkNetworkConfig(json: unknown): { name: string; cniVersion: string } | { reason: string } {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return { reason: "not a JSON object" };
  const conf = json as Record<string, unknown>;
  if (typeof conf.name !== "string" || conf.name === "") return { reason: 'missing "name"' };
  const version = typeof conf.cniVersion === "string" ? conf.cniVersion : "";
  if (Array.isArray(conf.plugins)) {
    if (conf.plugins.length === 0) return { reason: '"plugins" is empty' };
    for (const [i, p] of conf.plugins.entries()) {
      if (typeof p !== "object" || p === null || typeof (p as Record<string, unknown>).type !== "string") {
        return { reason: `plugins[${i}] has no "type"` };
      }
    }
  } else if (typeof conf.type !== "string") {
    return { reason: 'neither "plugins" nor "type"' };
  }
  return { name: conf.name, cniVersion: version };
}

/** Looks through `dir` for the first valid network configuration. */
export async function findNetworkConfig(dir: string): Promise<NetworkConfigLookup> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if ((e.isFile || e.isSymlink) && EXTENSIONS.some((x) => e.name.endsWith(x))) names.push(e.name);
    }
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "does not exist" : `cannot be read (${(err as Error).message})`;
    return { ok: false, reason: `no CNI network configuration: directory ${dir} ${why}`, skipped: [] };
  }
  names.sort();
  const skipped: { path: string; reason: string }[] = [];
  for (const n of names) {
    const path = `${dir.replace(/\/+$/, "")}/${n}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(await Deno.readTextFile(path));
    } catch (err) {
      skipped.push({ path, reason: (err as Error).message });
      continue;
    }
    const checked = checkNetworkConfig(parsed);
    if ("reason" in checked) skipped.push({ path, reason: checked.reason });
    else return { ok: true, path, ...checked };
  }
  return { ok: false, reason: `no valid CNI network configuration in ${dir}`, skipped };
}
