/**
 * The daemon <-> monitor protocol: newline-delimited JSON over the unix socket `DIR/monitor.sock`. Pure framing,
 * validation and encoding, shared by the monitor (server.ts) and the daemon's client (client.ts).
 *
 * Each request is one line `{"id": n, "op": "...", ...fields}` and is answered by one line
 * `{"id": n, "ok": true, ...result}` or `{"id": n, "ok": false, "error": "message", "code": "NotFound"}`, where
 * `code` is one of lib/errors.ts's kinds. Requests on one connection may be in flight together and are answered
 * in completion order (a `wait` does not hold up a `ping`); the client matches answers by `id` (a non-negative
 * integer it picks). A line that is not a valid request is answered with `"id": null` when its id cannot be read.
 * A request line longer than {@link MAX_REQUEST_BYTES} closes the connection. Every container is named by its
 * ID, never "the pod", so one monitor can serve several pods. Unknown fields are refused, so a daemon newer than
 * its monitor learns at once that a field is not understood (`ping` reports the protocol version).
 *
 * `attach` is the one op that takes over its connection: it must be the first request on a fresh connection, and
 * after its ok answer line the connection carries the binary frames of attach_frame.ts for the rest of its life.
 *
 * | op | fields | result |
 * | --- | --- | --- |
 * | `ping` | | `pid`, `pod_id`, `version`, `containers` (count) |
 * | `create` | {@link CreateParams} | `pid` of the container's init, once `<runtime> create` succeeded |
 * | `status` | `container_id?` | `containers`: {@link ContainerStatus}[] (all when no ID; NotFound for an unknown ID) |
 * | `wait` | `container_id` | `exit`: {@link ExitRecord}, when the exit is recorded in its exit file |
 * | `reopen_log` | `container_id` | nothing: the log path was reopened (after the kubelet renamed the file) |
 * | `forget` | `container_id` | nothing: the exited container and its exit file are dropped |
 * | `shutdown` | `force?` | nothing; the monitor stops serving this pod (the process exits when it serves no other). FailedPrecondition while containers live, unless `force` |
 * | `adopt` | `pod_id`, `dir` | `pid`: this monitor process now also serves pod `pod_id` on `dir/monitor.sock` |
 * | `attach` | {@link AttachParams} | nothing; then frames (attach_frame.ts). NotFound, FailedPrecondition once exited, InvalidArgument for stdin the container lacks |
 *
 * The full description, with examples, is docs/monitor-protocol.md.
 * @module
 */
import {
  AlreadyExists,
  DavitError,
  DeadlineExceeded,
  type ErrorKind,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  ResourceExhausted,
  Unavailable,
  Unimplemented,
} from "../lib/errors.ts";
import type { ExitReason, ExitRecord } from "./exit_file.ts";

/**
 * The protocol version, reported by `ping`. The protocol only grows compatibly (requests keep their meaning), and
 * the version is incremented with each addition, so a daemon uses an op when the monitor's version is at least the
 * one that brought it: 1, the first set; 2, `attach` ({@link ATTACH_SINCE_VERSION}); 3, `create` with `terminal`
 * ({@link TERMINAL_SINCE_VERSION}); 4, `adopt` ({@link ADOPT_SINCE_VERSION}).
 */
export const PROTOCOL_VERSION = 4;
/** The first protocol version with `adopt` (one process serving several pods). */
export const ADOPT_SINCE_VERSION = 4;
/** The first protocol version with `attach`. */
export const ATTACH_SINCE_VERSION = 2;
/** The first protocol version whose `create` accepts `terminal: true` (older monitors refuse it: Unimplemented). */
export const TERMINAL_SINCE_VERSION = 3;
/** The longest request line the monitor reads. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** The longest response line the client reads (a `status` of many containers). */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** The default and the largest `timeout_ms` of `create`. */
export const CREATE_TIMEOUT_MS = { default: 60_000, max: 600_000 } as const;

/** Operation names. */
export const OPS = ["ping", "create", "status", "wait", "reopen_log", "forget", "shutdown", "attach", "adopt"] as const;
/** One of {@link OPS}. */
export type Op = typeof OPS[number];

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** True for an ID usable as a container (or pod) ID and as a file name: 1-128 of `[A-Za-z0-9_.-]`, not led by `.`, `-` or `_`. */
export function isValidId(id: string): boolean {
  return ID_RE.test(id);
}

