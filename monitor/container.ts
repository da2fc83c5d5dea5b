/**
 * One supervised container: `<runtime> create` with its stdio held by the monitor, its output copied into the CRI
 * log, its init reaped by pid, and its exit recorded (log drained first, then the exit file, then the answer).
 *
 * The runtime is started with pipes as its stdout and stderr; `runc create` hands them to the container's init
 * and exits, and the monitor keeps the read ends. Nothing runs in the container before `<runtime> start`, so the
 * runtime's own messages are kept out of the container log with `--log <bundle>/runtime.log --log-format json`,
 * and the pipes are copied into the log only once `create` succeeded (on failure their text explains it). A
 * container with a terminal gets it through `--console-socket` instead (terminal.ts, imported only then), and
 * the runtime's pipes serve only to explain a failure.
 * @module
 */
import { AlreadyExists, DeadlineExceeded, errorMessage, FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { isErrno, waitpidBlocking } from "../lib/libc.ts";
import type { Logger } from "../lib/log.ts";
import { decodeWaitStatus, exitReason, type ExitRecord, writeExitFile } from "./exit_file.ts";
import { formatTimestamp, nowNs } from "./log_format.ts";
import { LogWriter, pumpStream } from "./log_writer.ts";
import { cgroupsPathFromConfig, findOomCounter, type OomCounter } from "./oom.ts";
import type { AttachParams, ContainerState, ContainerStatus, CreateParams } from "./protocol.ts";
import { markCloseOnExec } from "../lib/libc.ts";
import { AttachConn } from "./attach_conn.ts";
import { type ContainerStdio, pipeStdio } from "./container_stdio.ts";
import { StdioHub } from "./stdio_hub.ts";
// Types only: the module itself is imported when a container with a terminal is created.
import type { ConsoleHandOver } from "./terminal.ts";

/** What every container of a monitor shares. */
export interface ContainerContext {
  /** `DIR/exits`. */
  exitsDir: string;
  log: Logger;
  /** How long to wait after the init's exit for the pipes to reach end of file before recording it. */
  drainGraceMs: number;
  /** Pids of processes the monitor spawned and Deno has not reaped yet (the orphan reaper leaves them alone). */
  spawned: Set<number>;
  /** A path for a new console socket, never handed out before by this monitor (in its 0700 directory). */
  consoleSocketPath: () => string;
}

/** How long a runtime's terminal may take to arrive once its `create` succeeded (it was sent before the exit). */
const TERMINAL_GRACE_MS = 5000;

/** Collects at most `max` bytes of a stream as text, giving up after `ms` (a leftover process may hold it). */
async function readSome(stream: ReadableStream<Uint8Array>, max: number, ms: number): Promise<string> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const timer = setTimeout(() => reader.cancel().catch(() => {}), ms);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size < max) chunks.push(value.subarray(0, max - size));
      size += value.byteLength;
    }
  } catch {
    // cancelled by the timer
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  const dec = new TextDecoder();
  return chunks.map((c) => dec.decode(c, { stream: true })).join("").trim();
}

/** The last error messages of a runtime's JSON log (`{"level":"error","msg":...}` lines). */
function runtimeLogErrors(path: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return "";
  }
  const msgs: string[] = [];
  for (const line of text.split("\n").slice(-20)) {
    try {
      const v = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if ((v.level === "error" || v.level === "fatal") && typeof v.msg === "string") msgs.push(v.msg);
    } catch {
      // not JSON: ignore
    }
  }
  return msgs.join("; ");
}

