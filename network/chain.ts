/**
 * Executing a network configuration list over its plugin chain (SPEC.md section 3): ADD in order with each
 * result passed on as the next prevResult, DEL in reverse with the cached final result, CHECK and GC where the
 * version allows, VERSION probing for version negotiation. All host calls go through {@link CniExec}.
 * @module
 */
import { DavitError, FailedPrecondition } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { NetworkConfigList } from "./cni_config.ts";
import { CniPluginError, interpretOutput, type PluginContext } from "./cni_errors.ts";
import type { CniExec } from "./cni_exec.ts";
import { type CniResult, convertResult, parseResult } from "./cni_result.ts";
import { selectVersion, supportsCheck, supportsGc, supportsPrevResultOnDel } from "./cni_version.ts";
import { type Attachment, type CniCommand, pluginEnv, pluginRequest } from "./plugin_request.ts";

/** Everything a chain execution needs from its caller. */
export interface ChainContext {
  exec: CniExec;
  pluginDirs: readonly string[];
  timeoutMs: number;
  /** PATH given to plugins (they run iptables and their IPAM plugins). */
  path: string;
  signal?: AbortSignal;
  log?: Logger;
}

/** A network list together with the protocol version selected for it. */
export interface ResolvedNetwork {
  config: NetworkConfigList;
  version: string;
}

/** Outcome of ADD over the chain: the final raw result, or the error and the last result obtained before it. */
export type AddOutcome =
  | { ok: true; result: Record<string, unknown>; parsed: CniResult }
  | { ok: false; error: Error; partialResult?: Record<string, unknown> };

/** Finds plugin `type` in the plugin directories or fails saying where it looked. */
export async function findPluginOrFail(ctx: ChainContext, type: string, network: string): Promise<string> {
  const path = await ctx.exec.findPlugin(type, ctx.pluginDirs);
  if (!path) {
    throw new FailedPrecondition(
      `CNI plugin ${JSON.stringify(type)} of network ${JSON.stringify(network)} not found in ${
        ctx.pluginDirs.join(", ") || "(no plugin directories)"
      }`,
    );
  }
  return path;
}

