/**
 * davit's configuration: built-in defaults < `/etc/davit/davit.toml` < `/etc/davit/davit.conf.d/*.toml` (lexical
 * order) < command-line flags, merged key by key and checked strictly (unknown keys, wrong types and bad values
 * are errors naming the file and the dotted key). This module does the file I/O and re-exports the pure parts.
 *
 * ```ts
 * const { overrides, configFiles } = parseConfigFlags(Deno.args);
 * const { config, sources } = await loadConfig({ ...configFiles, flags: overrides });
 * ```
 * @module
 */
import { type ConfigText, type FlagOverrides, resolveConfig } from "./config_layers.ts";
import { DEFAULT_CONFIG_DIR, DEFAULT_CONFIG_PATH, flagSource } from "./config_flags.ts";
import type { Config } from "./config_schema.ts";
import { ConfigError } from "./config_values.ts";
import { errorMessage } from "./errors.ts";

export type {
  ApiTable,
  Config,
  DavitTable,
  ImageTable,
  MetricsTable,
  NetworkTable,
  RuntimeHandlerTable,
  RuntimeTable,
} from "./config_schema.ts";
export { defaultConfig, defaultRuntimeHandler, RELOADABLE_KEYS } from "./config_schema.ts";
export { ConfigError, parseByteSize, parseDuration } from "./config_values.ts";
export {
  type ConfigChange,
  type ConfigText,
  describeKeys,
  type FlagOverrides,
  type KeyDescription,
  reloadableDiff,
  resolveConfig,
} from "./config_layers.ts";
export {
  CONFIG_FLAGS,
  type ConfigFiles,
  type ConfigFlag,
  DEFAULT_CONFIG_DIR,
  DEFAULT_CONFIG_PATH,
  describeFlags,
  parseConfigFlags,
  type ParsedConfigFlags,
} from "./config_flags.ts";
export { configToToml, type ConfigToTomlOptions } from "./config_toml.ts";

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** The main file; when given it must exist. Default {@link DEFAULT_CONFIG_PATH}, which may be absent. */
  configPath?: string;
  /** The drop-in directory; when given it must exist. Default {@link DEFAULT_CONFIG_DIR}, which may be absent. */
  configDir?: string;
  /** Values by dotted key applied after every file, usually `parseConfigFlags(args).overrides`. */
  flags?: FlagOverrides;
}

/** The effective configuration and the files it was read from. */
export interface LoadedConfig {
  config: Config;
  /** Files actually read, in the order they were applied. */
  sources: string[];
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound;
}

async function readMain(path: string, explicit: boolean): Promise<ConfigText | undefined> {
  try {
    return { source: path, text: await Deno.readTextFile(path) };
  } catch (err) {
    if (isNotFound(err) && !explicit) return undefined;
    const why = isNotFound(err) ? "no such file" : errorMessage(err);
    throw new ConfigError(`${path}: cannot read the configuration file: ${why}`, { cause: err });
  }
}

async function readDropIns(dir: string, explicit: boolean): Promise<ConfigText[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".toml") && !e.isDirectory) names.push(e.name);
    }
  } catch (err) {
    if (isNotFound(err) && !explicit) return [];
    const why = isNotFound(err) ? "no such directory" : errorMessage(err);
    throw new ConfigError(`${dir}: cannot read the drop-in directory: ${why}`, { cause: err });
  }
  // Lexical order by code unit, not locale, so "10-a.toml" < "9-b.toml" as in every conf.d convention.
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const texts: ConfigText[] = [];
  for (const name of names) {
    const path = `${dir.replace(/\/+$/, "")}/${name}`;
    let text: string;
    try {
      // stat follows symlinks: a link to a directory is skipped, a dangling link is an error.
      if ((await Deno.stat(path)).isDirectory) continue;
      text = await Deno.readTextFile(path);
    } catch (err) {
      throw new ConfigError(`${path}: cannot read the drop-in file: ${errorMessage(err)}`, { cause: err });
    }
    texts.push({ source: path, text });
  }
  return texts;
}

/**
 * Reads the main file and the drop-ins and merges them over the defaults, then applies `flags`. A missing default
 * file or directory is fine; a missing file or directory named explicitly is a {@link ConfigError}, as is any
 * invalid TOML, unknown key, wrong type or bad value.
 */
export async function loadConfig(opts: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const texts: ConfigText[] = [];
  const main = await readMain(opts.configPath ?? DEFAULT_CONFIG_PATH, opts.configPath !== undefined);
  if (main) texts.push(main);
  texts.push(...await readDropIns(opts.configDir ?? DEFAULT_CONFIG_DIR, opts.configDir !== undefined));
  const config = resolveConfig(texts, opts.flags ?? {}, flagSource);
  return { config, sources: texts.map((t) => t.source) };
}
