/**
 * The host calls CNI needs, behind one narrow interface: find a plugin binary, run it, tell whether a path is a
 * network namespace. {@link DenoCniExec} is the real thing; tests inject a recording fake.
 * @module
 */
import type { PluginOutput } from "./cni_errors.ts";
import { markCloseOnExec } from "../lib/libc.ts";

/** One plugin run: the binary, its entire environment, and the JSON for stdin. */
export interface PluginInvocation {
  path: string;
  env: Record<string, string>;
  stdin: string;
}

/** Host calls used by the CNI code. */
export interface CniExec {
  /** The path of plugin `type` in the first of `dirs` that holds an executable of that name. */
  findPlugin(type: string, dirs: readonly string[]): Promise<string | undefined>;
  /**
   * Runs a plugin to completion. A run past `timeoutMs` is killed (with anything it started) and reported with
   * `timedOut`; an aborted `signal` kills it too and rejects with the signal's reason.
   */
  run(inv: PluginInvocation, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<PluginOutput>;
  /** True when `path` is a namespace file (a bind mount of one, or /proc/<pid>/ns/net) rather than a stale path. */
  isNetns(path: string): Promise<boolean>;
}

const OUTPUT_LIMIT = 4 << 20;
/** How long pipes may stay open after the plugin exited (a helper it forked may hold them). */
const PIPE_GRACE_MS = 2000;

function collect(stream: ReadableStream<Uint8Array>): { text: Promise<string>; cancel: () => void } {
  const reader = stream.getReader();
  const text = (async () => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const take = value.subarray(0, Math.max(0, OUTPUT_LIMIT - size));
        chunks.push(take);
        size += take.length;
      }
    } catch {
      // Cancelled or broken pipe: keep what was read.
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all);
  })();
  return { text, cancel: () => void reader.cancel().catch(() => {}) };
}

function killGroup(pid: number): void {
  // The plugin leads its own process group (spawned detached, so setsid), which also holds what it started
  // (iptables, the IPAM plugin); killing the group leaves nothing running.
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** Runs plugins with Deno.Command: cleared environment, stdin JSON, a timeout that kills the process group. */
export class DenoCniExec implements CniExec {
  async findPlugin(type: string, dirs: readonly string[]): Promise<string | undefined> {
    if (type === "" || type.includes("/")) return undefined;
    for (const dir of dirs) {
      const path = `${dir.replace(/\/+$/, "")}/${type}`;
      try {
        const st = await Deno.stat(path);
        if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return path;
      } catch {
        // Not in this directory.
      }
    }
    return undefined;
  }

  async run(inv: PluginInvocation, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<PluginOutput> {
    opts.signal?.throwIfAborted();
    markCloseOnExec();
    const child = new Deno.Command(inv.path, {
      env: inv.env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      detached: true,
    }).spawn();
    const stdout = collect(child.stdout);
    const stderr = collect(child.stderr);
    let timedOut = false;
    let aborted = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, opts.timeoutMs);
    const onAbort = () => {
      aborted = true;
      killGroup(child.pid);
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const writer = child.stdin.getWriter();
    const fed = writer.write(new TextEncoder().encode(inv.stdin)).then(() => writer.close()).catch(() => {
      // The plugin exited without reading its input; its exit status tells the story.
    });
    let status: Deno.CommandStatus;
    try {
      status = await child.status;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    }
    await fed;
    const grace = setTimeout(() => {
      stdout.cancel();
      stderr.cancel();
    }, timedOut || aborted ? 0 : PIPE_GRACE_MS);
    const [out, err] = await Promise.all([stdout.text, stderr.text]);
    clearTimeout(grace);
    if (aborted) throw opts.signal?.reason ?? new Error("aborted");
    return { code: status.code, signal: status.signal, stdout: out, stderr: err, timedOut };
  }

  async isNetns(path: string): Promise<boolean> {
    if (!path) return false;
    try {
      // Every namespace file lives on nsfs, so it shares the device number of our own namespace's file; a bind
      // mount point left behind after an unmount is an ordinary empty file on another device.
      const [target, own] = await Promise.all([Deno.stat(path), Deno.stat("/proc/self/ns/net")]);
      return target.dev === own.dev && target.ino !== null;
    } catch {
      return false;
    }
  }
}
