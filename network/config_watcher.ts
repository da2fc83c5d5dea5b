/**
 * Keeps the current network configuration: scans the network directory at start, again (debounced) whenever it
 * changes (Deno.watchFs), on demand, and by polling while the network is not ready or the directory cannot be
 * watched (it does not exist yet, or plugin binaries are still missing). Readiness flips without a restart.
 * @module
 */
import { errorMessage } from "../lib/errors.ts";
import { type Logger, logger } from "../lib/log.ts";
import type { NetworkConfigList } from "./cni_config.ts";
import { type CniExec, DenoCniExec } from "./cni_exec.ts";
import { checkRequiredPlugins, findNetworkConfig, type NetworkConfigLookup } from "./config_dir.ts";

/** The NetworkReady condition: `reason` and `message` are empty when ready. */
export interface NetworkReadiness {
  ok: boolean;
  /** `NetworkPluginNotReady` when not ready (the kubelet's and CRI-O's reason). */
  reason: string;
  message: string;
}

/** The selected configuration. */
export interface CurrentNetwork {
  path: string;
  config: NetworkConfigList;
}

/** Options for {@link NetworkConfigWatcher}. */
export interface NetworkConfigWatcherOptions {
  networkDir: string;
  pluginDirs: readonly string[];
  /** Network name to select ("" or absent = the first valid file). */
  defaultNetwork?: string;
  /** Plugins needed whatever the configuration (davit's loopback plugin). */
  requiredPlugins?: readonly string[];
  exec?: CniExec;
  log?: Logger;
  /** Quiet time after the last change event before re-scanning; default 200 ms. */
  debounceMs?: number;
  /** Re-scan interval while not ready or not watching; default 5000 ms. */
  pollMs?: number;
  /** Watch the directory (default true); without it only polling and {@link NetworkConfigWatcher.rescan}. */
  watch?: boolean;
  /** Called after a scan that changed the selected configuration or readiness. */
  onChange?: (current: CurrentNetwork | undefined, readiness: NetworkReadiness) => void;
}

const NOT_LOADED: NetworkReadiness = {
  ok: false,
  reason: "NetworkPluginNotReady",
  message: "Network plugin returns error: the CNI network configuration has not been loaded yet",
};

/** Watches the network directory and holds the current configuration. */
export class NetworkConfigWatcher {
  readonly #opts: NetworkConfigWatcherOptions;
  readonly #exec: CniExec;
  readonly #log: Logger;
  #current: CurrentNetwork | undefined;
  #readiness: NetworkReadiness = NOT_LOADED;
  #fingerprint = "";
  #queue: Promise<void> = Promise.resolve();
  #loaded: Promise<void>;
  #watcher: Deno.FsWatcher | undefined;
  readonly #loops = new Set<Promise<void>>();
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #poll: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(opts: NetworkConfigWatcherOptions) {
    this.#opts = opts;
    this.#exec = opts.exec ?? new DenoCniExec();
    this.#log = opts.log ?? logger("network");
    this.#loaded = this.rescan().then(() => {});
  }

  /** Resolves once the first scan has finished. */
  loaded(): Promise<void> {
    return this.#loaded;
  }

  /** The selected configuration, if there is a valid one. */
  current(): CurrentNetwork | undefined {
    return this.#current;
  }

  /** Whether the pod network is ready, with the reason and a message naming the directory when it is not. */
  ready(): NetworkReadiness {
    return this.#readiness;
  }

  /** Scans the directory now (scans are serialised) and returns the resulting readiness. */
  rescan(): Promise<NetworkReadiness> {
    this.#queue = this.#queue.then(() => this.#scan()).catch((err) => {
      this.#log.error("CNI configuration scan failed", { error: errorMessage(err) });
    });
    return this.#queue.then(() => this.#readiness);
  }

  async #scan(): Promise<void> {
    if (this.#closed) return;
    const o = this.#opts;
    const lookup: NetworkConfigLookup = await findNetworkConfig(o.networkDir, {
      pluginDirs: o.pluginDirs,
      exec: this.#exec,
      log: this.#log,
      ...(o.defaultNetwork ? { defaultNetwork: o.defaultNetwork } : {}),
    });
    const missing = lookup.ok
      ? await checkRequiredPlugins(o.requiredPlugins ?? [], o.pluginDirs, this.#exec)
      : undefined;
    if (this.#closed) return;
    if (lookup.ok && !missing) {
      this.#current = { path: lookup.path, config: lookup.config };
      this.#readiness = { ok: true, reason: "", message: "" };
    } else {
      this.#current = undefined;
      const why = lookup.ok ? `${missing} (network configuration ${lookup.path})` : lookup.reason;
      this.#readiness = { ok: false, reason: "NetworkPluginNotReady", message: `Network plugin returns error: ${why}` };
    }
    const fingerprint = JSON.stringify([this.#current?.path, this.#current?.config.raw, this.#readiness]);
    if (fingerprint !== this.#fingerprint) {
      this.#fingerprint = fingerprint;
      if (this.#current) {
        this.#log.info("CNI network configuration selected", {
          path: this.#current.path,
          network: this.#current.config.name,
        });
      } else this.#log.warn("pod network not ready", { reason: this.#readiness.message });
      o.onChange?.(this.#current, this.#readiness);
    }
    this.#arm(lookup);
  }

  /** (Re)starts watching when the directory exists, and polls while not ready or not watching. */
  #arm(lookup: NetworkConfigLookup): void {
    if (this.#closed) return;
    const dirMissing = !lookup.ok && lookup.reason.includes(" does not exist");
    if (dirMissing && this.#watcher) this.#stopWatching();
    if (!dirMissing && !this.#watcher && this.#opts.watch !== false) this.#startWatching();
    clearTimeout(this.#poll);
    this.#poll = undefined;
    if (!this.#readiness.ok || !this.#watcher) {
      this.#poll = setTimeout(() => void this.rescan(), this.#opts.pollMs ?? 5000);
    }
  }

  #startWatching(): void {
    let watcher: Deno.FsWatcher;
    try {
      watcher = Deno.watchFs(this.#opts.networkDir, { recursive: false });
    } catch (err) {
      this.#log.debug("cannot watch the CNI network directory; polling", { error: errorMessage(err) });
      return;
    }
    this.#watcher = watcher;
    const loop = (async () => {
      try {
        for await (const _event of watcher) this.#changed();
      } catch {
        // The watcher broke (directory removed): the next scan decides what to do.
      }
      if (this.#watcher === watcher) {
        this.#watcher = undefined;
        this.#changed();
      }
    })();
    this.#loops.add(loop);
    void loop.finally(() => this.#loops.delete(loop));
  }

  #stopWatching(): void {
    const w = this.#watcher;
    this.#watcher = undefined;
    try {
      w?.close();
    } catch {
      // Already closed.
    }
  }

  #changed(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.rescan();
    }, this.#opts.debounceMs ?? 200);
  }

  /** Stops watching and polling. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearTimeout(this.#poll);
    this.#stopWatching();
    await this.#queue;
    clearTimeout(this.#poll);
    await Promise.all(this.#loops);
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
