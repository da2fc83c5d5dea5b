/**
 * The monitor's request handling: the table of containers (live ones created here, exited ones recovered from
 * exit files after a restart) and the socket server that reads request lines, runs each op concurrently, and
 * writes answers as they complete. An accepted `attach`, the first request of its connection, hands the
 * connection over to the container's attach machinery (attach_conn.ts).
 * @module
 */
import {
  AlreadyExists,
  DavitError,
  errorMessage,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  Unimplemented,
} from "../lib/errors.ts";
import type { AttachConn } from "./attach_conn.ts";
import type { Logger } from "../lib/log.ts";
import { Container, type ContainerContext } from "./container.ts";
import { type ExitRecord, listExitFiles, removeExitFile } from "./exit_file.ts";
import {
  type AttachParams,
  type ContainerStatus,
  type CreateParams,
  encodeError,
  encodeResult,
  LineSplitter,
  MAX_REQUEST_BYTES,
  parseRequest,
  PROTOCOL_VERSION,
  type Request,
} from "./protocol.ts";

/** Options for {@link MonitorServer}. */
export interface MonitorServerOptions {
  podId: string;
  /** The monitor directory (0700): console sockets of containers with a terminal are made there. */
  dir: string;
  /** `DIR/exits`. */
  exitsDir: string;
  log: Logger;
  /** See {@link ContainerContext.drainGraceMs}; default 2 s. */
  drainGraceMs?: number;
  /** Pids of spawned processes, shared by every pod of the process (see {@link ContainerContext.spawned}). */
  spawned?: Set<number>;
  /** Serves another pod from this process (`adopt`); without it, `adopt` is Unimplemented. */
  adopt?: (podId: string, dir: string) => Promise<{ pid: number }>;
}

function recordStatus(rec: ExitRecord): ContainerStatus {
  const { container_id, ...exit } = rec;
  return { container_id, state: "exited", pid: 0, ...exit };
}

/** The containers of one monitor and the ops on them. */
export class MonitorServer {
  readonly podId: string;
  readonly #ctx: ContainerContext;
  readonly #containers = new Map<string, Container>();
  /** Exits known only from their files (recorded by an earlier monitor process). */
  readonly #recovered = new Map<string, ExitRecord>();
  /** IDs with a `create` in flight. */
  readonly #creating = new Set<string>();
  readonly #stop = Promise.withResolvers<void>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #adopt: MonitorServerOptions["adopt"];
  #stopping = false;

