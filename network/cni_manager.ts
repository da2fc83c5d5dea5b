/**
 * The pod network API the CRI handlers use: readiness, pod set-up (loopback, then the network's plugin chain),
 * teardown and check through the attachment cache, the node's pod CIDR, and reconciliation (DEL of stale
 * attachments, then GC). Operations on one pod are serialised; GC runs alone (SPEC.md "Lifecycle & Ordering").
 * @module
 */
import { AlreadyExists, DavitError, FailedPrecondition, NotFound } from "../lib/errors.ts";
import { type Logger, logger } from "../lib/log.ts";
import { type NetworkConfigList, parseNetworkConfigObject } from "./cni_config.ts";
import { type CniExec, DenoCniExec } from "./cni_exec.ts";
import { type CniResult, parseResult, podIps } from "./cni_result.ts";
import {
  addNetwork,
  type ChainContext,
  checkNetwork,
  delNetwork,
  gcNetwork,
  negotiateVersion,
  probePluginVersions,
  type ResolvedNetwork,
} from "./chain.ts";
import { NetworkConfigWatcher, type NetworkReadiness } from "./config_watcher.ts";
import {
  type Attachment,
  capabilityArgs,
  checkCniName,
  kubernetesCniArgs,
  parsePodCidrs,
  type PodCapabilityInput,
  type PodIdentity,
} from "./plugin_request.ts";
import { OpLocks } from "./op_locks.ts";
import { CACHE_KIND, type CacheEntry, ResultCache } from "./result_cache.ts";

/** Options for {@link CniManager}. */
export interface CniManagerOptions {
  networkDir: string;
  pluginDirs: readonly string[];
  /** Attachment cache directory (davit: `<root>/cni-cache`). */
  cacheDir: string;
  /** Network name to use ("" or absent = the first valid configuration file). */
  defaultNetwork?: string;
  exec?: CniExec;
  /** Per plugin invocation; default 60 s. */
  timeoutMs?: number;
  log?: Logger;
  /** The pod's interface name; default eth0. */
  ifname?: string;
  /** Bring the pod's `lo` up with the loopback plugin (default true). */
  loopback?: boolean;
  /** PATH given to plugins; default the daemon's own, else the usual system directories. */
  path?: string;
  /** Watch the network directory (default true). */
  watch?: boolean;
  debounceMs?: number;
  pollMs?: number;
}

/** A pod to attach. */
export interface PodNetworkSetup extends PodIdentity, PodCapabilityInput {
  /** The pod's network namespace (a bind-mounted namespace file). */
  netnsPath: string;
}

/** A pod to detach; capability inputs only matter when no cache entry exists. */
export interface PodNetworkTeardown extends PodIdentity, PodCapabilityInput {
  /** The namespace, if the caller knows it; the cached one is used otherwise. Gone namespaces are fine. */
  netnsPath?: string;
}

/** A pod's attachment. */
export interface PodNetworkStatus {
  /** Pod IPs: the primary (first IPv4, else first IPv6) first, then the others (dual stack). */
  ips: string[];
  result: CniResult;
  network: string;
}

/** Per-call options. */
export interface CallOptions {
  signal?: AbortSignal;
}

const LOOPBACK_NETWORK = "cni-loopback";
const LOOPBACK_CONFIG: NetworkConfigList = (() => {
  const parsed = parseNetworkConfigObject({
    cniVersion: "1.1.0",
    cniVersions: ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    name: LOOPBACK_NETWORK,
    plugins: [{ type: "loopback" }],
  });
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.config;
})();
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

function daemonPath(): string {
  try {
    return Deno.env.get("PATH") || DEFAULT_PATH;
  } catch {
    return DEFAULT_PATH;
  }
}

function combine(what: string, errors: Error[]): Error {
  if (errors.length === 1) return errors[0]!;
  return new DavitError("Internal", `${what}: ${errors.map((e) => e.message).join("; ")}`, {
    cause: new AggregateError(errors),
  });
}

/** Pod networking through CNI. */
export class CniManager {
  readonly #opts: CniManagerOptions;
  readonly #exec: CniExec;
  readonly #log: Logger;
  readonly #watcher: NetworkConfigWatcher;
  readonly #cache: ResultCache;
  readonly #ifname: string;
  readonly #path: string;
  #podCidrs: string[] = [];
  readonly #versions = new Map<string, Promise<string[]>>();
  readonly #locks = new OpLocks();

