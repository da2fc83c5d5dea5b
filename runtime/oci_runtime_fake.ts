/**
 * A recording, in-memory {@link OciRuntime} for unit tests of code that drives runtimes: it keeps the lifecycle
 * (created -> running -> stopped -> deleted) with the real runtimes' error kinds, records every call, and lets a
 * test script exec results or make the next call of a verb fail. Interactive execs run the same `execHandler`
 * once their stdin is closed, and kill() ends them with 137.
 * @module
 */
import { AlreadyExists, FailedPrecondition, NotFound } from "../lib/errors.ts";
import type {
  CreateOptions,
  DeleteOptions,
  ExecOptions,
  ExecResult,
  InteractiveExec,
  InteractiveExecOptions,
  KillOptions,
  OciRuntime,
  OciState,
  OciVerb,
  ResourceUpdate,
} from "./oci_runtime.ts";

/** One recorded call. */
export interface RecordedCall {
  verb: OciVerb;
  id: string;
  /** The call's arguments after the ID (options, signal, resources). */
  args: unknown[];
}

const STOPPING = new Set(["SIGKILL", "KILL", "9", "SIGTERM", "TERM", "15", "SIGINT", "INT", "2"]);

/** In-memory runtime: see the module comment. */
export class FakeOciRuntime implements OciRuntime {
  readonly name: string;
  /** Every call in order. */
  readonly calls: RecordedCall[] = [];
  /** Resources last applied by `update`, per container. */
  readonly resources = new Map<string, ResourceUpdate>();
  /** Terminal sizes set through interactive execs' `resize`, in order. */
  readonly resizes: { id: string; cols: number; rows: number }[] = [];
  readonly #states = new Map<string, OciState>();
  readonly #failures = new Map<OciVerb, Error[]>();
  #nextPid = 1000;
  /** Answers `exec`; the default echoes nothing and exits 0. */
  execHandler: (id: string, opts: ExecOptions) => ExecResult | Promise<ExecResult> = () => ({
    exitCode: 0,
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
    truncated: false,
  });

  constructor(name = "fake") {
    this.name = name;
  }

  /** Makes the next call of `verb` throw `err` (queued: several calls fail in turn). */
  failNext(verb: OciVerb, err: Error): void {
    const q = this.#failures.get(verb) ?? [];
    q.push(err);
    this.#failures.set(verb, q);
  }

  /** Moves a container to `stopped` as if its process exited on its own. */
  exit(id: string): void {
    const s = this.#need("kill", id);
    s.status = "stopped";
    s.pid = 0;
  }

  /** The verbs called, e.g. `["create", "start"]`, for compact assertions. */
  verbs(id?: string): OciVerb[] {
    return this.calls.filter((c) => id === undefined || c.id === id).map((c) => c.verb);
  }

  #record(verb: OciVerb, id: string, ...args: unknown[]): void {
    this.calls.push({ verb, id, args });
    const err = this.#failures.get(verb)?.shift();
    if (err) throw err;
  }

  #need(verb: OciVerb, id: string): OciState {
    const s = this.#states.get(id);
    if (!s) throw new NotFound(`${this.name} ${verb} ${id}: container does not exist`);
    return s;
  }

  /** Like the real runtimes, writes the (made-up) container PID to `opts.pidFile`. */
  async create(id: string, opts: CreateOptions): Promise<void> {
    await Promise.resolve();
    this.#record("create", id, opts);
    if (this.#states.has(id)) throw new AlreadyExists(`${this.name} create ${id}: container already exists`);
    const pid = this.#nextPid++;
    await Deno.writeTextFile(opts.pidFile, String(pid));
    this.#states.set(id, {
      ociVersion: "1.0.2",
      id,
      status: "created",
      pid,
      bundle: opts.bundle,
      annotations: {},
      created: new Date().toISOString(),
    });
  }

  start(id: string, opts?: { timeoutMs?: number }): Promise<void> {
    return Promise.resolve().then(() => {
      this.#record("start", id, opts);
      const s = this.#need("start", id);
      if (s.status !== "created") {
        throw new FailedPrecondition(`${this.name} start ${id}: cannot start a container in state ${s.status}`);
      }
      s.status = "running";
    });
  }

  kill(id: string, signal: string | number, opts?: KillOptions): Promise<void> {
    return Promise.resolve().then(() => {
      this.#record("kill", id, signal, opts);
      const s = this.#need("kill", id);
      if (s.status === "stopped") throw new FailedPrecondition(`${this.name} kill ${id}: container not running`);
      if (STOPPING.has(String(signal))) {
        s.status = "stopped";
        s.pid = 0;
      }
    });
  }

  delete(id: string, opts?: DeleteOptions): Promise<void> {
    return Promise.resolve().then(() => {
      this.#record("delete", id, opts);
      const s = this.#states.get(id);
      if (!s) {
        if (opts?.force) return;
        throw new NotFound(`${this.name} delete ${id}: container does not exist`);
      }
      if (s.status === "running" && !opts?.force) {
        throw new FailedPrecondition(`${this.name} delete ${id}: cannot delete container that is not stopped`);
      }
      this.#states.delete(id);
      this.resources.delete(id);
    });
  }

  state(id: string, opts?: { timeoutMs?: number }): Promise<OciState | undefined> {
    return Promise.resolve().then(() => {
      this.#record("state", id, opts);
      const s = this.#states.get(id);
      return s ? structuredClone(s) : undefined;
    });
  }

  list(opts?: { timeoutMs?: number }): Promise<OciState[]> {
    return Promise.resolve().then(() => {
      this.#record("list", "", opts);
      return [...this.#states.values()].map((s) => structuredClone(s));
    });
  }

  exec(id: string, opts: ExecOptions): Promise<ExecResult> {
    return Promise.resolve().then(() => {
      this.#record("exec", id, opts);
      const s = this.#need("exec", id);
      if (s.status !== "running") {
        throw new FailedPrecondition(`${this.name} exec ${id}: cannot exec in a ${s.status} container`);
      }
      return this.execHandler(id, opts);
    });
  }

  /** Recorded as an `exec` whose arguments end with `"interactive"`; see the module comment. */
  execInteractive(id: string, opts: InteractiveExecOptions): Promise<InteractiveExec> {
    return Promise.resolve().then(() => {
      this.#record("exec", id, opts, "interactive");
      const s = this.#need("exec", id);
      if (s.status !== "running") {
        throw new FailedPrecondition(`${this.name} exec ${id}: cannot exec in a ${s.status} container`);
      }
      return new FakeInteractiveExec(opts, {
        run: (input) => this.execHandler(id, { args: opts.args, tty: opts.tty, input }),
        resize: (cols, rows) => this.resizes.push({ id, cols, rows }),
      });
    });
  }

  update(id: string, resources: ResourceUpdate, opts?: { timeoutMs?: number }): Promise<void> {
    return Promise.resolve().then(() => {
      this.#record("update", id, resources, opts);
      this.#need("update", id);
      this.resources.set(id, structuredClone(resources));
    });
  }
}