/** The fields of a `create` request. */
export interface CreateParams {
  container_id: string;
  /** Absolute path of the OCI runtime binary (runc, crun). */
  runtime_path: string;
  /** The runtime's `--root` state directory. */
  runtime_root: string;
  /** Global flags placed before `--root` (e.g. runsc's `--platform=ptrace`); each must start with "--". */
  runtime_args: string[];
  /** The OCI bundle (config.json, rootfs); `<bundle>/pid` and `<bundle>/runtime.log` are written there. */
  bundle: string;
  /** The CRI log file; its directory must exist. */
  log_path: string;
  /** Size limit of the log file in bytes; 0 or negative for none, otherwise at least 8192 (CRI-O's rule). */
  log_size_max: number;
  /**
   * Give the container a terminal (its config.json must say `process.terminal: true`): the runtime sends the pty
   * master to a console socket in the monitor directory, and the terminal replaces stdin, stdout and stderr.
   */
  terminal: boolean;
  /** Give the container a stdin held by the monitor (for attach): a pipe, or the terminal's input. */
  stdin: boolean;
  /** Close that stdin after the first attach session ends it (for a terminal: send EOT, then stop forwarding). */
  stdin_once: boolean;
  /** Deadline for `<runtime> create`, default 60 s, at most 10 min. */
  timeout_ms: number;
}

/** The fields of an `attach` request: the streams to connect (at least one). */
export interface AttachParams {
  container_id: string;
  /** Send STDIN frames to the container (refused when it was created without stdin). */
  stdin: boolean;
  /** Receive STDOUT frames. */
  stdout: boolean;
  /** Receive STDERR frames. */
  stderr: boolean;
}

/** A parsed, validated request. */
export type Request =
  | { id: number; op: "ping" }
  | ({ id: number; op: "create" } & CreateParams)
  | { id: number; op: "status"; container_id?: string }
  | { id: number; op: "wait"; container_id: string }
  | { id: number; op: "reopen_log"; container_id: string }
  | { id: number; op: "forget"; container_id: string }
  | { id: number; op: "shutdown"; force: boolean }
  | ({ id: number; op: "attach" } & AttachParams)
  | { id: number; op: "adopt"; pod_id: string; dir: string };

/** A container's life as the monitor sees it. */
export type ContainerState = "created" | "running" | "exited";

/** One entry of a `status` answer. */
export interface ContainerStatus {
  container_id: string;
  state: ContainerState;
  /** The init's host pid (0 for an exit known only from its exit file). */
  pid: number;
  /** When `<runtime> create` returned, RFC 3339 nanoseconds (absent for an exit known only from its file). */
  created_at?: string;
  exit_code?: number;
  signal?: number;
  finished_at?: string;
  reason?: ExitReason;
  oom_killed?: boolean;
  message?: string;
}

/** The result fields of each op (what follows `"id"` and `"ok": true`). */
export interface Results {
  ping: { pid: number; pod_id: string; version: number; containers: number };
  create: { pid: number };
  status: { containers: ContainerStatus[] };
  wait: { exit: ExitRecord };
  reopen_log: Record<string, never>;
  forget: Record<string, never>;
  shutdown: Record<string, never>;
  attach: Record<string, never>;
  adopt: { pid: number };
}

/** What {@link parseRequest} returns: a request, or the error to answer with (`id` null when unreadable). */
export type ParsedRequest = { ok: true; request: Request } | { ok: false; id: number | null; error: DavitError };

const FIELDS: Record<Op, readonly string[]> = {
  ping: [],
  create: [
    "container_id",
    "runtime_path",
    "runtime_root",
    "runtime_args",
    "bundle",
    "log_path",
    "log_size_max",
    "terminal",
    "stdin",
    "stdin_once",
    "timeout_ms",
  ],
  status: ["container_id"],
  wait: ["container_id"],
  reopen_log: ["container_id"],
  forget: ["container_id"],
  shutdown: ["force"],
  attach: ["container_id", "stdin", "stdout", "stderr"],
  adopt: ["pod_id", "dir"],
};

type Obj = Record<string, unknown>;

function str(o: Obj, key: string, op: Op): string {
  const v = o[key];
  if (typeof v !== "string" || v === "") throw new InvalidArgument(`${op}: "${key}" must be a non-empty string`);
  if (v.includes("\0")) throw new InvalidArgument(`${op}: "${key}" contains a NUL byte`);
  return v;
}

function absPath(o: Obj, key: string, op: Op): string {
  const v = str(o, key, op);
  if (!v.startsWith("/")) {
    throw new InvalidArgument(`${op}: "${key}" must be an absolute path, got ${JSON.stringify(v)}`);
  }
  return v;
}

