/**
 * Interactive exec over a runc-compatible command line: the runtime's `exec` runs in the foreground, where it
 * waits for the process and exits with its code, and the caller gets live streams.
 *
 * Without a terminal the streams are the runtime's piped stdio. With one, the terminal is a pty the daemon opens
 * itself, whose slave becomes the runtime's stdin, stdout and stderr for a process with `terminal: true`; not the
 * `--console-socket` hand-over: runc (1.1) takes a console socket only with `--detach` ("cannot use console
 * socket if runc will not detach or allocate tty"), and a detached process is reparented away from the daemon
 * (which is no subreaper), so its exit code would be lost. In the foreground runc relays between the container's
 * terminal and its own, copies its terminal's size into the container's at start and on SIGWINCH, and puts its
 * terminal in raw mode, so bytes pass through unchanged; runsc hands the terminal itself to its sandbox. A shell
 * opens the slave by path for the runtime, since Deno cannot hand a raw descriptor to a child.
 * @module
 */
import { Unavailable } from "../lib/errors.ts";
import { markCloseOnExec } from "../lib/libc.ts";
import { openPty, type Pty, type PtyPair } from "../lib/pty.ts";
import type { InteractiveExec, InteractiveExecOptions } from "./oci_runtime.ts";

/** What the runtime handler supplies to {@link startInteractiveExec}. */
export interface InteractiveExecLaunch {
  /** Names the exec in messages, e.g. `runc exec 3f9c`. */
  what: string;
  /**
   * The runtime's full argv (binary first) writing its log to `logPath` and the process's PID to `pidFile`; it
   * may write files such as a process.json into `dir`, the exec's private temporary directory.
   */
  argv(files: ExecFiles): string[] | Promise<string[]>;
  /**
   * The error for a finished runtime whose log shows it failed itself (not the process's own non-zero exit), or
   * undefined when the exit code is the process's.
   */
  failure(exitCode: number, log: string): Promise<Error | undefined>;
  /**
   * Kills the process by the PID the runtime wrote to `internalPidFile`, for a runtime whose `pidFile` PID is not
   * the process (runsc: it is runsc's own exec process, and killing it leaves the process running in the sandbox).
   * Without it, the PID in `pidFile` gets SIGKILL.
   */
  killInternal?(pid: number): Promise<void>;
  /**
   * The runtime relays between the daemon's terminal and the container's (runc, crun): the daemon's side is put in
   * raw mode first, so ^D and other control bytes reach the container's terminal instead of being taken by this
   * one before the runtime sets it raw. False for runsc, which hands the terminal itself to the sandbox.
   */
  relaysTerminal?: boolean;
  /** Parent of the exec's private temporary directory; the system's by default. */
  tmpDir?: string;
}

/** The files of one exec, all inside its private temporary directory `dir`. */
export interface ExecFiles {
  dir: string;
  /** The runtime's log (`--log`). */
  logPath: string;
  /** `--pid-file`: the process's host PID. */
  pidFile: string;
  /** runsc's `--internal-pid-file`: the process's PID inside the sandbox. */
  internalPidFile: string;
}

/** Opens the terminal's slave by path as stdin, stdout and stderr, then becomes the runtime (argv: path, cmd...). */
const ON_TERMINAL = 'exec "$@" 0<>"$0" 1>&0 2>&0';
/**
 * The process object of a terminal exec: the container's own (`config` is its config.json), as the runtime builds
 * one from a command line, with `args`, `terminal: true`, and the size the runtime sets before the process runs.
 * runsc has no `--tty` flag and takes a terminal only from a process object, so every runtime gets one.
 */
export function terminalProcess(
  config: unknown,
  args: string[],
  size: { cols: number; rows: number } | undefined,
): Record<string, unknown> {
  const base = typeof config === "object" && config !== null ? (config as Record<string, unknown>).process : undefined;
  if (typeof base !== "object" || base === null) throw new TypeError("config.json has no process object");
  const process: Record<string, unknown> = { ...base as Record<string, unknown>, args, terminal: true };
  delete process.consoleSize;
  if (size !== undefined && size.cols > 0 && size.rows > 0) {
    process.consoleSize = { height: size.rows, width: size.cols };
  }
  return process;
}

/** End of transmission: end of file for a terminal reader in canonical mode. */
const EOT = new Uint8Array([4]);
/** How long `kill` waits for the runtime to write the process's PID before killing only the runtime. */
const PID_WAIT_MS = 2_000;
/** How long `kill` lets the runtime reap the killed process and exit before killing the runtime too. */
const RUNTIME_EXIT_GRACE_MS = 2_000;

