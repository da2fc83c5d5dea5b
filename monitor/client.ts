/**
 * The daemon's side of the monitor protocol: one unix socket connection to a pod's monitor, several requests in
 * flight on it, each with its own deadline, matched to answers by id. A dropped connection fails the requests in
 * flight with Unavailable; the next request connects again, so a daemon restart or a monitor that was briefly
 * unreachable needs no special handling by callers. An attach opens a connection of its own (attach_session.ts).
 * @module
 */
import { DavitError, DeadlineExceeded, errorMessage, InvalidArgument, Unavailable } from "../lib/errors.ts";
import { AttachSession, type AttachStreams } from "./attach_session.ts";
import { connectWithin } from "./connect.ts";
import type { ExitRecord } from "./exit_file.ts";
import {
  type ContainerStatus,
  type CreateParams,
  encodeRequest,
  LineSplitter,
  MAX_RESPONSE_BYTES,
  type Op,
  parseResponse,
  type Results,
} from "./protocol.ts";

/** Options for {@link MonitorClient}. */
export interface MonitorClientOptions {
  /** Deadline for connecting, default 2 s. */
  connectTimeoutMs?: number;
  /** Default deadline per request, default 30 s (`create` adds its own `timeout_ms`; `wait` has none). */
  requestTimeoutMs?: number;
}

/** Per-request options. */
export interface RequestOptions {
  /** Deadline in ms; 0 for none (then only `signal` ends the wait). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** `create` fields; those with defaults in the protocol may be left out. */
export type CreateInput =
  & Pick<CreateParams, "container_id" | "runtime_path" | "runtime_root" | "bundle" | "log_path">
  & Partial<Pick<CreateParams, "runtime_args" | "log_size_max" | "terminal" | "stdin" | "stdin_once" | "timeout_ms">>;

/** Options of {@link MonitorClient.attach}: the streams to connect, and the deadline of the monitor's answer. */
export type AttachOptions = AttachStreams & RequestOptions;

interface Pending {
  resolve: (result: Record<string, unknown>) => void;
  reject: (err: Error) => void;
}

/** A connection to one monitor. Close it with {@link MonitorClient.close} (or `await using`). */
export class MonitorClient implements AsyncDisposable {
  /** The monitor's socket. */
  readonly socketPath: string;
  readonly #connectTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  readonly #enc = new TextEncoder();
  #conn: Deno.UnixConn | undefined;
  #connecting: Promise<Deno.UnixConn> | undefined;
  #readLoop: Promise<void> = Promise.resolve();
  #writing: Promise<void> = Promise.resolve();
  #nextId = 1;
  #closed = false;

  /** A client that connects on its first request. */
  constructor(socketPath: string, opts: MonitorClientOptions = {}) {
    this.socketPath = socketPath;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
  }