  constructor(opts: CniManagerOptions) {
    this.#opts = opts;
    this.#exec = opts.exec ?? new DenoCniExec();
    this.#log = opts.log ?? logger("network");
    this.#ifname = opts.ifname ?? "eth0";
    this.#path = opts.path ?? daemonPath();
    this.#cache = new ResultCache(opts.cacheDir, { log: this.#log });
    this.#watcher = new NetworkConfigWatcher({
      networkDir: opts.networkDir,
      pluginDirs: opts.pluginDirs,
      requiredPlugins: opts.loopback === false ? [] : ["loopback"],
      exec: this.#exec,
      log: this.#log,
      ...(opts.defaultNetwork ? { defaultNetwork: opts.defaultNetwork } : {}),
      ...(opts.watch !== undefined ? { watch: opts.watch } : {}),
      ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
      ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
    });
  }

  /** Resolves once the network directory has been scanned for the first time. */
  loaded(): Promise<void> {
    return this.#watcher.loaded();
  }

  /** The NetworkReady condition (`NetworkPluginNotReady` with a message naming the directory when not ready). */
  status(): NetworkReadiness {
    return this.#watcher.ready();
  }

  /** Re-scans the network directory now. */
  rescan(): Promise<NetworkReadiness> {
    return this.#watcher.rescan();
  }

  /** The selected network's name and file, if any. */
  currentNetwork(): { name: string; path: string } | undefined {
    const c = this.#watcher.current();
    return c ? { name: c.config.name, path: c.path } : undefined;
  }

  /** Sets the node's pod CIDR(s) (CRI UpdateRuntimeConfig; comma-separated for dual stack, "" clears). */
  setPodCidr(cidr: string): void {
    this.#podCidrs = parsePodCidrs(cidr);
    this.#log.info("pod CIDR set", { cidr: this.#podCidrs.join(",") });
  }

  #ctx(signal?: AbortSignal): ChainContext {
    return {
      exec: this.#exec,
      pluginDirs: this.#opts.pluginDirs,
      timeoutMs: this.#opts.timeoutMs ?? 60_000,
      path: this.#path,
      log: this.#log,
      ...(signal ? { signal } : {}),
    };
  }

  #probe(ctx: ChainContext): (path: string, type: string) => Promise<string[]> {
    return async (path, type) => {
      const stamp = await Deno.stat(path).then((s) => `${s.mtime?.getTime()}:${s.size}`, () => "?");
      const key = `${path}\0${stamp}`;
      let p = this.#versions.get(key);
      if (!p) {
        p = probePluginVersions(ctx, path, type);
        this.#versions.set(key, p);
        p.catch(() => this.#versions.delete(key));
      }
      return await p;
    };
  }

  async #resolve(config: NetworkConfigList, ctx: ChainContext): Promise<ResolvedNetwork> {
    return { config, version: await negotiateVersion(config, ctx, this.#probe(ctx)) };
  }

  #attachment(pod: PodIdentity & PodCapabilityInput, netns: string, ifname: string): Attachment {
    return {
      containerId: pod.id,
      netns,
      ifname,
      cniArgs: kubernetesCniArgs(pod),
      capabilityArgs: capabilityArgs(pod, this.#podCidrs),
    };
  }

  /**
   * Attaches a pod: `lo` up through the loopback plugin, then ADD over the network's chain. The attachment is
   * recorded before the first plugin runs; if a plugin fails, DEL runs over the whole chain before the error is
   * rethrown. Returns the pod IPs and the normalised result.
   */
  async setUpPod(pod: PodNetworkSetup, opts: CallOptions = {}): Promise<PodNetworkStatus> {
    checkCniName("pod sandbox ID", pod.id);
    if (!pod.netnsPath) throw new FailedPrecondition(`pod sandbox ${pod.id} has no network namespace path`);
    const attachment = this.#attachment(pod, pod.netnsPath, this.#ifname);
    await this.#watcher.loaded();
    return await this.#locks.withKey(pod.id, async () => {
      let current = this.#watcher.current();
      if (!current) {
        // A change event may not have been processed yet.
        await this.#watcher.rescan();
        current = this.#watcher.current();
      }
      if (!current) {
        throw new FailedPrecondition(`Cannot set up the network of pod sandbox ${pod.id}: ${this.status().message}`);
      }
      const cached = await this.#cache.list(pod.id);
      const done = cached.entries.find((e) => e.state === "added");
      if (done) {
        throw new AlreadyExists(`pod sandbox ${pod.id} is already attached to network ${JSON.stringify(done.network)}`);
      }
      // Entries still "adding" are left by an interrupted earlier attempt: undo them first.
      if (cached.entries.length > 0) await this.#detachEntries(cached.entries, pod.netnsPath, this.#ctx());
      for (const path of cached.invalid) await this.#cache.removeFile(path);

      const ctx = this.#ctx(opts.signal);
      if (this.#opts.loopback !== false) await this.#loopback("ADD", pod, pod.netnsPath, ctx);
      const net = await this.#resolve(current.config, ctx);
      const entry: CacheEntry = {
        kind: CACHE_KIND,
        network: net.config.name,
        containerId: pod.id,
        ifname: this.#ifname,
        netns: pod.netnsPath,
        version: net.version,
        configPath: current.path,
        config: net.config.raw,
        cniArgs: attachment.cniArgs,
        capabilityArgs: attachment.capabilityArgs,
        state: "adding",
        updated: new Date().toISOString(),
      };
      await this.#cache.write(entry);
      const outcome = await addNetwork(net, attachment, ctx);
      if (!outcome.ok) {
        await this.#rollback(net, attachment, entry, outcome.partialResult);
        throw outcome.error;
      }
      try {
        await this.#cache.write({
          ...entry,
          state: "added",
          result: outcome.result,
          updated: new Date().toISOString(),
        });
      } catch (err) {
        await this.#rollback(net, attachment, entry, outcome.result);
        throw new DavitError("Internal", `Cannot record the CNI result of pod sandbox ${pod.id}`, { cause: err });
      }
      const ips = podIps(outcome.parsed);
      this.#log.info("pod network set up", { pod: pod.id, network: net.config.name, ips: ips.all.join(",") });
      if (ips.all.length === 0) this.#log.warn("CNI result has no pod IP", { pod: pod.id, network: net.config.name });
      return { ips: ips.all, result: outcome.parsed, network: net.config.name };
    });
  }

  async #rollback(
    net: ResolvedNetwork,
    attachment: Attachment,
    entry: CacheEntry,
    partial: Record<string, unknown> | undefined,
  ): Promise<void> {
    // Not cancellable: whatever the caller's signal says, what was added must be removed.
    try {
      await delNetwork(net, attachment, this.#ctx(), {
        continueOnError: true,
        ...(partial ? { prevResult: partial } : {}),
      });
      await this.#cache.remove(entry.network, entry.containerId, entry.ifname);
    } catch (err) {
      // The "adding" entry stays, so the pod's teardown (or GC) retries the DEL.
      this.#log.error("rolling back a failed CNI ADD failed", { pod: attachment.containerId, error: err as Error });
    }
  }

  async #loopback(command: "ADD" | "DEL", pod: PodIdentity, netns: string, ctx: ChainContext): Promise<void> {
    const net = await this.#resolve(LOOPBACK_CONFIG, ctx);
    const attachment = this.#attachment(pod, netns, "lo");
    if (command === "DEL") return await delNetwork(net, attachment, ctx);
    const outcome = await addNetwork(net, attachment, ctx);
    if (!outcome.ok) throw outcome.error;
  }

  /** DEL for cached entries, each with its own configuration, version, arguments and result; removes them. */
  async #detachEntries(entries: CacheEntry[], netnsPath: string | undefined, ctx: ChainContext): Promise<void> {
    const errors: Error[] = [];
    for (const entry of entries) {
      try {
        const parsed = parseNetworkConfigObject(entry.config);
        if (!parsed.ok) throw new DavitError("Internal", `cached network configuration is invalid: ${parsed.reason}`);
        const netns = netnsPath ?? entry.netns;
        const attachment: Attachment = {
          containerId: entry.containerId,
          netns: (await this.#exec.isNetns(netns)) ? netns : "",
          ifname: entry.ifname,
          cniArgs: entry.cniArgs,
          capabilityArgs: entry.capabilityArgs,
        };
        await delNetwork({ config: parsed.config, version: entry.version }, attachment, ctx, {
          ...(entry.result ? { prevResult: entry.result } : {}),
        });
        await this.#cache.remove(entry.network, entry.containerId, entry.ifname);
      } catch (err) {
        errors.push(err as Error);
      }
    }
    if (errors.length > 0) {
      throw combine(`Cannot tear down the network of pod sandbox ${entries[0]!.containerId}`, errors);
    }
  }

  /**
   * Detaches a pod: DEL (reverse chain order) for every cached attachment with the configuration and result
   * recorded at ADD, whatever the configuration directory says now; without a cache entry, DEL with the current
   * configuration. A namespace that is already gone is not passed (CNI_NETNS is optional for DEL), and plugins
   * release what they hold. Idempotent: tearing down a pod twice is fine.
   */
  async tearDownPod(pod: PodNetworkTeardown, opts: CallOptions = {}): Promise<void> {
    checkCniName("pod sandbox ID", pod.id);
    await this.#watcher.loaded();
    await this.#locks.withKey(pod.id, async () => {
      const ctx = this.#ctx(opts.signal);
      const cached = await this.#cache.list(pod.id);
      const errors: Error[] = [];
      if (cached.entries.length > 0) {
        await this.#detachEntries(cached.entries, pod.netnsPath, ctx).catch((err) => errors.push(err));
      }
      const current = this.#watcher.current();
      const covered = cached.entries.some((e) => e.network === current?.config.name);
      if (cached.entries.length === 0 || (cached.invalid.length > 0 && !covered)) {
        if (current) {
          try {
            const alive = pod.netnsPath !== undefined && await this.#exec.isNetns(pod.netnsPath);
            const attachment = this.#attachment(pod, alive ? pod.netnsPath! : "", this.#ifname);
            await delNetwork(await this.#resolve(current.config, ctx), attachment, ctx);
            for (const path of cached.invalid) await this.#cache.removeFile(path);
          } catch (err) {
            errors.push(err as Error);
          }
        } else {
          this.#log.warn("no cached CNI attachment and no network configuration: nothing to DEL", { pod: pod.id });
        }
      }
      const netns = pod.netnsPath ?? cached.entries[0]?.netns;
      if (this.#opts.loopback !== false && netns && await this.#exec.isNetns(netns)) {
        // lo disappears with the namespace; bringing it down is a courtesy, so errors are only logged.
        await this.#loopback("DEL", pod, netns, ctx).catch((err) =>
          this.#log.warn("loopback DEL failed", { pod: pod.id, error: err as Error })
        );
      }
      if (errors.length > 0) throw combine(`Cannot tear down the network of pod sandbox ${pod.id}`, errors);
      this.#log.info("pod network torn down", { pod: pod.id });
    });
  }

  /**
   * CHECK for the pod's cached attachments (skipped for versions before 0.4.0 and lists with `disableCheck`).
   * Throws NotFound when the pod has no completed attachment, FailedPrecondition when its namespace is gone.
   */
  async checkPod(pod: PodIdentity & { netnsPath: string }, opts: CallOptions = {}): Promise<void> {
    checkCniName("pod sandbox ID", pod.id);
    await this.#locks.withKey(pod.id, async () => {
      const entries = (await this.#cache.list(pod.id)).entries.filter((e) => e.state === "added" && e.result);
      if (entries.length === 0) throw new NotFound(`pod sandbox ${pod.id} has no recorded network attachment`);
      if (!(await this.#exec.isNetns(pod.netnsPath))) {
        throw new FailedPrecondition(`network namespace ${pod.netnsPath} of pod sandbox ${pod.id} is gone`);
      }
      const ctx = this.#ctx(opts.signal);
      for (const entry of entries) {
        const parsed = parseNetworkConfigObject(entry.config);
        if (!parsed.ok) throw new DavitError("Internal", `cached network configuration is invalid: ${parsed.reason}`);
        await checkNetwork(
          { config: parsed.config, version: entry.version },
          {
            containerId: pod.id,
            netns: pod.netnsPath,
            ifname: entry.ifname,
            cniArgs: entry.cniArgs,
            capabilityArgs: entry.capabilityArgs,
          },
          ctx,
          entry.result!,
        );
      }
    });
  }

  /** The pod's attachment as recorded in the cache (after a daemon restart too), if it completed. */
  async cachedStatus(podId: string): Promise<PodNetworkStatus | undefined> {
    checkCniName("pod sandbox ID", podId);
    const entry = (await this.#cache.list(podId)).entries.find((e) => e.state === "added" && e.result);
    if (!entry) return undefined;
    const parsed = parseResult(entry.result);
    if (!parsed.ok) return undefined;
    return { ips: podIps(parsed.result).all, result: parsed.result, network: entry.network };
  }

  /** Pod IDs that have cached attachments (complete or interrupted). */
  cachedPods(): Promise<string[]> {
    return this.#cache.containers();
  }

  /**
   * Reconciliation: tears down every cached attachment whose pod is not in `validPodIds`, then, for a 1.1.0
   * network without `disableGC`, runs GC with the remaining attachments while no ADD or DEL is in flight.
   */
  async gc(validPodIds: Iterable<string>, opts: CallOptions = {}): Promise<void> {
    const valid = new Set(validPodIds);
    const errors: Error[] = [];
    for (const id of await this.#cache.containers()) {
      if (valid.has(id)) continue;
      this.#log.info("tearing down a stale CNI attachment", { pod: id });
      // Identity fields are only needed without a cache entry, and this pod has one.
      await this.tearDownPod({ id, name: "", namespace: "", uid: "" }, opts).catch((err) => errors.push(err));
    }
    const current = this.#watcher.current();
    if (current) {
      await this.#locks.exclusive(async () => {
        const ctx = this.#ctx(opts.signal);
        const net = await this.#resolve(current.config, ctx);
        const attachments: { containerID: string; ifname: string }[] = [];
        for (const id of await this.#cache.containers()) {
          for (const e of (await this.#cache.list(id)).entries) {
            if (e.network === net.config.name) attachments.push({ containerID: e.containerId, ifname: e.ifname });
          }
        }
        await gcNetwork(net, attachments, ctx).catch((err) => errors.push(err));
      });
    }
    if (errors.length > 0) throw combine("CNI garbage collection failed", errors);
  }

  /** Stops watching the network directory. */
  async close(): Promise<void> {
    await this.#watcher.close();
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