  constructor(opts: MonitorServerOptions) {
    this.podId = opts.podId;
    this.#adopt = opts.adopt;
    let consoles = 0;
    this.#ctx = {
      exitsDir: opts.exitsDir,
      log: opts.log,
      drainGraceMs: opts.drainGraceMs ?? 2000,
      spawned: opts.spawned ?? new Set(),
      // Short (unix socket paths hold 107 bytes) and never reused by this process, so concurrent creates differ.
      consoleSocketPath: () => `${opts.dir}/c-${++consoles}.sock`,
    };
    const { records, bad } = listExitFiles(opts.exitsDir);
    for (const rec of records) this.#recovered.set(rec.container_id, rec);
    if (bad.length > 0) opts.log.warn("unreadable exit files left in place", { files: bad });
    if (records.length > 0) opts.log.info("recovered exit files", { count: records.length });
  }

  /** Resolves when a `shutdown` has been answered. */
  get stopped(): Promise<void> {
    return this.#stop.promise;
  }

  /** Containers whose exit is not recorded yet. */
  get liveCount(): number {
    let n = 0;
    for (const c of this.#containers.values()) if (c.live) n++;
    return n + this.#creating.size;
  }

  /** `create` requests in flight. */
  get creatingCount(): number {
    return this.#creating.size;
  }

  /** Pids of the init processes of containers that still run. */
  initPids(): number[] {
    const out: number[] = [];
    for (const c of this.#containers.values()) if (c.live) out.push(c.pid);
    return out;
  }

  /** Runs one request; resolves to its result fields or throws a DavitError. */
  async handle(req: Request): Promise<object> {
    switch (req.op) {
      case "ping":
        return { pid: Deno.pid, pod_id: this.podId, version: PROTOCOL_VERSION, containers: this.#containers.size };
      case "create":
        return { pid: (await this.#create(req)).pid };
      case "status":
        return { containers: this.#status(req.container_id) };
      case "wait": {
        const c = this.#containers.get(req.container_id);
        if (c) return { exit: await c.wait() };
        const rec = this.#recovered.get(req.container_id);
        if (rec) return { exit: rec };
        throw this.#notFound(req.container_id);
      }
      case "reopen_log": {
        const c = this.#containers.get(req.container_id);
        if (!c) throw this.#notFound(req.container_id);
        c.reopenLog();
        return {};
      }
      case "forget":
        this.#forget(req.container_id);
        return {};
      case "shutdown": {
        const live = this.liveCount;
        if (live > 0 && !req.force) {
          throw new FailedPrecondition(
            `Cannot shut down the monitor of pod ${JSON.stringify(this.podId)}: ${live} container(s) still running`,
          );
        }
        this.#stopping = true;
        return {};
      }
      case "adopt":
        if (!this.#adopt) throw new Unimplemented("This monitor cannot serve other pods");
        if (this.#stopping) {
          throw new FailedPrecondition(`The monitor of pod ${JSON.stringify(this.podId)} is shutting down`);
        }
        return await this.#adopt(req.pod_id, req.dir);
      case "attach":
        // Served by #serveConn when it opens a connection; anywhere else it cannot take the connection over.
        throw new InvalidArgument("attach must be the first request on a connection of its own");
    }
  }

  /** Accepts connections until the listener is closed. */
  async serve(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) this.#serveConn(conn);
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) throw err;
    }
  }

  /** Closes every open connection (at shutdown). */
  closeConnections(): void {
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    this.#conns.clear();
  }

  async #create(p: CreateParams): Promise<Container> {
    const id = p.container_id;
    if (this.#stopping) {
      throw new FailedPrecondition(`The monitor of pod ${JSON.stringify(this.podId)} is shutting down`);
    }
    if (this.#containers.has(id) || this.#recovered.has(id) || this.#creating.has(id)) {
      throw new AlreadyExists(
        `Cannot create container ${JSON.stringify(id)}: the monitor already has it (forget it first)`,
      );
    }
    this.#creating.add(id);
    try {
      const c = await Container.create(p, this.#ctx);
      this.#containers.set(id, c);
      this.#ctx.log.info("container created", { id, pid: c.pid });
      return c;
    } finally {
      this.#creating.delete(id);
    }
  }

  #status(id: string | undefined): ContainerStatus[] {
    if (id !== undefined) {
      const c = this.#containers.get(id);
      if (c) return [c.status()];
      const rec = this.#recovered.get(id);
      if (rec) return [recordStatus(rec)];
      throw this.#notFound(id);
    }
    const out = [...this.#containers.values()].map((c) => c.status());
    for (const rec of this.#recovered.values()) out.push(recordStatus(rec));
    return out;
  }

  // Idempotent, like CRI-O's RemoveContainer: forgetting an unknown container succeeds.
  #forget(id: string): void {
    const c = this.#containers.get(id);
    if (c?.live) throw new FailedPrecondition(`Cannot forget container ${JSON.stringify(id)}: it is still running`);
    if (this.#creating.has(id)) {
      throw new FailedPrecondition(`Cannot forget container ${JSON.stringify(id)}: it is being created`);
    }
    c?.release();
    this.#containers.delete(id);
    this.#recovered.delete(id);
    removeExitFile(this.#ctx.exitsDir, id);
  }

  /** Hands `conn` to the container's attach machinery, which queues `answer` first; throws to refuse. */
  #attach(conn: Deno.Conn, p: AttachParams, answer: Uint8Array): AttachConn {
    const c = this.#containers.get(p.container_id);
    if (c) return c.attach(conn, p, answer);
    if (this.#recovered.has(p.container_id)) {
      throw new FailedPrecondition(`Cannot attach to container ${JSON.stringify(p.container_id)}: it has exited`);
    }
    throw this.#notFound(p.container_id);
  }

  #notFound(id: string): NotFound {
    return new NotFound(`No container ${JSON.stringify(id)} in the monitor of pod ${JSON.stringify(this.podId)}`);
  }

  async #serveConn(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    const enc = new TextEncoder();
    let writing = Promise.resolve();
    // Answers go out one whole line at a time, in completion order.
    const send = (line: string): Promise<void> => {
      writing = writing.then(async () => {
        const bytes = enc.encode(line);
        let off = 0;
        while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
      }).catch(() => {
        // the client went away; its answers are dropped
      });
      return writing;
    };
    const splitter = new LineSplitter(MAX_REQUEST_BYTES);
    const buf = new Uint8Array(16 * 1024);
    let first = true;
    let attached: { conn: AttachConn; rest: Uint8Array } | undefined;
    try {
      reading: for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        let chunk: Uint8Array = buf.subarray(0, n);
        for (;;) {
          const next = splitter.pushOne(chunk);
          if (next === undefined) break;
          chunk = next.rest;
          const line = next.line;
          if (line.trim() === "") continue;
          const parsed = parseRequest(line);
          const wasFirst = first;
          first = false;
          if (!parsed.ok) {
            send(encodeError(parsed.id, parsed.error));
            continue;
          }
          const req = parsed.request;
          if (req.op === "attach" && wasFirst) {
            try {
              const answer = enc.encode(encodeResult(req.id, {}));
              attached = { conn: this.#attach(conn, req, answer), rest: chunk.slice() };
              break reading;
            } catch (err) {
              send(encodeError(req.id, err));
              continue;
            }
          }
          this.handle(req).then(
            (result) => send(encodeResult(req.id, result)),
            (err) => {
              if (!(err instanceof DavitError)) {
                this.#ctx.log.error("request failed", { op: req.op, err: errorMessage(err) });
              }
              return send(encodeError(req.id, err));
            },
          ).then(() => {
            if (req.op === "shutdown" && this.#stopping) this.#stop.resolve();
          });
        }
      }
    } catch (err) {
      // A too-long line or a reset connection: answer if possible and drop the connection.
      if (err instanceof DavitError) await send(encodeError(null, err));
      else if (
        !(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.ConnectionReset ||
          err instanceof Deno.errors.Interrupted)
      ) {
        this.#ctx.log.warn("connection error", { err: errorMessage(err) });
      }
    }
    await writing;
    // From here the attach connection owns the socket: its answer line and frames, until it closes.
    if (attached) await attached.conn.run(attached.rest);
    this.#conns.delete(conn);
    try {
      conn.close();
    } catch {
      // closed at shutdown, or by the attach connection
    }
  }
}