/** An interactive exec answered by a handler: see {@link FakeOciRuntime.execInteractive}. */
class FakeInteractiveExec implements InteractiveExec {
  readonly stdin: WritableStream<Uint8Array> | null;
  readonly stdout: ReadableStream<Uint8Array> | null;
  readonly stderr: ReadableStream<Uint8Array> | null;
  readonly exited: Promise<{ exitCode: number }>;
  #out: ReadableStreamDefaultController<Uint8Array> | undefined;
  #err: ReadableStreamDefaultController<Uint8Array> | undefined;
  readonly #tty: boolean;
  readonly #resize: (cols: number, rows: number) => void;
  #input: Uint8Array[] = [];
  #inputDone = Promise.withResolvers<void>();
  #killed = Promise.withResolvers<{ exitCode: number }>();
  #done = false;

  constructor(
    opts: InteractiveExecOptions,
    handlers: {
      run: (input: Uint8Array) => ExecResult | Promise<ExecResult>;
      resize: (cols: number, rows: number) => void;
    },
  ) {
    this.#tty = opts.tty;
    this.#resize = handlers.resize;
    this.stdin = opts.stdin
      ? new WritableStream<Uint8Array>({
        write: (chunk) => {
          if (this.#done) throw new Error("fake exec: the process exited");
          this.#input.push(chunk.slice());
        },
        close: () => this.#inputDone.resolve(),
      })
      : null;
    if (!opts.stdin) this.#inputDone.resolve();
    this.stdout = opts.stdout ? new ReadableStream<Uint8Array>({ start: (c) => void (this.#out = c) }) : null;
    this.stderr = opts.stderr && !opts.tty
      ? new ReadableStream<Uint8Array>({ start: (c) => void (this.#err = c) })
      : null;
    this.exited = this.#run(handlers.run);
    this.exited.catch(() => {});
    opts.signal?.addEventListener("abort", () => void this.kill(), { once: true });
  }

  async #run(run: (input: Uint8Array) => ExecResult | Promise<ExecResult>): Promise<{ exitCode: number }> {
    try {
      const input = await Promise.race([this.#inputDone.promise.then(() => concat(this.#input)), this.#killed.promise]);
      if (!(input instanceof Uint8Array)) return input;
      const res = await run(input);
      // With a terminal both streams come out of the one output.
      offer(this.#out, res.stdout);
      offer(this.#tty ? this.#out : this.#err, res.stderr);
      return { exitCode: res.exitCode };
    } finally {
      this.#done = true;
      for (const c of [this.#out, this.#err]) {
        try {
          c?.close();
        } catch {
          // the reader cancelled it
        }
      }
    }
  }

  resize(cols: number, rows: number): Promise<void> {
    if (this.#tty && !this.#done) this.#resize(cols, rows);
    return Promise.resolve();
  }

  async kill(): Promise<void> {
    this.#killed.resolve({ exitCode: 137 });
    await this.exited.catch(() => {});
  }
}

/** Enqueues unless there is nothing to give or the reader cancelled the stream. */
function offer(c: ReadableStreamDefaultController<Uint8Array> | undefined, chunk: Uint8Array): void {
  if (c === undefined || chunk.byteLength === 0) return;
  try {
    c.enqueue(chunk);
  } catch {
    // cancelled
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