/** Starts `launch` for `opts`; see the module comment. */
export async function startInteractiveExec(
  launch: InteractiveExecLaunch,
  opts: InteractiveExecOptions,
): Promise<InteractiveExec> {
  opts.signal?.throwIfAborted();
  const dir = await Deno.makeTempDir({ prefix: "davit-iexec-", ...(launch.tmpDir ? { dir: launch.tmpDir } : {}) });
  const files: ExecFiles = {
    dir,
    logPath: `${dir}/runtime.log`,
    pidFile: `${dir}/pid`,
    internalPidFile: `${dir}/internal.pid`,
  };
  let pair: PtyPair | undefined;
  try {
    const argv = await launch.argv(files);
    let child: Deno.ChildProcess;
    if (opts.tty) {
      pair = openPty({
        raw: launch.relaysTerminal ?? true,
        ...(opts.initialSize !== undefined ? { size: opts.initialSize } : {}),
      });
      markCloseOnExec();
      child = new Deno.Command("/bin/sh", {
        args: ["-c", ON_TERMINAL, pair.slavePath, ...argv],
        stdin: "null",
        stdout: "null",
        // Only the shell's own complaint (the terminal would not open) arrives here: the runtime's stderr is the tty.
        stderr: "piped",
      }).spawn();
    } else {
      const [cmd, ...args] = argv;
      if (cmd === undefined) throw new TypeError(`${launch.what}: empty argv`);
      markCloseOnExec();
      child = new Deno.Command(cmd, {
        args,
        stdin: opts.stdin ? "piped" : "null",
        stdout: opts.stdout ? "piped" : "null",
        stderr: opts.stderr ? "piped" : "null",
      }).spawn();
    }
    return new RuntimeExec(launch, opts, { ...files, child, pair });
  } catch (err) {
    pair?.slave.close();
    await pair?.master.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) {
      throw new Unavailable(`${launch.what}: cannot run the runtime: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

interface Started extends ExecFiles {
  child: Deno.ChildProcess;
  pair: PtyPair | undefined;
}

class RuntimeExec implements InteractiveExec {
  readonly stdin: WritableStream<Uint8Array> | null;
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
  readonly exited: Promise<{ exitCode: number }>;
  readonly #s: Started;
  readonly #what: string;
  readonly #launch: InteractiveExecLaunch;
  readonly #signal: AbortSignal | undefined;
  readonly #outputs: Releasable[] = [];
  #releaseStdin: () => Promise<void> = () => Promise.resolve();
  /** Drains an unrequested terminal output so the process never blocks on it. */
  #drain: Promise<void> | undefined;
  #runtimeDone = false;
  #ptyEnded = false;
  #ptyClosing: Promise<void> | undefined;
  #killing: Promise<void> | undefined;
  readonly #onAbort = () => void this.kill().catch(() => {});

  constructor(launch: InteractiveExecLaunch, opts: InteractiveExecOptions, s: Started) {
    this.#s = s;
    this.#what = launch.what;
    this.#launch = launch;
    const pty = s.pair?.master;
    if (pty !== undefined) {
      this.stdin = opts.stdin ? terminalInput(pty) : null;
      this.stderr = null;
      if (opts.stdout) {
        const out = releasable(pty.readable, () => this.#terminalEnded());
        this.#outputs.push(out);
        this.stdout = out.stream;
      } else {
        this.stdout = null;
        this.#drain = pty.readable.pipeTo(new WritableStream()).catch(() => {}).then(() => this.#terminalEnded());
      }
    } else {
      if (opts.stdin) {
        const w = s.child.stdin.getWriter();
        this.#releaseStdin = () => w.abort().catch(() => {});
        this.stdin = new WritableStream<Uint8Array>({
          write: (chunk) => w.write(chunk),
          close: () => w.close(),
          abort: (reason) => w.abort(reason),
        });
      } else {
        this.stdin = null;
      }
      this.stdout = opts.stdout ? this.#output(s.child.stdout) : null;
      this.stderr = opts.stderr ? this.#output(s.child.stderr) : null;
    }
    this.#signal = opts.signal;
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.exited = this.#watch();
    // Callers that only kill() must not see an unhandled rejection; awaiting callers still get it.
    this.exited.catch(() => {});
    if (this.#signal?.aborted) this.#onAbort();
  }

  #output(src: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const out = releasable(src);
    this.#outputs.push(out);
    return out.stream;
  }

  async #watch(): Promise<{ exitCode: number }> {
    const { child, pair } = this.#s;
    const [status, shellError] = await Promise.all([
      child.status,
      pair !== undefined ? new Response(child.stderr).text() : Promise.resolve(""),
    ]);
    this.#runtimeDone = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    // The process's input is useless now; its output may still be in flight and is left to the reader.
    await this.#releaseStdin();
    // Our copy of the slave was the last: the master now drains and ends with EIO.
    pair?.slave.close();
    try {
      const log = await Deno.readTextFile(this.#s.logPath).catch(() => undefined);
      // The shell complains on the piped stderr when the terminal would not open, and exits 126 or 127 when the
      // runtime would not run (its complaint then went to the terminal); the runtime never wrote its log.
      if (pair !== undefined && (shellError.trim() !== "" || (log === undefined && status.code >= 126))) {
        const why = shellError.trim() || `exit code ${status.code}`;
        throw new Unavailable(`${this.#what}: the runtime did not start on the terminal: ${why}`);
      }
      const failed = await this.#launch.failure(status.code, log ?? "");
      if (failed !== undefined) throw failed;
      return { exitCode: status.code };
    } finally {
      await Deno.remove(this.#s.dir, { recursive: true }).catch(() => {});
      if (this.#ptyEnded) await this.#closePty();
    }
  }

  #terminalEnded(): void {
    this.#ptyEnded = true;
    if (this.#runtimeDone) void this.#closePty();
  }

  #closePty(): Promise<void> {
    this.#ptyClosing ??= (async () => {
      this.#s.pair?.slave.close();
      await this.#s.pair?.master.close();
      await this.#drain;
    })();
    return this.#ptyClosing;
  }

  resize(cols: number, rows: number): Promise<void> {
    return Promise.resolve().then(() => {
      const pty: Pty | undefined = this.#s.pair?.master;
      if (pty === undefined || pty.closed || this.#runtimeDone) return;
      pty.resize(cols, rows);
      // The slave is not the runtime's controlling terminal, so the kernel's SIGWINCH does not reach it.
      signalQuietly(() => this.#s.child.kill("SIGWINCH"));
    });
  }

  kill(): Promise<void> {
    this.#killing ??= this.#kill();
    return this.#killing;
  }

  async #kill(): Promise<void> {
    if (!this.#runtimeDone) {
      const { killInternal } = this.#launch;
      const pid = await this.#waitPid(killInternal ? this.#s.internalPidFile : this.#s.pidFile);
      if (pid !== undefined && !this.#runtimeDone) {
        if (killInternal) await killInternal(pid).catch(() => {});
        else signalQuietly(() => Deno.kill(pid, "SIGKILL"));
        // The runtime reaps the process and exits with its status; killing the runtime first would orphan it.
        await within(this.exited, RUNTIME_EXIT_GRACE_MS);
      }
      if (!this.#runtimeDone) signalQuietly(() => this.#s.child.kill("SIGKILL"));
    }
    await this.exited.catch(() => {});
    await this.#releaseStdin();
    await Promise.all(this.#outputs.map((o) => o.release()));
    await this.#closePty();
  }

  /** The process's PID once the runtime wrote it to `path` (while the runtime runs, at most PID_WAIT_MS). */
  async #waitPid(path: string): Promise<number | undefined> {
    const deadline = Date.now() + PID_WAIT_MS;
    for (;;) {
      const pid = await readPid(path);
      if (pid !== undefined || this.#runtimeDone || Date.now() >= deadline) return pid;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Waits for `p` to settle, at most `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.catch(() => {}), new Promise((r) => timer = setTimeout(r, ms))]);
  clearTimeout(timer);
}

function signalQuietly(send: () => void): void {
  try {
    send();
  } catch {
    // already gone
  }
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await Deno.readTextFile(path)).trim(), 10);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The terminal's input as a stream: closing it sends EOT, which the container's terminal reads as end of file. */
function terminalInput(pty: Pty): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write: (chunk) => pty.write(chunk),
    close: () => pty.write(EOT),
  });
}

interface Releasable {
  stream: ReadableStream<Uint8Array>;
  /** Ends the stream (after what is queued) and releases its source, even while a read waits. */
  release(): Promise<void>;
}

/**
 * Wraps `src` so that kill() can end it even while the caller is reading: a process's background child may keep
 * a pipe (or the terminal) open long after the process itself exited.
 */
function releasable(src: ReadableStream<Uint8Array>, onEnd?: () => void): Releasable {
  const reader = src.getReader();
  let ended = false;
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  const end = () => {
    if (ended) return;
    ended = true;
    try {
      controller?.close();
    } catch {
      // cancelled by the reader
    }
    onEnd?.();
  };
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
    pull: async (c) => {
      const r = await reader.read().catch((err) => {
        if (!ended) {
          ended = true;
          c.error(err);
          onEnd?.();
        }
        return undefined;
      });
      if (r === undefined || ended) return;
      if (r.done) end();
      else c.enqueue(r.value);
    },
    cancel: async (reason) => {
      ended = true;
      await reader.cancel(reason);
      onEnd?.();
    },
  }, { highWaterMark: 0 });
  return {
    stream,
    release: async () => {
      if (!ended) end();
      await reader.cancel().catch(() => {});
    },
  };
}
