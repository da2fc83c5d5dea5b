/**
 * The pure core of configuration loading: checks one TOML document (or a set of overrides) against the key specs,
 * lays it over the configuration built so far key by key, and checks rules that span keys. No I/O here; the
 * caller reads the files.
 * @module
 */
import { parse, TomlError } from "smol-toml";
import {
  type Config,
  defaultConfig,
  defaultRuntimeHandler,
  genericKey,
  HANDLER,
  HANDLER_NAME,
  KEY_SPECS,
  leafOf,
  RUNTIMES_TABLE,
  specOf,
  tableOf,
  TABLES,
} from "./config_schema.ts";
import { ConfigError, describeValue, Expected, TomlFloat } from "./config_values.ts";

/** One source's validated contribution: dotted key -> value, plus the runtime handlers it mentions. */
export interface Layer {
  /** Where the values came from, used in error messages: a file path, `flag --listen`, ... */
  source: string;
  values: Map<string, unknown>;
  handlers: string[];
  /** Per-key sources, where one layer gathers values from several places (flags). */
  keySources?: Map<string, string>;
}

/** A source of configuration text, e.g. a file that has been read. */
export interface ConfigText {
  source: string;
  text: string;
}

/** Dotted key -> value overrides applied after every file, e.g. from command-line flags. */
export type FlagOverrides = Record<string, unknown>;

/** Builds the message shape every configuration error shares. */
export function keyError(source: string, key: string, expected: string, got: string, cause?: unknown): ConfigError {
  return new ConfigError(`${source}: key "${key}": expected ${expected}, got ${got}`, cause ? { cause } : undefined);
}

function checkValue(source: string, key: string, value: unknown, layer: Layer): void {
  const spec = specOf(key);
  if (!spec) throw new Error(`no spec for ${key}`);
  try {
    layer.values.set(key, spec.check(value));
  } catch (err) {
    if (!(err instanceof Expected)) throw err;
    throw keyError(source, key, err.expected, err.got ?? describeValue(value), err);
  }
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date) && !(v instanceof TomlFloat);
}

/** The names allowed directly inside a table: its keys and its sub-tables. */
function childrenOf(table: string): string[] {
  const keys = KEY_SPECS.filter((s) => tableOf(s.key) === table).map((s) => leafOf(s.key));
  const subs = TABLES.filter((t) => tableOf(t) === table).map(leafOf);
  if (table === "davit.runtime") subs.push("runtimes");
  return [...keys, ...subs];
}

function unknownKey(source: string, key: string, table: string): ConfigError {
  const allowed = table === "" ? ["davit"] : childrenOf(table);
  const hint = key === "crio" || key.startsWith("crio.")
    ? '; davit reads [davit] tables, rename "crio" to "davit"'
    : "";
  return new ConfigError(`${source}: key "${key}": unknown key (expected one of: ${allowed.join(", ")})${hint}`);
}

function walkTable(obj: Record<string, unknown>, schema: string, actual: string, layer: Layer): void {
  for (const [name, value] of Object.entries(obj)) {
    const key = actual === "" ? name : `${actual}.${name}`;
    const generic = schema === "" ? name : `${schema}.${name}`;
    if (specOf(generic)) {
      checkValue(layer.source, key, value, layer);
    } else if (generic === RUNTIMES_TABLE) {
      if (!isTable(value)) throw keyError(layer.source, key, "a table of runtime handlers", describeValue(value));
      for (const [handler, table] of Object.entries(value)) {
        const hkey = `${key}.${handler}`;
        if (!HANDLER_NAME.test(handler)) {
          throw keyError(
            layer.source,
            hkey,
            "a runtime handler name of lowercase letters, digits and '-' (at most 63 characters)",
            JSON.stringify(handler),
          );
        }
        if (!isTable(table)) throw keyError(layer.source, hkey, "a table", describeValue(table));
        if (!layer.handlers.includes(handler)) layer.handlers.push(handler);
        walkTable(table, `${RUNTIMES_TABLE}.${HANDLER}`, hkey, layer);
      }
    } else if (TABLES.includes(generic)) {
      if (!isTable(value)) throw keyError(layer.source, key, "a table", describeValue(value));
      walkTable(value, generic, key, layer);
    } else {
      throw unknownKey(layer.source, key, schema);
    }
  }
}

