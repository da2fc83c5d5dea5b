/**
 * Running the host tools runtime/ drives (OCI runtimes, unshare, nsenter): one subprocess with a deadline, its
 * output captured up to a cap, and errors that name the command. Children get only stdin/stdout/stderr (Deno
 * opens everything else close-on-exec).
 * @module
 */
import { DeadlineExceeded, Unavailable } from "../lib/errors.ts";
import { markCloseOnExec } from "../lib/libc.ts";

/** How a child's standard stream is connected. */
export type Stdio = "piped" | "inherit" | "null";

/** Options for {@link runCommand}. */
export interface RunCommandOptions {
  /** Names the command in errors, e.g. `runc start 3f9c`. */
  what: string;
  /** Killed with SIGKILL after this long; the call then throws {@link DeadlineExceeded}. */
  timeoutMs: number;
  /**
   * Runs at the deadline (or on abort) before the child is killed, e.g. to end a process the child waits for so
   * that the child reaps it and exits on its own. When it resolves true the child gets up to `stopGraceMs` to
   * exit before the SIGKILL; false (nothing was signalled) or a rejection means SIGKILL at once.
   */
  beforeKill?: () => Promise<boolean>;
  /** How long a child may take to exit after `beforeKill`. Default 2 s. */
  stopGraceMs?: number;
  /** Bytes written to the child's stdin (then closed); without it stdin is /dev/null or as `stdin` says. */
  input?: Uint8Array;
  stdin?: Stdio;
  stdout?: Stdio;
  stderr?: Stdio;
  /** Captured bytes kept per stream; the rest is read and dropped so the child never blocks. Default 1 MiB. */
  maxOutputBytes?: number;
  env?: Record<string, string>;
  cwd?: string;
  signal?: AbortSignal;
}

/** What a finished child left. */
export interface CommandResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** True when either stream passed `maxOutputBytes`. */
  truncated: boolean;
}

async function drain(stream: ReadableStream<Uint8Array> | null, max: number): Promise<[Uint8Array, boolean]> {
  if (stream === null) return [new Uint8Array(0), false];
  const chunks: Uint8Array[] = [];
  let kept = 0;
  let truncated = false;
  for await (const chunk of stream) {
    const room = max - kept;
    if (room <= 0) {
      truncated = true;
      continue;
    }
    const part = chunk.byteLength > room ? chunk.subarray(0, room) : chunk;
    if (part !== chunk) truncated = true;
    chunks.push(part);
    kept += part.byteLength;
  }
  const out = new Uint8Array(kept);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return [out, truncated];
}

/**
 * Runs `argv` to completion. A missing executable is {@link Unavailable}; a child still running at the deadline
 * is killed and reported as {@link DeadlineExceeded}; an aborted `signal` kills the child and rethrows its reason.
 * Either way `beforeKill` runs first, and the child may then exit on its own for a moment before the SIGKILL.
 * A non-zero exit is not an error here: callers read `code` and the captured stderr.
 */
export async function runCommand(argv: readonly string[], opts: RunCommandOptions): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new TypeError("runCommand: empty argv");
  opts.signal?.throwIfAborted();
  let child: Deno.ChildProcess;
  try {
    markCloseOnExec();
    child = new Deno.Command(cmd, {
      args,
      stdin: opts.input !== undefined ? "piped" : opts.stdin ?? "null",
      stdout: opts.stdout ?? "piped",
      stderr: opts.stderr ?? "piped",
      ...(opts.env !== undefined ? { env: opts.env } : {}),
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
    }).spawn();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) {
      throw new Unavailable(`${opts.what}: cannot run ${cmd}: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
  let timedOut = false;
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const { beforeKill } = opts;
      if (beforeKill !== undefined && !exited) {
        const signalled = await beforeKill().catch(() => false);
        if (signalled) await within(status, opts.stopGraceMs ?? 2000);
      }
      if (!exited) kill();
    })();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, opts.timeoutMs);
  opts.signal?.addEventListener("abort", stop, { once: true });
  try {
    const max = opts.maxOutputBytes ?? 1 << 20;
    const writing = opts.input !== undefined ? writeInput(child.stdin, opts.input) : Promise.resolve();
    const [[stdout, t1], [stderr, t2], st] = await Promise.all([
      drain(opts.stdout === undefined || opts.stdout === "piped" ? child.stdout : null, max),
      drain(opts.stderr === undefined || opts.stderr === "piped" ? child.stderr : null, max),
      status,
      writing,
    ]);
    if (timedOut) throw new DeadlineExceeded(`${opts.what}: timed out after ${formatMs(opts.timeoutMs)}`);
    opts.signal?.throwIfAborted();
    return { code: st.code, signal: st.signal, stdout, stderr, truncated: t1 || t2 };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", stop);
    // A stop under way finishes first: its beforeKill may still be running (it never rejects).
    await stopping;
  }
}

/** Waits for `p` to settle, at most `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([p.catch(() => {}), new Promise((r) => timer = setTimeout(r, ms))]);
  } finally {
    clearTimeout(timer);
  }
}

async function writeInput(stdin: WritableStream<Uint8Array>, input: Uint8Array): Promise<void> {
  const w = stdin.getWriter();
  try {
    await w.write(input);
    await w.close();
  } catch {
    // the child exited without reading everything; its status says why
  }
}

/** `1.5s`, `250ms`. */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)}s` : `${ms}ms`;
}
