/**
 * Writes a configuration as TOML for `davit config`: every key with its effective value, each preceded by its
 * description. Parsing the output gives back the same configuration.
 * @module
 */
import { type Config, HANDLER, KEY_SPECS, leafOf, RUNTIMES_TABLE, tableOf } from "./config_schema.ts";
import { getPath } from "./config_layers.ts";
import { DEFAULT_CONFIG_DIR, DEFAULT_CONFIG_PATH } from "./config_flags.ts";

const WIDTH = 100;

/** A TOML basic string: quotes, backslashes and control characters escaped. */
export function tomlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out + '"';
}

/** A value as TOML; `lead` is the width of `key = ` so a list that would overflow the line goes one item a line. */
function tomlValue(v: unknown, lead: number): string {
  if (typeof v === "string") return tomlString(v);
  if (typeof v === "boolean") return String(v);
  if (typeof v === "number") {
    if (!Number.isInteger(v)) throw new TypeError(`configuration values are integers, got ${v}`);
    return String(v);
  }
  if (Array.isArray(v)) {
    const items = v.map((x) => tomlValue(x, 0));
    const oneLine = `[${items.join(", ")}]`;
    if (lead + oneLine.length <= WIDTH) return oneLine;
    return `[\n${items.map((x) => `  ${x},`).join("\n")}\n]`;
  }
  throw new TypeError(`cannot write ${typeof v} as a configuration value`);
}

function comment(text: string): string[] {
  const lines: string[] = [];
  let line = "#";
  for (const word of text.split(" ")) {
    if (line.length + 1 + word.length > WIDTH && line !== "#") {
      lines.push(line);
      line = "#";
    }
    line += " " + word;
  }
  lines.push(line);
  return lines;
}

/** Options for {@link configToToml}. */
export interface ConfigToTomlOptions {
  /** Write each key's description above it (default true). */
  comments?: boolean;
}

/** The configuration as a TOML document with a comment header; round-trips through the loader. */
export function configToToml(config: Config, opts: ConfigToTomlOptions = {}): string {
  const withComments = opts.comments ?? true;
  const out: string[] = [
    "# davit configuration, as written by `davit config`.",
    `# davit reads built-in defaults, then ${DEFAULT_CONFIG_PATH} (--config), then ${DEFAULT_CONFIG_DIR}/*.toml`,
    "# (--config-dir) in lexical order, then command-line flags; a later source overrides single keys.",
  ];
  const emitTable = (header: string, specs: typeof KEY_SPECS, prefix: string) => {
    out.push("", `[${header}]`);
    for (const spec of specs) {
      const key = `${prefix}.${leafOf(spec.key)}`;
      if (withComments) out.push(...comment(spec.description));
      out.push(`${leafOf(spec.key)} = ${tomlValue(getPath(config, key), leafOf(spec.key).length + 3)}`);
    }
  };
  const tables = [...new Set(KEY_SPECS.map((s) => tableOf(s.key)))];
  for (const table of tables) {
    const specs = KEY_SPECS.filter((s) => tableOf(s.key) === table);
    if (!table.includes(HANDLER)) {
      emitTable(table, specs, table);
      continue;
    }
    for (const name of Object.keys(config.davit.runtime.runtimes)) {
      emitTable(`${RUNTIMES_TABLE}.${name}`, specs, `${RUNTIMES_TABLE}.${name}`);
    }
  }
  return out.join("\n") + "\n";
}