function containerId(o: Obj, op: Op): string {
  const v = str(o, "container_id", op);
  if (!isValidId(v)) throw new InvalidArgument(`${op}: bad container_id ${JSON.stringify(v.slice(0, 140))}`);
  return v;
}

function bool(o: Obj, key: string, op: Op): boolean {
  const v = o[key];
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw new InvalidArgument(`${op}: "${key}" must be a boolean`);
  return v;
}

function int(o: Obj, key: string, op: Op, dflt: number, min: number, max: number): number {
  const v = o[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgument(`${op}: "${key}" must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function parseCreate(id: number, o: Obj): Request {
  const logSizeMax = int(o, "log_size_max", "create", 0, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  if (logSizeMax > 0 && logSizeMax < 8192) {
    throw new InvalidArgument(
      `create: "log_size_max" must be 0 or negative (no limit) or at least 8192, got ${logSizeMax}`,
    );
  }
  const terminal = bool(o, "terminal", "create");
  const stdin = bool(o, "stdin", "create");
  const stdinOnce = bool(o, "stdin_once", "create");
  if (stdinOnce && !stdin) throw new InvalidArgument(`create: "stdin_once" needs "stdin"`);
  return {
    id,
    op: "create",
    container_id: containerId(o, "create"),
    runtime_path: absPath(o, "runtime_path", "create"),
    runtime_root: absPath(o, "runtime_root", "create"),
    runtime_args: runtimeArgs(o),
    bundle: absPath(o, "bundle", "create"),
    log_path: absPath(o, "log_path", "create"),
    log_size_max: logSizeMax,
    terminal,
    stdin,
    stdin_once: stdinOnce,
    timeout_ms: int(o, "timeout_ms", "create", CREATE_TIMEOUT_MS.default, 1, CREATE_TIMEOUT_MS.max),
  };
}

function runtimeArgs(o: Record<string, unknown>): string[] {
  const v = o.runtime_args ?? [];
  if (
    !Array.isArray(v) || v.length > 32 || !v.every((a) => typeof a === "string" && /^--[a-z0-9-]+(=[^\0\n]*)?$/.test(a))
  ) {
    throw new InvalidArgument(`create: "runtime_args" must be a list of at most 32 "--flag[=value]" strings`);
  }
  return v as string[];
}

function parseAttach(id: number, o: Obj): Request {
  const container_id = containerId(o, "attach");
  const stdin = bool(o, "stdin", "attach");
  const stdout = bool(o, "stdout", "attach");
  const stderr = bool(o, "stderr", "attach");
  if (!stdin && !stdout && !stderr) throw new InvalidArgument(`attach: one of stdin, stdout or stderr must be true`);
  return { id, op: "attach", container_id, stdin, stdout, stderr };
}

function isOp(v: unknown): v is Op {
  return typeof v === "string" && (OPS as readonly string[]).includes(v);
}

/** Parses and validates one request line (without its newline). Never throws. */
export function parseRequest(line: string): ParsedRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, id: null, error: new InvalidArgument("request is not valid JSON") };
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return { ok: false, id: null, error: new InvalidArgument("request is not a JSON object") };
  }
  const o = v as Obj;
  if (typeof o.id !== "number" || !Number.isSafeInteger(o.id) || o.id < 0) {
    return { ok: false, id: null, error: new InvalidArgument(`request "id" must be a non-negative integer`) };
  }
  const id = o.id;
  const op = o.op;
  if (!isOp(op)) {
    return { ok: false, id, error: new InvalidArgument(`unknown op ${JSON.stringify(op)}; known: ${OPS.join(", ")}`) };
  }
  try {
    const allowed = FIELDS[op];
    for (const key of Object.keys(o)) {
      if (key !== "id" && key !== "op" && !allowed.includes(key)) {
        throw new InvalidArgument(`${op}: unknown field ${JSON.stringify(key)}`);
      }
    }
    let request: Request;
    switch (op) {
      case "ping":
        request = { id, op };
        break;
      case "create":
        request = parseCreate(id, o);
        break;
      case "status":
        request = o.container_id === undefined ? { id, op } : { id, op, container_id: containerId(o, op) };
        break;
      case "wait":
      case "reopen_log":
      case "forget":
        request = { id, op, container_id: containerId(o, op) };
        break;
      case "shutdown":
        request = { id, op, force: bool(o, "force", op) };
        break;
      case "attach":
        request = parseAttach(id, o);
        break;
      case "adopt": {
        const podId = str(o, "pod_id", op);
        if (!isValidId(podId)) throw new InvalidArgument(`adopt: bad pod_id ${JSON.stringify(podId.slice(0, 140))}`);
        request = { id, op, pod_id: podId, dir: absPath(o, "dir", op) };
        break;
      }
    }
    return { ok: true, request };
  } catch (err) {
    if (err instanceof DavitError) return { ok: false, id, error: err };
    throw err;
  }
}

/** Encodes a success answer as one line, newline included. */
export function encodeResult(id: number, result: object): string {
  return JSON.stringify({ ...result, id, ok: true }) + "\n";
}

/** Encodes an error answer as one line; errors other than DavitError are reported as Internal. */
export function encodeError(id: number | null, err: unknown): string {
  const code: ErrorKind = err instanceof DavitError ? err.kind : "Internal";
  const error = err instanceof Error ? err.message : String(err);
  return JSON.stringify({ id, ok: false, error, code }) + "\n";
}

/** Encodes a request line for `op` (the client side). */
export function encodeRequest(id: number, op: Op, fields: object = {}): string {
  return JSON.stringify({ ...fields, id, op }) + "\n";
}

/** A decoded answer line (the client side). */
export type Response =
  | { id: number | null; ok: true; result: Obj }
  | { id: number | null; ok: false; error: DavitError };

const KINDS: Record<string, new (message: string) => DavitError> = {
  InvalidArgument,
  NotFound,
  AlreadyExists,
  FailedPrecondition,
  DeadlineExceeded,
  Unavailable,
  Unimplemented,
  PermissionDenied,
  ResourceExhausted,
};

/** Rebuilds the domain error named by an answer's `code` (unknown codes become Internal). */
export function errorFromCode(code: unknown, message: string): DavitError {
  const cls = typeof code === "string" ? KINDS[code] : undefined;
  return cls ? new cls(message) : new DavitError("Internal", message);
}

/** Parses one answer line; throws InvalidArgument for a line that is not an answer. */
export function parseResponse(line: string): Response {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new InvalidArgument(`monitor answer is not valid JSON: ${JSON.stringify(line.slice(0, 200))}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new InvalidArgument("monitor answer is not an object");
  }
  const { id, ok, error, code, ...result } = v as Obj;
  if (id !== null && (typeof id !== "number" || !Number.isSafeInteger(id))) {
    throw new InvalidArgument(`monitor answer has a bad id: ${JSON.stringify(id)}`);
  }
  if (ok === true) return { id, ok, result };
  if (ok === false) return { id, ok, error: errorFromCode(code, typeof error === "string" ? error : "unknown error") };
  throw new InvalidArgument(`monitor answer has no "ok" boolean`);
}

/**
 * Splits a byte stream into lines (without the newline), decoding each as UTF-8. Throws ResourceExhausted when a
 * line grows past `maxBytes` before its newline: the stream cannot be resynchronized, so the connection ends.
 */
export class LineSplitter {
  readonly #max: number;
  readonly #decoder = new TextDecoder();
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }
  /** The complete lines that `chunk` finishes. */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    for (;;) {
      const next = this.pushOne(chunk);
      if (next === undefined) return lines;
      lines.push(next.line);
      chunk = next.rest;
    }
  }

  /**
   * Takes bytes up to the first newline of `chunk`: returns the line it finishes and the bytes after that newline
   * (a view of `chunk`, not held), or undefined when `chunk` has no newline (then its bytes are held). For a
   * connection that switches to another framing after a line.
   */
  pushOne(chunk: Uint8Array): { line: string; rest: Uint8Array } | undefined {
    const nl = chunk.indexOf(0x0a);
    if (nl < 0) {
      if (chunk.byteLength === 0) return undefined;
      if (this.#heldBytes + chunk.byteLength > this.#max) throw this.#tooLong();
      this.#held.push(chunk.slice());
      this.#heldBytes += chunk.byteLength;
      return undefined;
    }
    const piece = chunk.subarray(0, nl);
    if (this.#heldBytes + piece.byteLength > this.#max) throw this.#tooLong();
    let line: string;
    if (this.#held.length === 0) {
      line = this.#decoder.decode(piece);
    } else {
      this.#held.push(piece);
      const all = new Uint8Array(this.#heldBytes + piece.byteLength);
      let off = 0;
      for (const h of this.#held) {
        all.set(h, off);
        off += h.byteLength;
      }
      line = this.#decoder.decode(all);
      this.#held = [];
      this.#heldBytes = 0;
    }
    return { line, rest: chunk.subarray(nl + 1) };
  }
  /** Bytes of an unfinished line. */
  get heldBytes(): number {
    return this.#heldBytes;
  }
  #tooLong(): ResourceExhausted {
    return new ResourceExhausted(`line longer than ${this.#max} bytes`);
  }
}