async function invoke(
  ctx: ChainContext,
  net: ResolvedNetwork,
  index: number,
  command: CniCommand,
  opts: {
    attachment?: Attachment;
    prevResult?: Record<string, unknown>;
    validAttachments?: { containerID: string; ifname: string }[];
  },
): Promise<unknown> {
  const plugin = net.config.plugins[index]!;
  const path = await findPluginOrFail(ctx, plugin.type, net.config.name);
  const request = pluginRequest(net.config, index, {
    command,
    version: net.version,
    ...(opts.prevResult ? { prevResult: opts.prevResult } : {}),
    ...(opts.attachment ? { capabilityArgs: opts.attachment.capabilityArgs } : {}),
    ...(opts.validAttachments ? { validAttachments: opts.validAttachments } : {}),
  });
  const env = pluginEnv(command, {
    ...(opts.attachment ? { attachment: opts.attachment } : {}),
    pluginDirs: ctx.pluginDirs,
    path: ctx.path,
  });
  const pctx: PluginContext = { plugin: plugin.type, command, network: net.config.name, timeoutMs: ctx.timeoutMs };
  if (opts.attachment) pctx.containerId = opts.attachment.containerId;
  const started = performance.now();
  const out = await ctx.exec.run({ path, env, stdin: JSON.stringify(request) }, {
    timeoutMs: ctx.timeoutMs,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  ctx.log?.debug("CNI plugin ran", {
    plugin: plugin.type,
    command,
    network: net.config.name,
    container: opts.attachment?.containerId,
    code: out.code,
    ms: Math.round(performance.now() - started),
  });
  return interpretOutput(out, pctx);
}

function invalidResult(net: ResolvedNetwork, type: string, attachment: Attachment, reason: string): CniPluginError {
  const ctx: PluginContext = {
    plugin: type,
    command: "ADD",
    network: net.config.name,
    containerId: attachment.containerId,
    timeoutMs: 0,
  };
  const msg = `returned an invalid result: ${reason}`;
  return new CniPluginError(
    "Internal",
    `CNI plugin ${JSON.stringify(type)} ADD on network ${JSON.stringify(net.config.name)} ${msg}`,
    { ctx, msg },
  );
}

/** ADD over the chain in order; each plugin gets the previous plugin's result as prevResult (none for the first). */
export async function addNetwork(net: ResolvedNetwork, attachment: Attachment, ctx: ChainContext): Promise<AddOutcome> {
  let prev: Record<string, unknown> | undefined;
  for (const [i, plugin] of net.config.plugins.entries()) {
    try {
      const json = await invoke(ctx, net, i, "ADD", { attachment, ...(prev ? { prevResult: prev } : {}) });
      if (json === undefined) throw invalidResult(net, plugin.type, attachment, "it printed nothing");
      const parsed = parseResult(json);
      if (!parsed.ok) throw invalidResult(net, plugin.type, attachment, parsed.reason);
      const raw = json as Record<string, unknown>;
      // A plugin must answer in the requested version; tolerate one that does not by converting.
      prev = parsed.result.cniVersion === net.version ? raw : convertResult(raw, net.version);
    } catch (err) {
      return { ok: false, error: err as Error, ...(prev ? { partialResult: prev } : {}) };
    }
  }
  const parsed = parseResult(prev);
  if (!parsed.ok) throw new Error(`unreachable: final result invalid: ${parsed.reason}`);
  return { ok: true, result: prev!, parsed: parsed.result };
}

function combine(what: string, errors: Error[]): Error {
  if (errors.length === 1) return errors[0]!;
  return new DavitError("Internal", `${what}: ${errors.map((e) => e.message).join("; ")}`, {
    cause: new AggregateError(errors),
  });
}

/**
 * DEL over the chain in reverse order, each plugin given the final ADD result as prevResult (from 0.4.0). By spec
 * the first error halts; `continueOnError` (used to roll back a failed ADD) runs every plugin anyway so earlier
 * plugins still release what they hold, then reports all errors.
 */
export async function delNetwork(
  net: ResolvedNetwork,
  attachment: Attachment,
  ctx: ChainContext,
  opts: { prevResult?: Record<string, unknown>; continueOnError?: boolean } = {},
): Promise<void> {
  const prevResult = opts.prevResult && supportsPrevResultOnDel(net.version)
    ? convertResult(opts.prevResult, net.version)
    : undefined;
  const errors: Error[] = [];
  for (let i = net.config.plugins.length - 1; i >= 0; i--) {
    try {
      await invoke(ctx, net, i, "DEL", { attachment, ...(prevResult ? { prevResult } : {}) });
    } catch (err) {
      if (!opts.continueOnError) throw err;
      errors.push(err as Error);
    }
  }
  if (errors.length > 0) throw combine(`DEL of network ${JSON.stringify(net.config.name)} failed`, errors);
}

/**
 * CHECK over the chain in order with the final ADD result as prevResult. Returns false without running anything
 * when the version has no CHECK (before 0.4.0) or the list sets `disableCheck`.
 */
export async function checkNetwork(
  net: ResolvedNetwork,
  attachment: Attachment,
  ctx: ChainContext,
  prevResult: Record<string, unknown>,
): Promise<boolean> {
  if (!supportsCheck(net.version) || net.config.disableCheck) return false;
  const prev = convertResult(prevResult, net.version);
  for (let i = 0; i < net.config.plugins.length; i++) {
    await invoke(ctx, net, i, "CHECK", { attachment, prevResult: prev });
  }
  return true;
}

/**
 * GC over the chain with the still-valid attachments, continuing past errors and reporting them all. Returns false
 * without running anything before 1.1.0 or when the list sets `disableGC`.
 */
export async function gcNetwork(
  net: ResolvedNetwork,
  validAttachments: { containerID: string; ifname: string }[],
  ctx: ChainContext,
): Promise<boolean> {
  if (!supportsGc(net.version) || net.config.disableGC) return false;
  const errors: Error[] = [];
  for (let i = 0; i < net.config.plugins.length; i++) {
    try {
      await invoke(ctx, net, i, "GC", { validAttachments });
    } catch (err) {
      errors.push(err as Error);
    }
  }
  if (errors.length > 0) throw combine(`GC of network ${JSON.stringify(net.config.name)} failed`, errors);
  return true;
}

/** Asks one plugin binary which spec versions it supports (the VERSION command). */
export async function probePluginVersions(ctx: ChainContext, path: string, type: string): Promise<string[]> {
  const out = await ctx.exec.run({
    path,
    env: pluginEnv("VERSION", { pluginDirs: ctx.pluginDirs, path: ctx.path }),
    stdin: JSON.stringify({ cniVersion: "1.0.0" }),
  }, { timeoutMs: ctx.timeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  const json = interpretOutput(out, { plugin: type, command: "VERSION", network: "", timeoutMs: ctx.timeoutMs });
  const versions = (json as { supportedVersions?: unknown } | undefined)?.supportedVersions;
  if (!Array.isArray(versions) || versions.some((v) => typeof v !== "string")) {
    throw new FailedPrecondition(`CNI plugin ${JSON.stringify(type)} VERSION did not list supportedVersions`);
  }
  return versions as string[];
}

/**
 * Selects the protocol version for a list: the only version it declares, or, when it declares several
 * (`cniVersions`), the highest one every plugin in the chain supports according to `probe`.
 */
export async function negotiateVersion(
  config: NetworkConfigList,
  ctx: ChainContext,
  probe: (path: string, type: string) => Promise<string[]>,
): Promise<string> {
  if (config.versions.length === 1) return config.versions[0]!;
  const support: string[][] = [];
  for (const plugin of config.plugins) {
    support.push(await probe(await findPluginOrFail(ctx, plugin.type, config.name), plugin.type));
  }
  const version = selectVersion(config.versions, support);
  if (!version) {
    throw new FailedPrecondition(
      `network ${JSON.stringify(config.name)} declares CNI versions ${config.versions.join(", ")} but its plugins ` +
        `support only ${config.plugins.map((p, i) => `${p.type}: ${support[i]!.join(", ")}`).join("; ")}`,
    );
  }
  return version;
}
