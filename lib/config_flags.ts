/**
 * Command-line flags that override configuration keys (`--flag value` or `--flag=value`), plus `--config` and
 * `--config-dir` choosing the files. Flag values are checked with the same rules as file values.
 * @module
 */
import { defaultConfig } from "./config_schema.ts";
import { type FlagOverrides, getPath, overridesLayer } from "./config_layers.ts";
import { InvalidArgument } from "./errors.ts";

/** The default configuration file. */
export const DEFAULT_CONFIG_PATH = "/etc/davit/davit.toml";
/** The default drop-in directory. */
export const DEFAULT_CONFIG_DIR = "/etc/davit/davit.conf.d";

/** One configuration flag. */
export interface ConfigFlag {
  /** The flag, with its dashes: `--listen`. */
  flag: string;
  /** The dotted key it overrides; absent for `--config` and `--config-dir`. */
  key?: string;
  /** Placeholder for the value in help text. */
  value: string;
  /** How the command-line string becomes a value: `list` splits on commas; `boolean` may stand alone (true). */
  kind: "string" | "integer" | "boolean" | "list";
  help: string;
}

/** Every configuration flag, in help order. */
export const CONFIG_FLAGS: readonly ConfigFlag[] = [
  { flag: "--config", value: "PATH", kind: "string", help: `configuration file (default ${DEFAULT_CONFIG_PATH})` },
  {
    flag: "--config-dir",
    value: "DIR",
    kind: "string",
    help: `drop-in directory, *.toml read in lexical order (default ${DEFAULT_CONFIG_DIR})`,
  },
  { flag: "--listen", key: "davit.api.listen", value: "PATH", kind: "string", help: "CRI socket path" },
  { flag: "--root", key: "davit.root", value: "DIR", kind: "string", help: "directory for durable state" },
  { flag: "--runroot", key: "davit.runroot", value: "DIR", kind: "string", help: "directory for volatile state" },
  { flag: "--log-dir", key: "davit.log_dir", value: "DIR", kind: "string", help: "default container log directory" },
  {
    flag: "--log-level",
    key: "davit.log_level",
    value: "LEVEL",
    kind: "string",
    help: "trace, debug, info, warn, error or fatal",
  },
  { flag: "--log-format", key: "davit.log_format", value: "FORMAT", kind: "string", help: "logfmt or json" },
  {
    flag: "--default-runtime",
    key: "davit.runtime.default_runtime",
    value: "NAME",
    kind: "string",
    help: "runtime handler for pods that name none",
  },
  {
    flag: "--pause-image",
    key: "davit.image.pause_image",
    value: "IMAGE",
    kind: "string",
    help: "image of the infra container",
  },
  {
    flag: "--network-dir",
    key: "davit.network.network_dir",
    value: "DIR",
    kind: "string",
    help: "CNI configuration directory",
  },
  {
    flag: "--plugin-dirs",
    key: "davit.network.plugin_dirs",
    value: "DIRS",
    kind: "list",
    help: "CNI plugin directories, comma separated",
  },
  {
    flag: "--stream-address",
    key: "davit.api.stream_address",
    value: "ADDR",
    kind: "string",
    help: "streaming server address",
  },
  {
    flag: "--stream-port",
    key: "davit.api.stream_port",
    value: "PORT",
    kind: "string",
    help: "streaming server port, 0 for a free one",
  },
  {
    flag: "--enable-metrics",
    key: "davit.metrics.enable_metrics",
    value: "[=BOOL]",
    kind: "boolean",
    help: "serve Prometheus metrics (alone: true)",
  },
  {
    flag: "--metrics-port",
    key: "davit.metrics.metrics_port",
    value: "PORT",
    kind: "integer",
    help: "metrics endpoint port",
  },
];

const BY_FLAG = new Map(CONFIG_FLAGS.map((f) => [f.flag, f]));

/** Names where an override of `key` came from, for error messages: `flag --listen`, or `override`. */
export function flagSource(key: string): string {
  const f = CONFIG_FLAGS.find((x) => x.key === key);
  return f ? `flag ${f.flag}` : "override";
}

/** Which configuration files the command line chose. */
export interface ConfigFiles {
  configPath?: string;
  configDir?: string;
}

/** The result of {@link parseConfigFlags}. */
export interface ParsedConfigFlags {
  /** Checked values by dotted key, for `loadConfig({ flags })`. */
  overrides: FlagOverrides;
  /** `--config` and `--config-dir`, ready to spread into `loadConfig`'s options. */
  configFiles: ConfigFiles;
  /** Positional arguments, everything after `--`, and `-h`/`--help` (left for the caller). */
  rest: string[];
}

function convert(f: ConfigFlag, raw: string): unknown {
  switch (f.kind) {
    case "integer":
      return /^[+-]?\d+$/.test(raw) ? Number(raw) : raw;
    case "boolean":
      return raw === "true" ? true : raw === "false" ? false : raw;
    case "list":
      return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    default:
      return raw;
  }
}

/**
 * Splits davit's configuration flags from the other arguments. Values are checked at once, so a bad value fails
 * here; an unknown flag or a missing value throws {@link InvalidArgument} naming the flag (callers exit 2).
 */
export function parseConfigFlags(args: readonly string[]): ParsedConfigFlags {
  const overrides: FlagOverrides = {};
  const configFiles: ConfigFiles = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--") {
      rest.push(...args.slice(i + 1));
      break;
    }
    if (arg === "--help" || arg === "-h") {
      rest.push(arg);
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const f = BY_FLAG.get(name);
    if (!f) throw new InvalidArgument(`unknown flag "${name}" (see --help)`);
    let raw: string;
    if (eq >= 0) {
      raw = arg.slice(eq + 1);
    } else if (f.kind === "boolean") {
      raw = "true";
    } else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) throw new InvalidArgument(`flag ${f.flag} needs a value`);
      raw = next;
      i++;
    }
    if (!f.key) {
      if (raw === "") throw new InvalidArgument(`flag ${f.flag} needs a value`);
      if (f.flag === "--config") configFiles.configPath = raw;
      else configFiles.configDir = raw;
      continue;
    }
    const value = convert(f, raw);
    overridesLayer({ [f.key]: value }, () => `flag ${f.flag}`);
    overrides[f.key] = value;
  }
  return { overrides, configFiles, rest };
}

/** Help text for the configuration flags, one flag a line, with defaults. */
export function describeFlags(): string {
  const defaults = defaultConfig();
  const rows = CONFIG_FLAGS.map((f) => {
    const left = f.kind === "boolean" ? `${f.flag}${f.value}` : `${f.flag} ${f.value}`;
    let help = f.help;
    if (f.key) {
      const d = getPath(defaults, f.key);
      help += ` (default ${Array.isArray(d) ? d.join(",") : String(d)})`;
    }
    return [left, help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, h]) => `  ${l.padEnd(width)}${h}`).join("\n") + "\n";
}
