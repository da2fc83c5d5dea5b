/**
 * {@link OciRuntime} over a runc-compatible command line (runc, crun, runsc): global flags, then the verb. The
 * runtime's own errors are read from JSON log lines (`--log-format json`), from a `--log` file for `create` and
 * `exec` (whose stdio belongs to the container process) and from stderr otherwise.
 * @module
 */
import {
  AlreadyExists,
  DeadlineExceeded,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  Unimplemented,
} from "../lib/errors.ts";
import { runCommand } from "./command.ts";
import { startInteractiveExec, terminalProcess } from "./interactive_exec.ts";
import {
  type CreateOptions,
  type DeleteOptions,
  type ExecOptions,
  type ExecResult,
  type InteractiveExec,
  type InteractiveExecOptions,
  type KillOptions,
  type OciRuntime,
  OciRuntimeError,
  type OciState,
  type OciStatus,
  type OciVerb,
  type ResourceUpdate,
} from "./oci_runtime.ts";

/** How to run one handler's binary. */
export interface RuncLikeRuntimeOptions {
  /** Handler name used in messages (`runc`, `runsc`). */
  name: string;
  /** Absolute path of the binary. */
  path: string;
  /** State directory (`--root`); the runtime's default when absent. */
  root?: string;
  /** Global flags placed before every verb, e.g. `["--platform=ptrace", "--network=none"]` for runsc. */
  extraArgs?: string[];
  /** `systemd` adds `--systemd-cgroup` (cgroupsPath is then `slice:prefix:name`). */
  cgroupManager?: "cgroupfs" | "systemd";
  /** Per-verb deadlines in milliseconds, overriding {@link DEFAULT_TIMEOUTS_MS}. */
  timeoutsMs?: Partial<Record<OciVerb, number>>;
  /** Directory for exec's temporary process.json and log; the system's temp directory by default. */
  tmpDir?: string;
}

/** Default deadlines per verb. runsc's create boots a sandbox, and exec runs a user's command. */
export const DEFAULT_TIMEOUTS_MS: Readonly<Record<OciVerb, number>> = {
  create: 60_000,
  start: 30_000,
  kill: 10_000,
  delete: 30_000,
  state: 10_000,
  list: 10_000,
  exec: 300_000,
  update: 30_000,
};

const STATUSES: readonly OciStatus[] = ["creating", "created", "running", "stopped", "paused"];
const ID = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Drives runc, crun or runsc through their shared command line. */
export class RuncLikeRuntime implements OciRuntime {
  readonly name: string;
  readonly #opts: RuncLikeRuntimeOptions;

  constructor(opts: RuncLikeRuntimeOptions) {
    this.name = opts.name;
    this.#opts = opts;
  }

