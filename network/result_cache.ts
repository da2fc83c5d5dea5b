/**
 * The on-disk CNI attachment cache: for each (network, container ID, interface) the exact configuration list,
 * protocol version, CNI_ARGS and capability arguments used, and the final ADD result, so that CHECK and DEL (after
 * a daemon restart or a configuration change) repeat exactly what ADD did (SPEC.md: DEL gets the ADD's prevResult;
 * the runtime deletes the cached result after a successful DEL).
 *
 * Layout, under the cache directory given (davit uses `<root>/cni-cache`):
 *
 *     results/<containerId>/<network>/<ifname>.json
 *
 * Container IDs and network names match SPEC.md's `[a-zA-Z0-9][a-zA-Z0-9_.-]*` and interface names cannot hold `/`,
 * so the path is unambiguous; the container ID comes first because teardown looks attachments up by pod. Entries
 * are written to `<ifname>.json.tmp-<random>`, fsynced and renamed into place (then the directory fsynced). An
 * entry is written with `state: "adding"` before the first plugin runs, so a crash mid-ADD still leaves the
 * configuration for the DEL that cleans up, and rewritten with `state: "added"` and the result afterwards.
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { NAME_PATTERN } from "./cni_config.ts";
import type { CapabilityArgs } from "./plugin_request.ts";

/** The entry's format marker. */
export const CACHE_KIND = "davit.cni.cache/v1";

/** One cached attachment. */
export interface CacheEntry {
  kind: typeof CACHE_KIND;
  network: string;
  containerId: string;
  ifname: string;
  /** The namespace path given to ADD. */
  netns: string;
  /** The protocol version selected for the list. */
  version: string;
  /** The file the configuration came from (informational). */
  configPath: string;
  /** The configuration list object exactly as executed. */
  config: Record<string, unknown>;
  cniArgs: [string, string][];
  capabilityArgs: CapabilityArgs;
  /** "adding" until the whole chain succeeded. */
  state: "adding" | "added";
  /** The final ADD result, raw, in `version`. */
  result?: Record<string, unknown>;
  /** ISO time of the last write. */
  updated: string;
}

/** What a pod's cache directory holds. */
export interface CachedAttachments {
  entries: CacheEntry[];
  /** Files that are not readable entries (reported, left for the caller to remove). */
  invalid: string[];
}

const IFNAME = /^[^/\s:]{1,15}$/;

function isEntry(v: unknown): v is CacheEntry {
  if (typeof v !== "object" || v === null) return false;
  const e = v as Record<string, unknown>;
  return e.kind === CACHE_KIND && typeof e.network === "string" && typeof e.containerId === "string" &&
    typeof e.ifname === "string" && typeof e.version === "string" && typeof e.config === "object" &&
    e.config !== null && Array.isArray(e.cniArgs) && (e.state === "adding" || e.state === "added");
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    // Best effort: some filesystems refuse fsync on directories.
  }
}

/** Reads and writes cache entries under one directory. */
export class ResultCache {
  readonly dir: string;
  readonly #log: Logger | undefined;

  constructor(dir: string, opts: { log?: Logger } = {}) {
    this.dir = dir.replace(/(.)\/+$/, "$1");
    this.#log = opts.log;
  }

  #containerDir(containerId: string): string {
    if (!NAME_PATTERN.test(containerId)) throw new RangeError(`invalid container ID ${JSON.stringify(containerId)}`);
    return `${this.dir}/results/${containerId}`;
  }

  /** The entry's file path. */
  path(network: string, containerId: string, ifname: string): string {
    if (!NAME_PATTERN.test(network)) throw new RangeError(`invalid network name ${JSON.stringify(network)}`);
    if (!IFNAME.test(ifname) || ifname === "." || ifname === "..") {
      throw new RangeError(`invalid interface name ${JSON.stringify(ifname)}`);
    }
    return `${this.#containerDir(containerId)}/${network}/${ifname}.json`;
  }

  /** Writes an entry atomically. */
  async write(entry: CacheEntry): Promise<void> {
    const file = this.path(entry.network, entry.containerId, entry.ifname);
    const dir = file.slice(0, file.lastIndexOf("/"));
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    try {
      {
        using f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
        const bytes = new TextEncoder().encode(JSON.stringify(entry, null, 1) + "\n");
        let written = 0;
        while (written < bytes.length) written += await f.write(bytes.subarray(written));
        await f.sync();
      }
      await Deno.rename(tmp, file);
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw err;
    }
    await fsyncDir(dir);
  }

  /** Every entry cached for a container (any network and interface), plus files that are not valid entries. */
  async list(containerId: string): Promise<CachedAttachments> {
    const out: CachedAttachments = { entries: [], invalid: [] };
    const cdir = this.#containerDir(containerId);
    let networks: string[];
    try {
      networks = (await Array.fromAsync(Deno.readDir(cdir))).filter((e) => e.isDirectory).map((e) => e.name).sort();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return out;
      throw err;
    }
    for (const network of networks) {
      const ndir = `${cdir}/${network}`;
      for (const e of (await Array.fromAsync(Deno.readDir(ndir))).sort((a, b) => a.name < b.name ? -1 : 1)) {
        const path = `${ndir}/${e.name}`;
        if (e.name.includes(".tmp-")) {
          // Left by a crash mid-write; the rename never happened, so the entry it would have replaced stands.
          await Deno.remove(path).catch(() => {});
          continue;
        }
        let entry: unknown;
        try {
          entry = JSON.parse(await Deno.readTextFile(path));
        } catch (err) {
          this.#log?.warn("unreadable CNI cache entry", { path, error: (err as Error).message });
          out.invalid.push(path);
          continue;
        }
        if (!isEntry(entry) || entry.containerId !== containerId || entry.network !== network) {
          this.#log?.warn("invalid CNI cache entry", { path });
          out.invalid.push(path);
          continue;
        }
        out.entries.push(entry);
      }
    }
    return out;
  }

  /** Removes an entry, then its directories if they became empty. Missing entries are fine. */
  async remove(network: string, containerId: string, ifname: string): Promise<void> {
    await this.removeFile(this.path(network, containerId, ifname));
  }

  /** Removes a cache file by path (used for invalid files), then empty parent directories. */
  async removeFile(path: string): Promise<void> {
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    const ndir = path.slice(0, path.lastIndexOf("/"));
    const cdir = ndir.slice(0, ndir.lastIndexOf("/"));
    for (const d of [ndir, cdir]) {
      // Non-recursive: fails harmlessly while other entries remain.
      if (!(await Deno.remove(d).then(() => true, () => false))) break;
    }
  }

  /** The container IDs that have cache entries (for reconciliation at start). */
  async containers(): Promise<string[]> {
    try {
      return (await Array.fromAsync(Deno.readDir(`${this.dir}/results`)))
        .filter((e) => e.isDirectory && NAME_PATTERN.test(e.name)).map((e) => e.name).sort();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
  }
}
