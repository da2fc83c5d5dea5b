/**
 * The narrow interface davit drives OCI runtimes through (runtime-spec "Operations": create, start, kill,
 * delete, state; plus the runc-style exec and update). The CLI implementation is in runc_like_runtime.ts, a
 * recording fake for unit tests in oci_runtime_fake.ts, and one conformance suite runs against every real one.
 * @module
 */
import { DavitError } from "../lib/errors.ts";

/** Container status values from the runtime-spec state (`creating` and `paused` included). */
export type OciStatus = "creating" | "created" | "running" | "stopped" | "paused";

/** The runtime's view of one container (runtime-spec "State"), normalised across runtimes. */
export interface OciState {
  ociVersion: string;
  id: string;
  status: OciStatus;
  /** Host PID of the container process; 0 when there is none (runc says 0, runsc -1 once stopped). */
  pid: number;
  /** Absolute path of the bundle. */
  bundle: string;
  annotations: Record<string, string>;
  /** RFC 3339 creation time, when the runtime reports it. */
  created?: string;
}

/** Where a child's standard stream goes when the runtime starts a process with the caller's stdio. */
export type ProcessStdio = "null" | "inherit";

/** Options of {@link OciRuntime.create}; {@link RuncLikeRuntime.createArgs} turns them into the exact argv. */
export interface CreateOptions {
  /** Absolute bundle directory holding config.json. */
  bundle: string;
  /** The runtime writes the container process's host PID here. */
  pidFile: string;
  /** AF_UNIX socket that receives the pty master when the process has `terminal: true`. */
  consoleSocket?: string;
  /** The runtime's own log (`--log`, JSON lines); default `<bundle>/runtime.log`. Errors are read from it. */
  logPath?: string;
  /** `--no-pivot`: for root filesystems on ramfs, where pivot_root fails. */
  noPivot?: boolean;
  /** `--no-new-keyring`: keep the caller's session keyring. */
  noNewKeyring?: boolean;
  /**
   * The container process inherits the runtime's stdio, so it cannot be piped back to the daemon (the runtime
   * would never reach end of file); the monitor runs `create` itself when it must hold the streams.
   */
  stdio?: { stdin?: ProcessStdio; stdout?: ProcessStdio; stderr?: ProcessStdio };
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Options of {@link OciRuntime.kill}. */
export interface KillOptions {
  /** Signal every process in the container (`--all`), not just its init. */
  all?: boolean;
  timeoutMs?: number;
}

/** Options of {@link OciRuntime.delete}. */
export interface DeleteOptions {
  /** Kill a running container first; deleting a missing container then succeeds (idempotent removal). */
  force?: boolean;
  timeoutMs?: number;
}

/** A runtime-spec `process` object, passed through to the runtime as JSON. */
export interface ExecProcess {
  args: string[];
  cwd: string;
  env?: string[];
  user: { uid: number; gid: number; additionalGids?: number[]; umask?: number; username?: string };
  terminal?: boolean;
  [field: string]: unknown;
}

/** Options of {@link OciRuntime.exec}: exactly one of `args`, `process` or `processPath`. */
export interface ExecOptions {
  /** Command line run with the container's own env, cwd and user (the runtime copies them from config.json). */
  args?: string[];
  /** A complete process object (written to a temporary process.json). */
  process?: ExecProcess;
  /** Path of a process.json the caller wrote. */
  processPath?: string;
  /** Allocate a terminal (`--tty`); needs `consoleSocket`. */
  tty?: boolean;
  consoleSocket?: string;
  /** Return once the process started (`--detach`), its PID read from `pidFile`. */
  detach?: boolean;
  pidFile?: string;
  /** Bytes fed to the process's stdin (attached exec only). */
  input?: Uint8Array;
  /** Output kept per stream; default 16 MiB (more is read and dropped, `truncated` says so). */
  maxOutputBytes?: number;
  /** Deadline for the whole exec; the runtime's exec process is killed when it passes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What an exec left: the process's exit code and output (empty for detached execs, which report `pid`). */
export interface ExecResult {
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  truncated: boolean;
  /** Host PID of a detached exec's process. */
  pid?: number;
}

/** Options of {@link OciRuntime.execInteractive}. */
export interface InteractiveExecOptions {
  /** Command line run with the container's own env, cwd and user. */
  args: string[];
  /** Run the process on a terminal, which is then its stdin, stdout and stderr. */
  tty: boolean;
  /** Give the caller {@link InteractiveExec.stdin}; without it the process reads /dev/null (or the idle terminal). */
  stdin: boolean;
  stdout: boolean;
  /** Ignored with `tty`: the terminal carries both output streams. */
  stderr: boolean;
  /** The terminal's size when the process starts (with `tty`); later changes go through `resize`. */
  initialSize?: { cols: number; rows: number };
  /** Aborting it kills the exec, as {@link InteractiveExec.kill} does. */
  signal?: AbortSignal;
  /** Directory for the exec's private temporary directory (runtime log, pid file). */
  tmpDir?: string;
}

/**
 * A process started in a container with live streams. Release it by reading its output to the end after it
 * exited, or by calling {@link kill} (safe after the exit; callers do it in a `finally`).
 */
export interface InteractiveExec {
  /** The process's input; closing it is end of file to the process (with a tty: an EOF character, ^D). */
  readonly stdin: WritableStream<Uint8Array> | null;
  /** The process's output; with a tty, the terminal's output (stdout and stderr together). */
  readonly stdout: ReadableStream<Uint8Array> | null;
  /** The process's error output; null with a tty. */
  readonly stderr: ReadableStream<Uint8Array> | null;
  /** Sets the terminal's size (the process gets SIGWINCH); a no-op without a tty or once it ended. */
  resize(cols: number, rows: number): Promise<void>;
  /**
   * The process's exit code, as the runtime reports it (128 + n for a signal); rejects when the runtime itself
   * failed (an executable not found, a stopped container), with the errors {@link OciRuntime} methods throw.
   */
  readonly exited: Promise<{ exitCode: number }>;
  /** Kills the exec'd process and the runtime's exec, waits for the exit and releases the streams. Idempotent. */
  kill(): Promise<void>;
}

/** A subset of runtime-spec `linux.resources` that `update` changes (unchanged fields omitted). */
export interface ResourceUpdate {
  cpu?: {
    shares?: number;
    quota?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
  };
  memory?: { limit?: number; reservation?: number; swap?: number };
  pids?: { limit: number };
  blockIO?: { weight?: number };
  hugepageLimits?: { pageSize: string; limit: number }[];
  /** cgroup v2 file name to value. */
  unified?: Record<string, string>;
}

/**
 * An OCI runtime. Methods throw domain errors from lib/errors.ts: `NotFound` for a container the runtime does
 * not know, `FailedPrecondition` when its state forbids the operation (exec or kill in a stopped container),
 * `DeadlineExceeded` on timeout, and {@link OciRuntimeError} (carrying the runtime's message) otherwise.
 */
export interface OciRuntime {
  /** The handler name used in messages (`runc`, `runsc`, ...). */
  readonly name: string;
  /** Creates the container from its bundle; the process waits for `start`. */
  create(id: string, opts: CreateOptions): Promise<void>;
  /** Runs the created container's process. */
  start(id: string, opts?: { timeoutMs?: number }): Promise<void>;
  /** Sends a signal (a name such as `SIGTERM`, or a number). */
  kill(id: string, signal: string | number, opts?: KillOptions): Promise<void>;
  /** Removes the runtime's record of a stopped container (and kills it first with `force`). */
  delete(id: string, opts?: DeleteOptions): Promise<void>;
  /** The container's state, or undefined when the runtime does not know it. */
  state(id: string, opts?: { timeoutMs?: number }): Promise<OciState | undefined>;
  /** Every container under this runtime's root, when the runtime can list them. */
  list?(opts?: { timeoutMs?: number }): Promise<OciState[]>;
  /** Runs another process in a running container. */
  exec(id: string, opts: ExecOptions): Promise<ExecResult>;
  /** Starts another process in a running container with live streams (CRI Exec, `kubectl exec -it`). */
  execInteractive(id: string, opts: InteractiveExecOptions): Promise<InteractiveExec>;
  /** Changes the container's cgroup limits. */
  update(id: string, resources: ResourceUpdate, opts?: { timeoutMs?: number }): Promise<void>;
}

/** The runtime's verbs, as used in messages and per-verb timeouts. */
export type OciVerb = "create" | "start" | "kill" | "delete" | "state" | "list" | "exec" | "update";

/** A runtime invocation that failed for a reason other than a missing container or a forbidding state. */
export class OciRuntimeError extends DavitError {
  /** Handler name, e.g. `runc`. */
  readonly runtime: string;
  readonly verb: OciVerb;
  readonly id: string;
  /** The runtime's exit code. */
  readonly exitCode: number;
  /** The runtime's own error message (last error line of its log or stderr). */
  readonly detail: string;
  constructor(
    init: { runtime: string; verb: OciVerb; id: string; exitCode: number; detail: string },
    options?: ErrorOptions,
  ) {
    super("Internal", `${init.runtime} ${init.verb}${init.id === "" ? "" : ` ${init.id}`}: ${init.detail}`, options);
    this.runtime = init.runtime;
    this.verb = init.verb;
    this.id = init.id;
    this.exitCode = init.exitCode;
    this.detail = init.detail;
  }
}