  /** The flags every invocation starts with (after the binary). */
  globalArgs(): string[] {
    const out: string[] = [];
    if (this.#opts.root !== undefined) out.push("--root", this.#opts.root);
    out.push(...(this.#opts.extraArgs ?? []));
    if (this.#opts.cgroupManager === "systemd") out.push("--systemd-cgroup");
    out.push("--log-format", "json");
    return out;
  }

  /**
   * The exact argv (binary first) of `create`, so the monitor, which runs `create` itself to hold the container's
   * stdio, and the daemon build the same command line.
   */
  createArgs(id: string, opts: CreateOptions): string[] {
    checkId(id);
    const argv = [this.#opts.path, ...this.globalArgs(), "--log", opts.logPath ?? `${opts.bundle}/runtime.log`];
    argv.push("create", "--bundle", opts.bundle, "--pid-file", opts.pidFile);
    if (opts.consoleSocket !== undefined) argv.push("--console-socket", opts.consoleSocket);
    if (opts.noPivot) argv.push("--no-pivot");
    if (opts.noNewKeyring) argv.push("--no-new-keyring");
    argv.push(id);
    return argv;
  }

  /**
   * Creates the container, refusing an ID the runtime already knows: runsc (2022-12) answers a second `create`
   * of an existing ID by deleting the first container's metadata and orphaning its sandbox, so callers that run
   * {@link createArgs} themselves must check {@link state} first too.
   */
  async create(id: string, opts: CreateOptions): Promise<void> {
    const argv = this.createArgs(id, opts);
    if (await this.state(id) !== undefined) {
      throw new AlreadyExists(`${this.name} create ${id}: a container with this ID already exists`);
    }
    const logPath = opts.logPath ?? `${opts.bundle}/runtime.log`;
    const logStart = await fileSize(logPath);
    const res = await runCommand(argv, {
      what: `${this.name} create ${id}`,
      timeoutMs: opts.timeoutMs ?? this.#timeout("create"),
      stdin: opts.stdio?.stdin ?? "null",
      stdout: opts.stdio?.stdout ?? "null",
      stderr: opts.stdio?.stderr ?? "null",
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
    });
    if (res.code !== 0) {
      const log = await readFrom(logPath, logStart);
      throw this.#failure("create", id, res.code, runtimeErrorDetail({ log, stderr: "", stdout: "", code: res.code }));
    }
  }

  async start(id: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    checkId(id);
    await this.#run("start", id, ["start", id], opts.timeoutMs);
  }

  async kill(id: string, signal: string | number, opts: KillOptions = {}): Promise<void> {
    checkId(id);
    const sig = String(signal);
    if (!/^(SIG)?[A-Z0-9+-]+$/.test(sig)) {
      throw new InvalidArgument(`Cannot signal container "${id}": bad signal ${sig}`);
    }
    await this.#run("kill", id, ["kill", ...(opts.all ? ["--all"] : []), id, sig], opts.timeoutMs)
      .catch((err) => this.#explainStopped(err, "kill", id));
  }

  async delete(id: string, opts: DeleteOptions = {}): Promise<void> {
    checkId(id);
    await this.#run("delete", id, ["delete", ...(opts.force ? ["--force"] : []), id], opts.timeoutMs);
  }

  async state(id: string, opts: { timeoutMs?: number } = {}): Promise<OciState | undefined> {
    checkId(id);
    try {
      const out = await this.#run("state", id, ["state", id], opts.timeoutMs);
      return parseOciState(JSON.parse(out));
    } catch (err) {
      if (err instanceof NotFound) return undefined;
      throw err;
    }
  }

  async list(opts: { timeoutMs?: number } = {}): Promise<OciState[]> {
    const out = await this.#run("list", "", ["list", "--format", "json"], opts.timeoutMs);
    const parsed: unknown = JSON.parse(out);
    if (parsed === null) return [];
    if (!Array.isArray(parsed)) {
      throw new TypeError(`${this.name} list: expected a JSON array, got ${out.slice(0, 80)}`);
    }
    return parsed.map(parseOciState);
  }

  async update(id: string, resources: ResourceUpdate, opts: { timeoutMs?: number } = {}): Promise<void> {
    checkId(id);
    await this.#run("update", id, ["update", "--resources", "-", id], opts.timeoutMs, JSON.stringify(resources));
  }

  async exec(id: string, opts: ExecOptions): Promise<ExecResult> {
    checkId(id);
    const forms = [opts.args, opts.process, opts.processPath].filter((f) => f !== undefined).length;
    if (forms !== 1) throw new InvalidArgument(`exec in "${id}": give exactly one of args, process, processPath`);
    if (opts.args !== undefined && opts.args.length === 0) throw new InvalidArgument(`exec in "${id}": empty args`);
    if (opts.tty && opts.consoleSocket === undefined && opts.detach) {
      throw new InvalidArgument(`exec in "${id}": a detached exec with a tty needs a console socket`);
    }
    const dir = await Deno.makeTempDir({
      prefix: "davit-exec-",
      ...(this.#opts.tmpDir ? { dir: this.#opts.tmpDir } : {}),
    });
    try {
      const logPath = `${dir}/runtime.log`;
      const pidFile = opts.pidFile ?? `${dir}/pid`;
      let processPath = opts.processPath;
      if (opts.process !== undefined) {
        processPath = `${dir}/process.json`;
        await Deno.writeTextFile(processPath, JSON.stringify(opts.process), { mode: 0o600 });
      }
      const argv = [this.#opts.path, ...this.globalArgs(), "--log", logPath, "exec"];
      if (opts.tty) argv.push("--tty");
      if (opts.consoleSocket !== undefined) argv.push("--console-socket", opts.consoleSocket);
      if (opts.detach) argv.push("--detach");
      argv.push("--pid-file", pidFile);
      // runsc's --pid-file PID is its own exec process; the process itself is killed by its sandbox PID.
      const internalPidFile = `${dir}/internal-pid`;
      if (this.#isRunsc) argv.push("--internal-pid-file", internalPidFile);
      if (processPath !== undefined) argv.push("--process", processPath);
      argv.push(id, ...(opts.args ?? []));
      const timeoutMs = opts.timeoutMs ?? this.#timeout("exec");
      const killProcess = () => this.#killExecProcess(id, pidFile, this.#isRunsc ? internalPidFile : undefined);
      let killed = false;
      let res;
      try {
        res = await runCommand(argv, {
          what: `${this.name} exec ${id}`,
          timeoutMs,
          stdout: opts.detach ? "null" : "piped",
          stderr: opts.detach ? "null" : "piped",
          maxOutputBytes: opts.maxOutputBytes ?? 16 << 20,
          ...(opts.input !== undefined && !opts.detach ? { input: opts.input } : {}),
          ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
          // At the deadline the exec'd process is killed first: the runtime's exec process reaps it and exits.
          // Killing the runtime first would orphan the process to the host's init, a zombie until that reaps it.
          beforeKill: async () => killed = await killProcess(),
        });
      } catch (err) {
        // Should the runtime have been killed before the process (no PID file yet at the deadline), the process
        // is still running in the container; it is gone only once its own PID is killed.
        if ((err instanceof DeadlineExceeded || opts.signal?.aborted) && !killed) await killProcess().catch(() => {});
        throw err;
      }
      const log = await readFrom(logPath, 0);
      const detail = runtimeErrorDetail({ log, stderr: "", stdout: "", code: res.code });
      // A runtime failure leaves an error line in its log; without one, a non-zero code is the process's own.
      if (res.code !== 0 && hasErrorLine(log)) {
        await this.#explainStopped(this.#failure("exec", id, res.code, detail), "exec", id);
      }
      const result: ExecResult = {
        exitCode: res.code,
        stdout: res.stdout,
        stderr: res.stderr,
        truncated: res.truncated,
      };
      if (opts.detach) {
        const pid = await readPid(pidFile);
        if (pid !== undefined) result.pid = pid;
      }
      return result;
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /**
   * Starts `opts.args` in the container with live streams: the runtime's `exec` in the foreground (its exit code
   * is the process's). With `tty` the process is the container's own (from its bundle's config.json) on a terminal,
   * a pty of the daemon's (see interactive_exec.ts for why not `--console-socket`). The runtime's own failures
   * reject `exited`, read from its log as {@link exec} does.
   */
  async execInteractive(id: string, opts: InteractiveExecOptions): Promise<InteractiveExec> {
    checkId(id);
    if (opts.args.length === 0) throw new InvalidArgument(`exec in "${id}": empty args`);
    const tmpDir = opts.tmpDir ?? this.#opts.tmpDir;
    return await startInteractiveExec({
      what: `${this.name} exec ${id}`,
      relaysTerminal: !this.#isRunsc,
      argv: async ({ dir, logPath, pidFile, internalPidFile }) => {
        const argv = [this.#opts.path, ...this.globalArgs(), "--log", logPath, "exec", "--pid-file", pidFile];
        if (this.#isRunsc) argv.push("--internal-pid-file", internalPidFile);
        if (!opts.tty) return [...argv, id, ...opts.args];
        const state = await this.state(id);
        if (state === undefined) throw new NotFound(`${this.name} exec ${id}: container does not exist`);
        const config: unknown = JSON.parse(await Deno.readTextFile(`${state.bundle}/config.json`));
        await Deno.writeTextFile(
          `${dir}/process.json`,
          JSON.stringify(terminalProcess(config, opts.args, opts.initialSize)),
          { mode: 0o600 },
        );
        return [...argv, "--process", `${dir}/process.json`, id];
      },
      failure: async (code, log) => {
        // As in exec: a runtime failure leaves an error line in its log; without one the code is the process's.
        if (code === 0 || !hasErrorLine(log)) return undefined;
        const err = this.#failure("exec", id, code, runtimeErrorDetail({ log, stderr: "", stdout: "", code }));
        return await this.#explainStopped(err, "exec", id).catch((e: Error) => e);
      },
      ...(this.#isRunsc
        ? {
          killInternal: async (pid: number) => {
            await this.#run("kill", id, ["kill", "--pid", String(pid), id, "KILL"]);
          },
        }
        : {}),
      ...(tmpDir ? { tmpDir } : {}),
    }, opts);
  }

  /**
   * SIGKILLs an exec'd process: by the host PID in `pidFile`, or with runsc by its sandbox PID in `internalPidFile`
   * (`runsc kill --pid`). False when no PID was written (yet).
   */
  async #killExecProcess(id: string, pidFile: string, internalPidFile: string | undefined): Promise<boolean> {
    if (internalPidFile === undefined) return killPidFile(pidFile);
    const pid = await readPid(internalPidFile);
    if (pid === undefined) return false;
    await this.#run("kill", id, ["kill", "--pid", String(pid), id, "KILL"]);
    return true;
  }

  /**
   * runsc (gVisor) runs processes in its own kernel: an exec's `--pid-file` PID is runsc's exec process, and the
   * process itself is signalled through `kill --pid` with its sandbox PID. Known by the binary's name.
   */
  get #isRunsc(): boolean {
    return /(^|\/)runsc$/.test(this.#opts.path);
  }

  #timeout(verb: OciVerb): number {
    return this.#opts.timeoutsMs?.[verb] ?? DEFAULT_TIMEOUTS_MS[verb];
  }

  /** Runs one verb with stderr captured; returns stdout, throws the classified failure. */
  async #run(verb: OciVerb, id: string, args: string[], timeoutMs?: number, input?: string): Promise<string> {
    const res = await runCommand([this.#opts.path, ...this.globalArgs(), ...args], {
      what: `${this.name} ${verb}${id === "" ? "" : ` ${id}`}`,
      timeoutMs: timeoutMs ?? this.#timeout(verb),
      ...(input !== undefined ? { input: encoder.encode(input) } : {}),
    });
    const stdout = decoder.decode(res.stdout);
    if (res.code === 0) return stdout;
    const stderr = decoder.decode(res.stderr);
    // runsc answers a verb it lacks (update) with nothing but its usage text.
    if (/^\s*Usage: /.test(stderr.trim() === "" ? stdout : stderr)) {
      throw new Unimplemented(`${this.name} ${verb}: not supported by this runtime (it printed its usage)`);
    }
    throw this.#failure(verb, id, res.code, runtimeErrorDetail({ stderr, stdout, code: res.code }));
  }

  /**
   * Rethrows `err`, as {@link FailedPrecondition} when the container turns out to be stopped: runsc, for one,
   * answers a kill of a stopped sandbox with "connecting to control server at PID n: connection refused".
   */
  async #explainStopped(err: unknown, verb: OciVerb, id: string): Promise<never> {
    if (err instanceof OciRuntimeError) {
      const s = await this.state(id).catch(() => undefined);
      if (s?.status === "stopped") {
        throw new FailedPrecondition(`${this.name} ${verb} ${id}: container is not running (${err.detail})`, {
          cause: err,
        });
      }
    }
    throw err;
  }

  #failure(verb: OciVerb, id: string, exitCode: number, detail: string): Error {
    const cause = new OciRuntimeError({ runtime: this.name, verb, id, exitCode, detail });
    switch (classifyRuntimeFailure(detail)) {
      case "not-found":
        return new NotFound(`${this.name} ${verb} ${id}: container does not exist (${detail})`, { cause });
      case "exists":
        return new AlreadyExists(`${this.name} ${verb} ${id}: container already exists (${detail})`, { cause });
      case "not-running":
        return new FailedPrecondition(`${this.name} ${verb} ${id}: container is not running (${detail})`, { cause });
      default:
        return cause;
    }
  }
}

function checkId(id: string): void {
  if (!ID.test(id) || id.length > 1024) {
    throw new InvalidArgument(`Invalid container ID ${JSON.stringify(id)}: letters, digits, "_.+-", not leading`);
  }
}

/** Why a runtime call failed, from its message: the container is unknown, not running, or something else. */
export function classifyRuntimeFailure(detail: string): "not-found" | "exists" | "not-running" | "other" {
  // runc: "container does not exist"; runsc: 'loading container[ "<id>"]: file does not exist';
  // crun: "error opening file `<root>/<id>/status`: No such file or directory".
  if (
    /container does not exist|loading container( "[^"]*")?: file does not exist|`[^`]*\/status`: No such file/i.test(
      detail,
    )
  ) {
    return "not-found";
  }
  // runc: "container with given ID already exists"; runsc: "... container already exists".
  if (/already exists/i.test(detail)) return "exists";
  // runc: "cannot exec in a stopped container", "container not running"; runsc: "... in state stopped";
  // crun: "container `x` is not running".
  if (/stopped container|not running|in state (stopped|created)/i.test(detail)) return "not-running";
  return "other";
}

interface LogLine {
  level?: string;
  msg?: string;
}

function parseLine(line: string): LogLine | undefined {
  const t = line.trim();
  if (t === "") return undefined;
  if (t.startsWith("{")) {
    try {
      const v = JSON.parse(t) as unknown;
      if (typeof v === "object" && v !== null) {
        const o = v as Record<string, unknown>;
        const out: LogLine = {};
        if (typeof o.level === "string") out.level = o.level;
        if (typeof o.msg === "string") out.msg = o.msg;
        return out;
      }
    } catch {
      // not JSON after all
    }
  }
  // logrus text format: time="..." level=error msg="..."
  const m = /\blevel=(\w+)\s+msg=("(?:[^"\\]|\\.)*"|\S+)/.exec(t);
  if (m?.[1] !== undefined && m[2] !== undefined) {
    let msg = m[2];
    if (msg.startsWith('"')) {
      try {
        msg = JSON.parse(msg) as string;
      } catch {
        msg = msg.slice(1, -1);
      }
    }
    return { level: m[1], msg };
  }
  return { msg: t };
}

function hasErrorLine(log: string): boolean {
  return log.split("\n").some((l) => {
    const p = parseLine(l);
    return p?.level === "error" || p?.level === "fatal";
  });
}

/**
 * The runtime's own error message: the last error (or fatal) line of its JSON log, else the last line of its
 * stderr (JSON, logrus text or plain), else of its stdout, else the exit code. Long messages are cut at 1000.
 */
export function runtimeErrorDetail(out: { log?: string; stderr: string; stdout: string; code: number }): string {
  const pick = (text: string, errorsOnly: boolean): string | undefined => {
    const lines = text.split("\n").map(parseLine).filter((l): l is LogLine => l?.msg !== undefined);
    const chosen = errorsOnly ? lines.filter((l) => l.level === "error" || l.level === "fatal") : lines;
    return chosen.at(-1)?.msg;
  };
  const msg = (out.log !== undefined ? pick(out.log, true) : undefined) ?? pick(out.stderr, false) ??
    pick(out.stdout, false) ?? `exit code ${out.code}`;
  return msg.length > 1000 ? `${msg.slice(0, 1000)}...` : msg;
}

/** Validates and normalises one runtime `state` / `list` entry. */
export function parseOciState(value: unknown): OciState {
  if (typeof value !== "object" || value === null) throw new TypeError("OCI state: not an object");
  const o = value as Record<string, unknown>;
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v !== "string") throw new TypeError(`OCI state: "${k}" is not a string`);
    return v;
  };
  const status = str("status");
  if (!(STATUSES as readonly string[]).includes(status)) throw new TypeError(`OCI state: unknown status ${status}`);
  const pid = typeof o.pid === "number" && o.pid > 0 ? o.pid : 0;
  const annotations: Record<string, string> = {};
  if (typeof o.annotations === "object" && o.annotations !== null) {
    for (const [k, v] of Object.entries(o.annotations)) if (typeof v === "string") annotations[k] = v;
  }
  const state: OciState = {
    ociVersion: typeof o.ociVersion === "string" ? o.ociVersion : "",
    id: str("id"),
    status: status as OciStatus,
    pid,
    bundle: typeof o.bundle === "string" ? o.bundle : "",
    annotations,
  };
  if (typeof o.created === "string") state.created = o.created;
  return state;
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

async function readFrom(path: string, offset: number): Promise<string> {
  try {
    const bytes = await Deno.readFile(path);
    return decoder.decode(bytes.subarray(Math.min(offset, bytes.byteLength)));
  } catch {
    return "";
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

/** SIGKILLs the PID in `path`; false when there is none or it is gone. */
async function killPidFile(path: string): Promise<boolean> {
  const pid = await readPid(path);
  if (pid === undefined) return false;
  try {
    Deno.kill(pid, "SIGKILL");
    return true;
  } catch {
    return false; // already gone
  }
}
