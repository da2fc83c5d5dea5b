/**
 * CNI network configuration parsing and validation (SPEC.md section 1): pure functions from file text to a
 * network configuration list. A single-plugin `.conf` is wrapped into a list of one, as runtimes do.
 * @module
 */
import { compareVersions, isSupportedVersion, SUPPORTED_VERSIONS } from "./cni_version.ts";

/** One plugin configuration object; unknown keys are kept and passed through to the plugin. */
export interface PluginConf {
  type: string;
  /** Capability names this plugin wants in `runtimeConfig` (SPEC.md "Deriving runtimeConfig"). */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** A validated network configuration list. */
export interface NetworkConfigList {
  name: string;
  /** The versions the configuration declares that davit supports, highest first; never empty. */
  versions: string[];
  disableCheck: boolean;
  disableGC: boolean;
  plugins: PluginConf[];
  /** The list object as executed: the file's object, or a single plugin config wrapped into `plugins`. */
  raw: Record<string, unknown>;
}

/** Outcome of parsing one configuration. */
export type ParsedNetworkConfig = { ok: true; config: NetworkConfigList } | { ok: false; reason: string };

/** File name endings that hold network configurations (conventional CNI loader behaviour). */
export const CONFIG_EXTENSIONS = [".conflist", ".conf", ".json"] as const;

/** SPEC.md: network names and container IDs start alphanumeric, then alphanumerics, `_`, `.`, `-`. */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The configuration file names among `names`, in the lexical order they are tried. */
export function configFileNames(names: readonly string[]): string[] {
  return names.filter((n) => !n.startsWith(".") && CONFIG_EXTENSIONS.some((x) => n.endsWith(x)))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkPlugin(p: unknown, where: string): string | undefined {
  if (!isObject(p)) return `${where} is not a JSON object`;
  if (typeof p.type !== "string" || p.type === "") return `${where} has no "type"`;
  if (/[/\\]/.test(p.type) || p.type === "." || p.type === "..") {
    return `${where} "type" ${JSON.stringify(p.type)} is not a file name`;
  }
  if (p.capabilities !== undefined) {
    if (!isObject(p.capabilities) || Object.values(p.capabilities).some((v) => typeof v !== "boolean")) {
      return `${where} "capabilities" must map names to booleans`;
    }
  }
  return undefined;
}

function optionalBool(conf: Record<string, unknown>, key: string): boolean | string {
  const v = conf[key];
  if (v === undefined) return false;
  if (typeof v === "boolean") return v;
  return `"${key}" must be a boolean, got ${JSON.stringify(v)}`;
}

/**
 * Validates a parsed configuration object: a list (`plugins`) or a single plugin config (`type`), whichever the
 * content is, whatever the file's extension.
 */
export function parseNetworkConfigObject(json: unknown): ParsedNetworkConfig {
  if (!isObject(json)) return { ok: false, reason: "not a JSON object" };
  if (typeof json.name !== "string" || json.name === "") return { ok: false, reason: 'missing "name"' };
  if (!NAME_PATTERN.test(json.name)) {
    return { ok: false, reason: `network name ${JSON.stringify(json.name)} has characters outside [a-zA-Z0-9_.-]` };
  }
  const declared: string[] = [];
  if (json.cniVersion !== undefined) {
    if (typeof json.cniVersion !== "string") return { ok: false, reason: '"cniVersion" must be a string' };
    declared.push(json.cniVersion);
  }
  if (json.cniVersions !== undefined) {
    if (!Array.isArray(json.cniVersions) || json.cniVersions.some((v) => typeof v !== "string")) {
      return { ok: false, reason: '"cniVersions" must be a list of strings' };
    }
    declared.push(...(json.cniVersions as string[]));
  }
  if (declared.length === 0) return { ok: false, reason: 'missing "cniVersion"' };
  const versions = [...new Set(declared.filter(isSupportedVersion))].sort((a, b) => compareVersions(b, a));
  if (versions.length === 0) {
    return {
      ok: false,
      reason: `CNI version ${declared.join(", ")} is not supported (supported: ${SUPPORTED_VERSIONS.join(", ")})`,
    };
  }
  const disableCheck = optionalBool(json, "disableCheck");
  if (typeof disableCheck === "string") return { ok: false, reason: disableCheck };
  const disableGC = optionalBool(json, "disableGC");
  if (typeof disableGC === "string") return { ok: false, reason: disableGC };

  let raw: Record<string, unknown>;
  if (json.plugins !== undefined) {
    if (!Array.isArray(json.plugins)) return { ok: false, reason: '"plugins" is not a list' };
    if (json.plugins.length === 0) return { ok: false, reason: '"plugins" is empty' };
    for (const [i, p] of json.plugins.entries()) {
      const bad = checkPlugin(p, `plugins[${i}]`);
      if (bad) return { ok: false, reason: bad };
    }
    raw = json;
  } else if (json.type !== undefined) {
    const bad = checkPlugin(json, "the plugin config");
    if (bad) return { ok: false, reason: bad };
    raw = { cniVersion: json.cniVersion, name: json.name, plugins: [json] };
    if (json.cniVersions !== undefined) raw.cniVersions = json.cniVersions;
    if (json.disableCheck !== undefined) raw.disableCheck = json.disableCheck;
  } else {
    return { ok: false, reason: 'neither "plugins" nor "type"' };
  }
  return {
    ok: true,
    config: {
      name: json.name,
      versions,
      disableCheck,
      disableGC,
      plugins: raw.plugins as PluginConf[],
      raw,
    },
  };
}

/** Parses configuration file text (JSON). */
export function parseNetworkConfig(text: string): ParsedNetworkConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
  return parseNetworkConfigObject(json);
}

/**
 * Kept for callers of the first version of this module: checks one parsed config file's shape and returns the
 * network name and its highest supported version, or a reason.
 */
export function checkNetworkConfig(json: unknown): { name: string; cniVersion: string } | { reason: string } {
  const parsed = parseNetworkConfigObject(json);
  if (!parsed.ok) return { reason: parsed.reason };
  return { name: parsed.config.name, cniVersion: parsed.config.versions[0]! };
}
