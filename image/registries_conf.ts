/**
 * containers-registries.conf(5) version 2 and its drop-ins (containers-registries.conf.d(5)): parsing and merging in
 * load order. What the result means for one pull is pull_sources.ts.
 *
 * The deprecated version 1 tables (`[registries.search]`, `[registries.insecure]`, `[registries.block]`) are
 * converted to their version 2 meaning in the main file; drop-ins must be version 2, and one file mixing both
 * formats is refused. Unknown keys are reported as warnings, not errors, as containers/image does.
 * @module
 */
import { parse } from "smol-toml";
import { InvalidArgument } from "../lib/errors.ts";
import { isShortName, namePrefixProblem, parseReference, registryHostProblem } from "./reference.ts";

/** When a mirror is used: for every pull, only pulls by digest, or only pulls by tag. */
export type PullFromMirror = "all" | "digest-only" | "tag-only";
/** `short-name-mode`; recorded, but davit resolves short names the same way in every mode (see reference.ts). */
export type ShortNameMode = "enforcing" | "permissive" | "disabled";

/** One `[[registry.mirror]]` table. */
export interface MirrorConf {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

/** One `[[registry]]` table; `prefix` defaults to `location`. */
export interface RegistryConf {
  prefix: string;
  /** Physical location of the prefix-rooted namespace; empty for a wildcard prefix (no rewriting). */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: MirrorConf[];
}

/** The effective configuration after merging the main file and its drop-ins. */
export interface RegistriesConf {
  unqualifiedSearchRegistries: string[];
  shortNameMode: ShortNameMode;
  registries: RegistryConf[];
  /** Short name -> fully qualified repository, neither with tag nor digest. */
  aliases: Record<string, string>;
  /** Ignored keys and settings, each naming its file, for the caller to log. */
  warnings: string[];
}

/** One parsed file: only what it sets. An alias mapped to `""` erases an earlier one. */
export interface RegistriesConfFile {
  source: string;
  unqualifiedSearchRegistries?: string[];
  shortNameMode?: ShortNameMode;
  registries: RegistryConf[];
  aliases: Record<string, string>;
  warnings: string[];
  /** True when the file used the deprecated version 1 tables. */
  v1: boolean;
}

/** The configuration in effect when no file exists. */
export const EMPTY_REGISTRIES_CONF: RegistriesConf = Object.freeze({
  unqualifiedSearchRegistries: [],
  shortNameMode: "permissive",
  registries: [],
  aliases: {},
  warnings: [],
}) as RegistriesConf;

type Table = Record<string, unknown>;

const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v);

