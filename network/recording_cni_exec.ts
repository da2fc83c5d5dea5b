/**
 * A recording fake of {@link CniExec} for unit tests: scripted plugins by type, every invocation recorded with its
 * command, environment and parsed stdin; optionally delegating unscripted plugins to a real implementation.
 * @module
 */
import type { PluginOutput } from "./cni_errors.ts";
import type { CniExec, PluginInvocation } from "./cni_exec.ts";

/** One recorded plugin invocation. */
export interface RecordedCall {
  /** The plugin type (the binary's base name). */
  type: string;
  path: string;
  command: string;
  env: Record<string, string>;
  /** stdin parsed as JSON. */
  config: Record<string, unknown>;
}

/** A scripted plugin: returns what the process would have printed and its exit. */
export type FakePlugin = (call: RecordedCall) => Partial<PluginOutput> | Promise<Partial<PluginOutput>>;

/** A successful run printing `json` (nothing when undefined). */
export function pluginOk(json?: unknown): Partial<PluginOutput> {
  return { code: 0, stdout: json === undefined ? "" : JSON.stringify(json) };
}

/** A failed run printing a CNI error result. */
export function pluginError(code: number, msg: string, details?: string): Partial<PluginOutput> {
  return { code: 1, stdout: JSON.stringify({ cniVersion: "1.0.0", code, msg, ...(details ? { details } : {}) }) };
}

/**
 * A plugin that behaves like a well-mannered chained plugin: ADD returns its prevResult, or `result` (with the
 * request's cniVersion) when it is first in the chain; DEL and CHECK succeed silently.
 */
export function passthroughPlugin(result: Record<string, unknown>): FakePlugin {
  return (call) => {
    if (call.command !== "ADD") return pluginOk();
    return pluginOk(call.config.prevResult ?? { ...result, cniVersion: call.config.cniVersion });
  };
}

/** The fake. Plugins it does not script are looked up and run through `delegate`, if any. */
export class RecordingCniExec implements CniExec {
  readonly calls: RecordedCall[] = [];
  readonly plugins: Map<string, FakePlugin>;
  readonly #delegate: CniExec | undefined;
  readonly #netns: (path: string) => boolean;

  constructor(
    opts: { plugins?: Record<string, FakePlugin>; delegate?: CniExec; netns?: (path: string) => boolean } = {},
  ) {
    this.plugins = new Map(Object.entries(opts.plugins ?? {}));
    this.#delegate = opts.delegate;
    this.#netns = opts.netns ?? ((p) => p !== "");
  }

  /** The recorded calls as `COMMAND type` strings, for compact assertions. */
  get sequence(): string[] {
    return this.calls.map((c) => `${c.command} ${c.type}`);
  }

  findPlugin(type: string, dirs: readonly string[]): Promise<string | undefined> {
    if (this.plugins.has(type)) return Promise.resolve(`${(dirs[0] ?? "/fake").replace(/\/+$/, "")}/${type}`);
    return this.#delegate ? this.#delegate.findPlugin(type, dirs) : Promise.resolve(undefined);
  }

  async run(inv: PluginInvocation, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<PluginOutput> {
    const type = inv.path.slice(inv.path.lastIndexOf("/") + 1);
    let config: Record<string, unknown> = {};
    try {
      config = JSON.parse(inv.stdin);
    } catch {
      // VERSION may have an empty stdin.
    }
    const call: RecordedCall = { type, path: inv.path, command: inv.env.CNI_COMMAND ?? "", env: inv.env, config };
    this.calls.push(call);
    const plugin = this.plugins.get(type);
    if (!plugin) {
      if (!this.#delegate) throw new Error(`RecordingCniExec: no plugin ${type} scripted`);
      return this.#delegate.run(inv, opts);
    }
    const out = await plugin(call);
    return { code: 0, signal: null, stdout: "", stderr: "", timedOut: false, ...out };
  }

  isNetns(path: string): Promise<boolean> {
    return this.#delegate ? this.#delegate.isNetns(path) : Promise.resolve(this.#netns(path));
  }
}
