/**
 * Finding the network configuration in the network directory: the first valid file in lexical order (or the first
 * valid one naming the configured default network), where valid also means every plugin binary it needs exists in
 * the plugin directories. Files that fail are skipped with a reason.
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { configFileNames, type NetworkConfigList, parseNetworkConfig } from "./cni_config.ts";
import { type CniExec, DenoCniExec } from "./cni_exec.ts";

/** A skipped file and why. */
export interface SkippedConfig {
  path: string;
  reason: string;
}

/** The selected network configuration, or why there is none. */
export type NetworkConfigLookup =
  | {
    ok: true;
    path: string;
    name: string;
    /** The highest version the file declares that davit supports. */
    cniVersion: string;
    config: NetworkConfigList;
    skipped: SkippedConfig[];
  }
  | { ok: false; reason: string; skipped: SkippedConfig[] };

/** Options for {@link findNetworkConfig}. */
export interface FindNetworkConfigOptions {
  /** When given, a file is valid only if each of its plugins is found in these directories. */
  pluginDirs?: readonly string[];
  /** Select the first valid file whose network has this name ("" = the first valid file). */
  defaultNetwork?: string;
  exec?: CniExec;
  log?: Logger;
}

function summary(skipped: SkippedConfig[]): string {
  if (skipped.length === 0) return "";
  return ` (skipped: ${skipped.map((s) => `${s.path}: ${s.reason}`).join("; ")})`;
}

/** Looks through `dir` for the network configuration to use. */
export async function findNetworkConfig(
  dir: string,
  opts: FindNetworkConfigOptions = {},
): Promise<NetworkConfigLookup> {
  const exec = opts.exec ?? new DenoCniExec();
  const base = dir.replace(/(.)\/+$/, "$1");
  const entries: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile || e.isSymlink) entries.push(e.name);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "does not exist" : `cannot be read (${(err as Error).message})`;
    return { ok: false, reason: `no CNI network configuration: directory ${base} ${why}`, skipped: [] };
  }
  const skipped: SkippedConfig[] = [];
  const skip = (path: string, reason: string) => {
    skipped.push({ path, reason });
    opts.log?.warn("skipping CNI network configuration file", { path, reason });
  };
  for (const name of configFileNames(entries)) {
    const path = `${base}/${name}`;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      skip(path, `cannot be read: ${(err as Error).message}`);
      continue;
    }
    const parsed = parseNetworkConfig(text);
    if (!parsed.ok) {
      skip(path, parsed.reason);
      continue;
    }
    const config = parsed.config;
    if (opts.defaultNetwork && config.name !== opts.defaultNetwork) {
      skipped.push({ path, reason: `network ${JSON.stringify(config.name)} is not the default network` });
      continue;
    }
    if (opts.pluginDirs) {
      let missing: string | undefined;
      for (const type of config.plugins.map((p) => p.type)) {
        if (!(await exec.findPlugin(type, opts.pluginDirs))) {
          missing = type;
          break;
        }
      }
      if (missing) {
        skip(path, `plugin ${JSON.stringify(missing)} not found in ${opts.pluginDirs.join(", ")}`);
        continue;
      }
    }
    return { ok: true, path, name: config.name, cniVersion: config.versions[0]!, config, skipped };
  }
  const wanted = opts.defaultNetwork ? `for network ${JSON.stringify(opts.defaultNetwork)} ` : "";
  return { ok: false, reason: `no valid CNI network configuration ${wanted}in ${base}${summary(skipped)}`, skipped };
}

/** Checks that the plugins needed whatever the configuration exist; returns a reason when one is missing. */
export async function checkRequiredPlugins(
  required: readonly string[],
  pluginDirs: readonly string[],
  exec: CniExec,
): Promise<string | undefined> {
  for (const type of required) {
    if (!(await exec.findPlugin(type, pluginDirs))) {
      return `CNI plugin ${JSON.stringify(type)} not found in ${pluginDirs.join(", ")}`;
    }
  }
  return undefined;
}