  /** Connects now, so that an unreachable monitor is noticed at once. */
  static async connect(socketPath: string, opts: MonitorClientOptions = {}): Promise<MonitorClient> {
    const c = new MonitorClient(socketPath, opts);
    await c.#ensureConnected();
    return c;
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** Drops the current connection (failing requests in flight with Unavailable) and connects again. */
  async reconnect(): Promise<void> {
    this.#drop(new Unavailable(`Connection to monitor ${this.socketPath} was reset by the client`));
    await this.#readLoop;
    await this.#ensureConnected();
  }

  /** Sends one request and resolves to the answer's result fields; a failed op rejects with its DavitError. */
  async request<O extends Op>(op: O, fields: object = {}, opts: RequestOptions = {}): Promise<Results[O]> {
    if (this.#closed) throw new Unavailable(`Monitor client for ${this.socketPath} is closed`);
    opts.signal?.throwIfAborted();
    const conn = await this.#ensureConnected();
    const id = this.#nextId++;
    const timeoutMs = opts.timeoutMs ?? this.#requestTimeoutMs;
    const { promise, resolve, reject } = Promise.withResolvers<Record<string, unknown>>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => fail(opts.signal?.reason ?? new DeadlineExceeded(`${op} was aborted`));
    const done = () => {
      this.#pending.delete(id);
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    };
    const fail = (err: Error) => {
      done();
      reject(err);
    };
    this.#pending.set(id, {
      resolve: (r) => {
        done();
        resolve(r);
      },
      reject: fail,
    });
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => fail(new DeadlineExceeded(`Monitor ${this.socketPath} did not answer ${op} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const bytes = this.#enc.encode(encodeRequest(id, op, fields));
    this.#writing = this.#writing.then(async () => {
      let off = 0;
      while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
    }).catch((err) => {
      fail(new Unavailable(`Cannot send ${op} to monitor ${this.socketPath}: ${errorMessage(err)}`, { cause: err }));
    });
    return await promise as Results[O];
  }

  /** `ping`: the monitor's pid, pod and protocol version. */
  ping(opts?: RequestOptions): Promise<Results["ping"]> {
    return this.request("ping", {}, opts);
  }

  /** `create`: runs `<runtime> create` in the monitor; resolves to the container init's pid. */
  async create(input: CreateInput, opts: RequestOptions = {}): Promise<number> {
    const timeoutMs = opts.timeoutMs ?? (input.timeout_ms ?? 60_000) + 5000;
    return (await this.request("create", input, { ...opts, timeoutMs })).pid;
  }

  /** `status` of one container, or of all when `containerId` is undefined. */
  async status(containerId?: string, opts?: RequestOptions): Promise<ContainerStatus[]> {
    const fields = containerId === undefined ? {} : { container_id: containerId };
    return (await this.request("status", fields, opts)).containers;
  }

  /** `wait`: resolves with the exit once it is recorded. No deadline unless `timeoutMs` is given. */
  async wait(containerId: string, opts: RequestOptions = {}): Promise<ExitRecord> {
    return (await this.request("wait", { container_id: containerId }, { ...opts, timeoutMs: opts.timeoutMs ?? 0 }))
      .exit;
  }

  /** `reopen_log`: the monitor reopens the container's log path. */
  async reopenLog(containerId: string, opts?: RequestOptions): Promise<void> {
    await this.request("reopen_log", { container_id: containerId }, opts);
  }

  /** `forget`: drops an exited container and its exit file (succeeds for an unknown one). */
  async forget(containerId: string, opts?: RequestOptions): Promise<void> {
    await this.request("forget", { container_id: containerId }, opts);
  }

  /**
   * `adopt` (protocol version 4): the monitor process behind this client also serves pod `podId` from `dir`, where
   * it makes `monitor.sock`, `monitor.pid` and `exits/`; resolves to the process's pid once that socket listens.
   */
  async adopt(podId: string, dir: string, opts?: RequestOptions): Promise<number> {
    return (await this.request("adopt", { pod_id: podId, dir }, opts)).pid;
  }

  /**
   * `shutdown`: the monitor stops serving this pod (the process exits when it serves no other pod); refused while
   * containers run unless `force`.
   */
  async shutdown(opts: RequestOptions & { force?: boolean } = {}): Promise<void> {
    const { force, ...rest } = opts;
    await this.request("shutdown", force ? { force: true } : {}, rest);
  }

  /**
   * `attach`: connects the requested streams of a created or running container over a connection of its own
   * (needs protocol version 2; see {@link AttachSession}). Rejects with NotFound for an unknown container,
   * FailedPrecondition once it has exited, InvalidArgument for stdin when it was created without stdin.
   * Sessions are independent of this client: closing one or the other affects neither.
   */
  attach(containerId: string, opts: AttachOptions = {}): Promise<AttachSession> {
    if (this.#closed) return Promise.reject(new Unavailable(`Monitor client for ${this.socketPath} is closed`));
    return AttachSession.open(this.socketPath, containerId, {
      ...opts,
      connectTimeoutMs: this.#connectTimeoutMs,
      timeoutMs: opts.timeoutMs ?? this.#requestTimeoutMs,
    });
  }

  /** Closes the connection; requests in flight fail with Unavailable. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#drop(new Unavailable(`Monitor client for ${this.socketPath} was closed`));
    await this.#connecting?.catch(() => {});
    await this.#readLoop;
    await this.#writing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #ensureConnected(): Promise<Deno.UnixConn> {
    if (this.#conn) return Promise.resolve(this.#conn);
    this.#connecting ??= connectWithin(this.socketPath, this.#connectTimeoutMs).then((conn) => {
      this.#connecting = undefined;
      if (this.#closed) {
        conn.close();
        throw new Unavailable(`Monitor client for ${this.socketPath} is closed`);
      }
      this.#conn = conn;
      this.#readLoop = this.#read(conn);
      return conn;
    }, (err) => {
      this.#connecting = undefined;
      throw err;
    });
    return this.#connecting;
  }

  async #read(conn: Deno.UnixConn): Promise<void> {
    const splitter = new LineSplitter(MAX_RESPONSE_BYTES);
    const buf = new Uint8Array(64 * 1024);
    let reason: Error = new Unavailable(`Monitor ${this.socketPath} closed the connection`);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        for (const line of splitter.push(buf.subarray(0, n))) {
          const res = parseResponse(line);
          if (res.id === null) {
            // The monitor could not read one of our lines: a bug on this side; it cannot be matched.
            throw new InvalidArgument(
              `Monitor ${this.socketPath} refused a request: ${res.ok ? "?" : res.error.message}`,
            );
          }
          const p = this.#pending.get(res.id);
          if (!p) continue; // timed out or aborted meanwhile
          if (res.ok) p.resolve(res.result);
          else p.reject(res.error);
        }
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted)) {
        reason = err instanceof DavitError
          ? err
          : new Unavailable(`Connection to monitor ${this.socketPath} failed: ${errorMessage(err)}`, { cause: err });
      }
    }
    this.#drop(reason, conn);
  }

  #drop(reason: Error, which?: Deno.UnixConn): void {
    const conn = this.#conn;
    if (conn === undefined || (which !== undefined && which !== conn)) return;
    this.#conn = undefined;
    try {
      conn.close();
    } catch {
      // already closed
    }
    for (const p of [...this.#pending.values()]) p.reject(reason);
  }
}