/** Turns TOML values into the forms the checks expect: integers become numbers, floats are marked as floats. */
function normalise(v: unknown): unknown {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  if (typeof v === "number") return new TomlFloat(v);
  if (Array.isArray(v)) return v.map(normalise);
  if (isTable(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  return v;
}

/** Parses and checks one TOML document. Throws {@link ConfigError} for invalid TOML, unknown keys and bad values. */
export function parseLayer(text: string, source: string): Layer {
  let doc: Record<string, unknown>;
  try {
    // Integers as bigint, so that `1.0` (a float) can be told from `1`.
    doc = parse(text, { integersAsBigInt: true }) as Record<string, unknown>;
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const what = (err.message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
    throw new ConfigError(`${source}: invalid TOML at line ${err.line}, column ${err.column}: ${what}`, { cause: err });
  }
  const layer: Layer = { source, values: new Map(), handlers: [] };
  walkTable(normalise(doc) as Record<string, unknown>, "", "", layer);
  return layer;
}

/**
 * Checks overrides given by dotted key (`{"davit.api.listen": "/tmp/d.sock"}`); `sourceOf` names where each came
 * from for error messages. Setting a key of an unknown runtime handler adds that handler.
 */
export function overridesLayer(overrides: FlagOverrides, sourceOf: (key: string) => string): Layer {
  const layer: Layer = { source: "overrides", values: new Map(), handlers: [], keySources: new Map() };
  for (const [key, value] of Object.entries(overrides)) {
    const source = sourceOf(key);
    layer.keySources?.set(key, source);
    if (!specOf(key)) throw new ConfigError(`${source}: key "${key}": unknown key`);
    if (genericKey(key) !== key) {
      const handler = key.split(".")[3] ?? "";
      if (!HANDLER_NAME.test(handler)) {
        throw keyError(source, tableOf(key), "a runtime handler name", JSON.stringify(handler));
      }
      if (!layer.handlers.includes(handler)) layer.handlers.push(handler);
    }
    checkValue(source, key, value, layer);
  }
  return layer;
}

function setPath(root: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split(".");
  let node = root;
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
  node[parts[parts.length - 1] ?? ""] = value;
}

/** Reads a dotted key from a configuration (undefined when absent). */
export function getPath(config: Config, key: string): unknown {
  let node: unknown = config;
  for (const p of key.split(".")) {
    if (!isTable(node) || !Object.hasOwn(node, p)) return undefined;
    node = node[p];
  }
  return node;
}

/**
 * Lays `layer` over `config` key by key (a layer setting one key leaves the rest) and records in `origins` which
 * source set each key. Returns a new configuration; `config` is not changed.
 */
export function applyLayer(config: Config, layer: Layer, origins: Map<string, string>): Config {
  const next = structuredClone(config);
  const runtimes = next.davit.runtime.runtimes;
  for (const h of layer.handlers) runtimes[h] ??= defaultRuntimeHandler(h);
  for (const [key, value] of layer.values) {
    setPath(next as unknown as Record<string, unknown>, key, structuredClone(value));
    origins.set(key, layer.keySources?.get(key) ?? layer.source);
  }
  return next;
}

/** Rules that span keys; run once every layer has been applied. */
export function checkMerged(config: Config, origins: Map<string, string>): void {
  const from = (key: string) => origins.get(key) ?? "built-in defaults";
  const rt = config.davit.runtime;
  if (!Object.hasOwn(rt.runtimes, rt.default_runtime)) {
    const key = "davit.runtime.default_runtime";
    const names = Object.keys(rt.runtimes).sort().join(", ");
    throw keyError(
      from(key),
      key,
      `the name of a configured runtime handler (one of: ${names})`,
      describeValue(rt.default_runtime),
    );
  }
  const api = config.davit.api;
  if (api.stream_enable_tls) {
    for (const name of ["stream_tls_cert", "stream_tls_key"] as const) {
      if (api[name] !== "") continue;
      throw keyError(
        from("davit.api.stream_enable_tls"),
        `davit.api.${name}`,
        "a path because davit.api.stream_enable_tls is true",
        describeValue(api[name]),
      );
    }
  }
}

/**
 * The pure heart of {@link loadConfig}: built-in defaults, then each text in order, then the overrides; each
 * source is checked on its own (so errors name it), then rules spanning keys are checked on the result.
 */
export function resolveConfig(
  texts: readonly ConfigText[],
  overrides: FlagOverrides = {},
  sourceOf: (key: string) => string = () => "overrides",
): Config {
  const origins = new Map<string, string>();
  let config = defaultConfig();
  for (const t of texts) config = applyLayer(config, parseLayer(t.text, t.source), origins);
  config = applyLayer(config, overridesLayer(overrides, sourceOf), origins);
  checkMerged(config, origins);
  return config;
}

/** Every key of a configuration as dotted key -> value, handler keys under their real names, in file order. */
export function flattenConfig(config: Config): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const handlerSpecs = KEY_SPECS.filter((s) => s.key.includes(HANDLER));
  for (const spec of KEY_SPECS) {
    if (!spec.key.includes(HANDLER)) {
      out.set(spec.key, getPath(config, spec.key));
    } else if (spec === handlerSpecs[0]) {
      // All keys of one handler together, handler after handler, as in the file.
      for (const [name, table] of Object.entries(config.davit.runtime.runtimes)) {
        for (const h of handlerSpecs) {
          const leaf = leafOf(h.key) as keyof typeof table;
          out.set(`${RUNTIMES_TABLE}.${name}.${leaf}`, table[leaf]);
        }
      }
    }
  }
  return out;
}

/** One key whose value differs between two configurations. */
export interface ConfigChange {
  key: string;
  from: unknown;
  to: unknown;
  /** Whether a running daemon applies the change on SIGHUP; otherwise it takes a restart. */
  reloadable: boolean;
}

/**
 * Lists every key whose value differs between `old` and `next` (handlers added or removed show as changes from or
 * to undefined), in file order. The daemon applies the reloadable ones on SIGHUP and reports the rest.
 */
export function reloadableDiff(old: Config, next: Config): ConfigChange[] {
  const a = flattenConfig(old);
  const b = flattenConfig(next);
  // Flattening a configuration holding the handlers of both gives every key once, in file order.
  const both = structuredClone(next);
  both.davit.runtime.runtimes = { ...old.davit.runtime.runtimes, ...next.davit.runtime.runtimes };
  const keys = [...flattenConfig(both).keys()];
  const changes: ConfigChange[] = [];
  for (const key of keys) {
    const from = a.get(key);
    const to = b.get(key);
    if (JSON.stringify(from) === JSON.stringify(to)) continue;
    changes.push({ key, from, to, reloadable: specOf(key)?.reloadable === true });
  }
  return changes;
}

/** One row of the configuration reference. */
export interface KeyDescription {
  /** Dotted key; runtime handler keys are shown with `<handler>`. */
  key: string;
  type: string;
  /** The built-in default; for handler keys, the default of a handler named `<handler>`. */
  default: unknown;
  description: string;
  reloadable: boolean;
}

/** Every configuration key with its type, default and a one-sentence description, in file order. */
export function describeKeys(): KeyDescription[] {
  const defaults = defaultConfig();
  const handler = defaultRuntimeHandler(HANDLER);
  return KEY_SPECS.map((s) => ({
    key: s.key,
    type: s.type,
    default: s.key.includes(HANDLER) ? handler[leafOf(s.key) as keyof typeof handler] : getPath(defaults, s.key),
    description: s.description,
    reloadable: s.reloadable === true,
  }));
}