class Reader {
  constructor(readonly source: string, readonly warnings: string[]) {}
  fail(key: string, why: string): never {
    throw new InvalidArgument(`${this.source}: ${key}: ${why}`);
  }
  unknown(table: Table, known: string[], where: string): void {
    for (const k of Object.keys(table)) {
      if (!known.includes(k)) this.warnings.push(`${this.source}: unknown key "${where}${k}" ignored`);
    }
  }
  bool(table: Table, key: string, where: string): boolean {
    const v = table[key];
    if (v === undefined) return false;
    if (typeof v !== "boolean") this.fail(where + key, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  string(table: Table, key: string, where: string): string | undefined {
    const v = table[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string") this.fail(where + key, `expected a string, got ${JSON.stringify(v)}`);
    return v;
  }
  strings(table: Table, key: string, where: string): string[] | undefined {
    const v = table[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      this.fail(where + key, "expected an array of strings");
    }
    return v as string[];
  }
}

function parseMirror(r: Reader, m: unknown, where: string, byDigestOnly: boolean): MirrorConf {
  if (!isTable(m)) r.fail(where, "expected a table");
  r.unknown(m, ["location", "insecure", "pull-from-mirror"], where + ".");
  const location = r.string(m, "location", where + ".") ?? "";
  const problem = namePrefixProblem(location);
  if (problem !== undefined) r.fail(`${where}.location`, `"${location}" ${problem}`);
  const pull = r.string(m, "pull-from-mirror", where + ".");
  if (pull !== undefined && pull !== "" && pull !== "all" && pull !== "digest-only" && pull !== "tag-only") {
    r.fail(`${where}.pull-from-mirror`, `expected "all", "digest-only" or "tag-only", got "${pull}"`);
  }
  if (pull !== undefined && pull !== "" && byDigestOnly) {
    r.fail(`${where}.pull-from-mirror`, "cannot be set when the registry sets mirror-by-digest-only");
  }
  return {
    location,
    insecure: r.bool(m, "insecure", where + "."),
    pullFromMirror: pull === undefined || pull === "" ? "all" : pull,
  };
}

function parseRegistry(r: Reader, t: unknown, where: string): RegistryConf {
  if (!isTable(t)) r.fail(where, "expected a table");
  r.unknown(t, ["prefix", "location", "insecure", "blocked", "mirror-by-digest-only", "mirror"], where + ".");
  let location = r.string(t, "location", where + ".") ?? "";
  const prefix = r.string(t, "prefix", where + ".") || location;
  if (prefix === "") r.fail(where, "needs a prefix or a location");
  if (prefix.startsWith("*.")) {
    const problem = registryHostProblem(prefix.slice(2));
    if (problem !== undefined || prefix.slice(2).includes(":")) {
      r.fail(`${where}.prefix`, `"${prefix}" must be *.host with neither port nor path`);
    }
    if (location !== "" && location !== prefix) {
      r.fail(`${where}.location`, `must be empty for the wildcard prefix "${prefix}"`);
    }
    location = "";
  } else {
    const problem = namePrefixProblem(prefix);
    if (problem !== undefined) r.fail(`${where}.prefix`, `"${prefix}" ${problem}`);
    if (location === "") location = prefix;
    const lp = namePrefixProblem(location);
    if (lp !== undefined) r.fail(`${where}.location`, `"${location}" ${lp}`);
  }
  const mirrorByDigestOnly = r.bool(t, "mirror-by-digest-only", where + ".");
  const rawMirrors = t.mirror ?? [];
  if (!Array.isArray(rawMirrors)) r.fail(`${where}.mirror`, "expected an array of tables ([[registry.mirror]])");
  return {
    prefix,
    location,
    insecure: r.bool(t, "insecure", where + "."),
    blocked: r.bool(t, "blocked", where + "."),
    mirrorByDigestOnly,
    mirrors: rawMirrors.map((m, i) => parseMirror(r, m, `${where}.mirror[${i}]`, mirrorByDigestOnly)),
  };
}

function parseAliases(r: Reader, t: unknown): Record<string, string> {
  if (!isTable(t)) r.fail("aliases", "expected a table");
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(t)) {
    if (typeof value !== "string") r.fail(`aliases."${name}"`, "expected a string");
    let ok = false;
    try {
      const ref = parseReference(name, { defaultTag: false });
      ok = isShortName(name) && ref.tag === undefined && ref.digest === undefined && name !== "localhost" &&
        !name.startsWith("localhost/");
    } catch { /* reported below */ }
    if (!ok) r.fail(`aliases."${name}"`, "the name must be a short name without tag or digest");
    if (value !== "") {
      let valid = false;
      try {
        const ref = parseReference(value, { defaultTag: false });
        valid = !isShortName(value) && ref.tag === undefined && ref.digest === undefined;
      } catch { /* reported below */ }
      if (!valid) {
        r.fail(`aliases."${name}"`, `"${value}" must be a fully qualified repository without tag or digest`);
      }
    }
    out[name] = value;
  }
  return out;
}

function parseV1(r: Reader, t: unknown): Pick<RegistriesConfFile, "unqualifiedSearchRegistries" | "registries"> {
  if (!isTable(t)) r.fail("registries", "expected a table");
  r.unknown(t, ["search", "insecure", "block"], "registries.");
  const list = (name: string): string[] => {
    const sub = t[name];
    if (sub === undefined) return [];
    if (!isTable(sub)) r.fail(`registries.${name}`, "expected a table");
    r.unknown(sub, ["registries"], `registries.${name}.`);
    const regs = r.strings(sub, "registries", `registries.${name}.`) ?? [];
    for (const reg of regs) {
      const problem = namePrefixProblem(reg);
      if (problem !== undefined) r.fail(`registries.${name}.registries`, `"${reg}" ${problem}`);
    }
    return regs;
  };
  const byName = new Map<string, RegistryConf>();
  const entry = (name: string): RegistryConf => {
    let e = byName.get(name);
    if (!e) {
      e = { prefix: name, location: name, insecure: false, blocked: false, mirrorByDigestOnly: false, mirrors: [] };
      byName.set(name, e);
    }
    return e;
  };
  for (const name of list("insecure")) entry(name).insecure = true;
  for (const name of list("block")) entry(name).blocked = true;
  const out: Pick<RegistriesConfFile, "unqualifiedSearchRegistries" | "registries"> = {
    registries: [...byName.values()],
  };
  const search = list("search");
  if (t.search !== undefined) out.unqualifiedSearchRegistries = search;
  return out;
}

/** Parses one registries.conf file (or drop-in); `source` names it in errors. Throws InvalidArgument. */
export function parseRegistriesConf(text: string, source: string): RegistriesConfFile {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (err) {
    throw new InvalidArgument(`${source}: invalid TOML: ${(err as Error).message}`, { cause: err });
  }
  const r: Reader = new Reader(source, []);
  const out: RegistriesConfFile = { source, registries: [], aliases: {}, warnings: r.warnings, v1: false };
  r.unknown(
    doc,
    [
      "unqualified-search-registries",
      "short-name-mode",
      "registry",
      "aliases",
      "registries",
      "credential-helpers",
      "additional-layer-store-auth-helper",
    ],
    "",
  );
  const helpers = r.strings(doc, "credential-helpers", "");
  if (helpers !== undefined && helpers.some((h) => h !== "containers-auth.json")) {
    r.warnings.push(`${source}: credential-helpers other than "containers-auth.json" are not supported, ignored`);
  }
  if (doc["additional-layer-store-auth-helper"] !== undefined) {
    r.warnings.push(`${source}: additional-layer-store-auth-helper is not supported, ignored`);
  }
  const v2Keys = ["unqualified-search-registries", "registry", "aliases", "short-name-mode"];
  if (doc.registries !== undefined) {
    const mixed = v2Keys.find((k) => doc[k] !== undefined);
    if (mixed !== undefined) {
      throw new InvalidArgument(`${source}: mixes the version 1 [registries] tables with the version 2 key "${mixed}"`);
    }
    Object.assign(out, parseV1(r, doc.registries));
    out.v1 = true;
    return out;
  }
  const search = r.strings(doc, "unqualified-search-registries", "");
  if (search !== undefined) {
    for (const s of search) {
      const problem = registryHostProblem(s);
      if (problem !== undefined) r.fail("unqualified-search-registries", `"${s}" is not a host[:port]: ${problem}`);
    }
    out.unqualifiedSearchRegistries = search;
  }
  const mode = r.string(doc, "short-name-mode", "");
  if (mode !== undefined && mode !== "") {
    if (mode !== "enforcing" && mode !== "permissive" && mode !== "disabled") {
      r.fail("short-name-mode", `expected "enforcing", "permissive" or "disabled", got "${mode}"`);
    }
    out.shortNameMode = mode;
  }
  const regs: unknown = doc.registry ?? [];
  if (!Array.isArray(regs)) r.fail("registry", "expected an array of tables ([[registry]])");
  const seen = new Set<string>();
  regs.forEach((t, i) => {
    const reg = parseRegistry(r, t, `registry[${i}]`);
    if (seen.has(reg.prefix)) r.fail(`registry[${i}].prefix`, `"${reg.prefix}" is defined more than once`);
    seen.add(reg.prefix);
    out.registries.push(reg);
  });
  if (doc.aliases !== undefined) out.aliases = parseAliases(r, doc.aliases);
  return out;
}

/**
 * Merges files in load order (main file first, then drop-ins in lexical order): a later file's search list and
 * mode replace earlier ones, `[[registry]]` tables replace those with the same prefix, aliases merge by name and
 * `""` erases one. Drop-ins (every file after the first) must use version 2.
 */
export function mergeRegistriesConf(files: RegistriesConfFile[]): RegistriesConf {
  const out: RegistriesConf = {
    unqualifiedSearchRegistries: [],
    shortNameMode: "permissive",
    registries: [],
    aliases: {},
    warnings: [],
  };
  const byPrefix = new Map<string, RegistryConf>();
  files.forEach((f, i) => {
    if (i > 0 && f.v1) {
      throw new InvalidArgument(`${f.source}: drop-in files must use the version 2 format, not [registries] tables`);
    }
    if (f.unqualifiedSearchRegistries !== undefined) {
      out.unqualifiedSearchRegistries = [...f.unqualifiedSearchRegistries];
    }
    if (f.shortNameMode !== undefined) out.shortNameMode = f.shortNameMode;
    for (const reg of f.registries) byPrefix.set(reg.prefix, reg);
    for (const [name, value] of Object.entries(f.aliases)) {
      if (value === "") delete out.aliases[name];
      else out.aliases[name] = value;
    }
    out.warnings.push(...f.warnings);
  });
  out.registries = [...byPrefix.values()];
  return out;
}

/** Options for {@link loadRegistriesConf}. */
export interface LoadRegistriesConfOptions {
  /** The main file; missing is fine. */
  path: string;
  /** The drop-in directory; missing is fine. Only `*.conf` files are read, in lexical order. */
  dropInDir?: string;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Reads the main file and its drop-ins and merges them; the only I/O in this module. */
export async function loadRegistriesConf(opts: LoadRegistriesConfOptions): Promise<RegistriesConf> {
  const files: RegistriesConfFile[] = [];
  const main = await readIfExists(opts.path);
  files.push(
    main === undefined
      ? { source: opts.path, registries: [], aliases: {}, warnings: [], v1: false }
      : parseRegistriesConf(main, opts.path),
  );
  if (opts.dropInDir !== undefined) {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(opts.dropInDir)) {
        if ((e.isFile || e.isSymlink) && e.name.endsWith(".conf")) names.push(e.name);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    names.sort();
    for (const name of names) {
      const path = `${opts.dropInDir}/${name}`;
      const text = await readIfExists(path);
      if (text !== undefined) files.push(parseRegistriesConf(text, path));
    }
  }
  return mergeRegistriesConf(files);
}