function readExe(pid: number): string | undefined {
  try {
    return Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

function readCgroupsPath(bundle: string): string | undefined {
  try {
    return cgroupsPathFromConfig(JSON.parse(Deno.readTextFileSync(`${bundle}/config.json`)));
  } catch {
    return undefined;
  }
}

/** A container created through this monitor. */
export class Container {
  readonly id: string;
  readonly pid: number;
  readonly createdAt: string;
  readonly #ctx: ContainerContext;
  readonly #writer: LogWriter;
  readonly #stdio: ContainerStdio;
  readonly #hub: StdioHub;
  readonly #initExe: string | undefined;
  readonly #exited: Promise<ExitRecord>;
  readonly #pumps: Promise<void>;
  #state: ContainerState = "created";
  #exit: ExitRecord | undefined;

  private constructor(
    p: CreateParams,
    ctx: ContainerContext,
    stdio: ContainerStdio,
    pid: number,
    writer: LogWriter,
    oom: OomCounter | undefined,
  ) {
    this.id = p.container_id;
    this.pid = pid;
    this.createdAt = formatTimestamp(nowNs());
    this.#ctx = ctx;
    this.#writer = writer;
    this.#stdio = stdio;
    this.#hub = new StdioHub({
      containerId: p.container_id,
      stdin: stdio.stdin,
      stdinOnce: p.stdin_once,
      ...(stdio.resize !== undefined ? { resize: stdio.resize } : {}),
      log: ctx.log,
    });
    this.#initExe = readExe(pid);
    const onError = (err: unknown, what: string) => ctx.log.warn("container log", { id: this.id, what, err });
    const hub = this.#hub;
    this.#pumps = Promise.all(
      stdio.outputs.map(({ name, stream }) =>
        pumpStream(stream, { name, writer, onError, onChunk: (c) => hub.output(name, c) })
      ),
    ).then(() => stdio.close());
    const baseline = oom?.read() ?? 0;
    this.#exited = this.#reap(oom, baseline);
  }

  /**
   * Runs `<runtime> create` for `p` and starts supervising the container; resolves once the runtime succeeded.
   * Throws DeadlineExceeded past `timeout_ms`, FailedPrecondition (AlreadyExists for a taken ID) when the runtime
   * refused or sent no terminal, InvalidArgument when the log file cannot be opened.
   */
  static async create(p: CreateParams, ctx: ContainerContext): Promise<Container> {
    let writer: LogWriter;
    try {
      writer = LogWriter.open(p.log_path, {
        maxSize: p.log_size_max,
        onError: (err, what) => ctx.log.warn("container log", { id: p.container_id, what, err }),
      });
    } catch (err) {
      throw new InvalidArgument(`Cannot open log file ${JSON.stringify(p.log_path)}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const pidFile = `${p.bundle}/pid`;
    const runtimeLog = `${p.bundle}/runtime.log`;
    const signal = AbortSignal.timeout(p.timeout_ms);
    const args = [...p.runtime_args, "--root", p.runtime_root, "--log", runtimeLog, "--log-format", "json"];
    args.push("create", "--bundle", p.bundle, "--pid-file", pidFile);
    const what = `${p.runtime_path} create ${JSON.stringify(p.container_id)}`;
    let consoleSock: ConsoleHandOver | undefined;
    let terminal: typeof import("./terminal.ts") | undefined;
    if (p.terminal) {
      try {
        terminal = await import("./terminal.ts");
        consoleSock = terminal.ConsoleHandOver.listen(ctx.consoleSocketPath(), signal);
      } catch (err) {
        writer.close();
        throw new FailedPrecondition(`Cannot listen for the terminal of ${what}: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      args.push("--console-socket", consoleSock.path);
    }
    args.push(p.container_id);
    // With a terminal, the runtime's stdin is not the container's: the terminal is.
    const pipedStdin = p.stdin && consoleSock === undefined;
    let child: Deno.ChildProcess;
    try {
      // The container inherits what runc inherits: nothing but its stdio.
      markCloseOnExec();
      child = new Deno.Command(p.runtime_path, {
        args,
        cwd: p.bundle,
        stdin: pipedStdin ? "piped" : "null",
        stdout: "piped",
        stderr: "piped",
        signal,
      }).spawn();
    } catch (err) {
      writer.close();
      await consoleSock?.abandon();
      throw new FailedPrecondition(`Cannot run ${p.runtime_path}: ${errorMessage(err)}`, { cause: err });
    }
    ctx.spawned.add(child.pid);
    const status = await child.status.finally(() => ctx.spawned.delete(child.pid));
    ctx.log.debug("runtime create", { id: p.container_id, code: status.code, signal: status.signal });
    if (!status.success) {
      const [out, err] = await Promise.all([readSome(child.stdout, 4096, 1000), readSome(child.stderr, 4096, 1000)]);
      if (pipedStdin) await child.stdin.close().catch(() => {});
      writer.close();
      await consoleSock?.abandon();
      if (signal.aborted) throw new DeadlineExceeded(`${what} did not finish within ${p.timeout_ms} ms`);
      const detail = runtimeLogErrors(runtimeLog) || err || out || `exit code ${status.code}`;
      if (/already exists|exists already/i.test(detail)) throw new AlreadyExists(`${what} failed: ${detail}`);
      throw new FailedPrecondition(`${what} failed: ${detail}`);
    }
    let stdio: ContainerStdio;
    if (consoleSock === undefined || terminal === undefined) {
      stdio = pipeStdio(child, p.stdin);
    } else {
      // The runtime's pipes went to no one but the runtime, which has exited: only a failure would need them.
      await Promise.all([child.stdout.cancel(), child.stderr.cancel()]).catch(() => {});
      try {
        const pty = await consoleSock.take(what, TERMINAL_GRACE_MS);
        stdio = terminal.terminalStdio(pty, { containerId: p.container_id, stdin: p.stdin, log: ctx.log });
      } catch (err) {
        writer.close();
        throw err;
      }
    }
    let pid: number;
    try {
      pid = Number(Deno.readTextFileSync(pidFile).trim());
      if (!Number.isSafeInteger(pid) || pid <= 0) throw new TypeError(`bad pid file content`);
    } catch (err) {
      writer.close();
      await stdio.close();
      throw new FailedPrecondition(
        `Cannot read the pid of container ${JSON.stringify(p.container_id)}: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
    const cgroupsPath = readCgroupsPath(p.bundle);
    const oom = cgroupsPath === undefined ? undefined : findOomCounter(cgroupsPath);
    if (oom === undefined) ctx.log.debug("no OOM counter", { id: p.container_id, cgroupsPath });
    return new Container(p, ctx, stdio, pid, writer, oom);
  }

  /** True until the exit is recorded. */
  get live(): boolean {
    return this.#exit === undefined;
  }

  /** The recorded exit, once there is one. */
  get exit(): ExitRecord | undefined {
    return this.#exit;
  }

  /** Resolves with the exit record once it is in its exit file. */
  wait(): Promise<ExitRecord> {
    return this.#exited;
  }

  /** The state: `created` until the init executed the container's program (its /proc exe changed). */
  status(): ContainerStatus {
    if (this.#state === "created" && this.#exit === undefined) {
      const exe = readExe(this.pid);
      if (exe !== undefined && exe !== this.#initExe) this.#state = "running";
    }
    const st: ContainerStatus = {
      container_id: this.id,
      state: this.#state,
      pid: this.pid,
      created_at: this.createdAt,
    };
    if (this.#exit !== undefined) {
      const { container_id: _, ...exit } = this.#exit;
      Object.assign(st, exit);
    }
    return st;
  }

  /** Reopens the log file at its path (the kubelet rotated it). */
  reopenLog(): void {
    try {
      this.#writer.reopen();
    } catch (err) {
      throw new FailedPrecondition(
        `Cannot reopen log file ${JSON.stringify(this.#writer.path)}: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
  }

  /**
   * Accepts an attach connection: queues `answer` (its ok line) and registers it for output, in this turn, so it
   * sees every chunk from now on; the caller then runs it. Throws FailedPrecondition once the container's init
   * has exited (as CRI-O refuses to attach to a stopped container), InvalidArgument for stdin when the container
   * was created without it.
   */
  attach(conn: Deno.Conn, p: AttachParams, answer: Uint8Array): AttachConn {
    if (this.#state === "exited") {
      throw new FailedPrecondition(`Cannot attach to container ${JSON.stringify(this.id)}: it has exited`);
    }
    if (p.stdin && !this.#hub.hasStdin) {
      throw new InvalidArgument(
        `Cannot attach to the stdin of container ${JSON.stringify(this.id)}: it was created without stdin`,
      );
    }
    const ac = new AttachConn(conn, answer, {
      containerId: this.id,
      hub: this.#hub,
      stdin: p.stdin,
      stdout: p.stdout,
      stderr: p.stderr,
      log: this.#ctx.log,
    });
    this.#hub.add(ac);
    return ac;
  }

  /**
   * Releases the log file and stdin of an exited container (forget). Pipes are still read to their end; a
   * terminal is closed (a process that escaped the container may still hold its slave).
   */
  release(): void {
    this.#writer.close();
    this.#hub.closeStdin();
    void this.#stdio.close();
  }

  async #reap(oom: OomCounter | undefined, baseline: number): Promise<ExitRecord> {
    let code: number;
    let signal: number | undefined;
    let message: string | undefined;
    try {
      ({ exitCode: code, signal } = decodeWaitStatus(await waitpidBlocking(this.pid)));
    } catch (err) {
      // Not our child (the monitor was not the subreaper when the runtime exited), or waitpid itself failed: the
      // status is lost. Wait for the process to go away so that at least the exit time is right.
      code = 255;
      message = isErrno(err, "ECHILD")
        ? `exit status unknown: pid ${this.pid} was not a child of the monitor`
        : `exit status unknown: ${errorMessage(err)}`;
      this.#ctx.log.error("cannot wait for container init", { id: this.id, pid: this.pid, err });
      await this.#pollGone();
    }
    const finishedAt = formatTimestamp(nowNs());
    // Drain the pipes first, so everything the container wrote is in the log before anyone hears of the exit.
    // A process that escaped the container's pid namespace may hold them open: wait only so long for that.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, this.#ctx.drainGraceMs));
    await Promise.race([this.#pumps, grace]);
    clearTimeout(timer);
    const after = oom?.read();
    const oomKilled = after !== undefined && after > baseline;
    const rec: ExitRecord = {
      container_id: this.id,
      exit_code: code,
      finished_at: finishedAt,
      reason: exitReason(code, oomKilled),
      oom_killed: oomKilled,
    };
    if (signal !== undefined) rec.signal = signal;
    if (message !== undefined) rec.message = message;
    try {
      writeExitFile(this.#ctx.exitsDir, rec);
    } catch (err) {
      this.#ctx.log.error("cannot write exit file", { id: this.id, err });
    }
    this.#exit = rec;
    // Only now "exited": a status asked while the pipes drain says running, never exited without its code.
    this.#state = "exited";
    // Attached sessions get EXIT after all the output they were sent, then their connections close.
    this.#hub.exit(rec);
    this.#pumps.then(() => this.#writer.close());
    this.#ctx.log.info("container exited", { id: this.id, pid: this.pid, code, signal, oom: oomKilled });
    return rec;
  }

  async #pollGone(): Promise<void> {
    for (;;) {
      try {
        const stat = Deno.readTextFileSync(`/proc/${this.pid}/stat`);
        if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return;
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
