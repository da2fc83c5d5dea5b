/**
 * Durable records of pods and containers: what the daemon needs after a restart to answer status calls and to
 * reconcile with the OCI runtime and the monitors. The CRI request that created an object is kept as opaque JSON
 * (runtime/ never interprets it); everything the runtime side needs is in typed columns.
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { AlreadyExists, NotFound } from "../lib/errors.ts";
import type { Migration } from "../storage/mod.ts";

/** The tables. */
export const STATE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "pods and containers",
    sql: `
      CREATE TABLE pods (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('creating', 'ready', 'notready')),
        created_at TEXT NOT NULL,
        runtime_handler TEXT NOT NULL,
        request TEXT NOT NULL,
        runtime TEXT NOT NULL DEFAULT '{}'
      );
      CREATE TABLE containers (
        id TEXT PRIMARY KEY,
        pod_id TEXT NOT NULL REFERENCES pods(id),
        name TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('creating', 'created', 'running', 'exited', 'unknown')),
        created_at TEXT NOT NULL,
        started_at TEXT NOT NULL DEFAULT '0',
        finished_at TEXT NOT NULL DEFAULT '0',
        exit_code INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        image_id TEXT NOT NULL,
        image_name TEXT NOT NULL,
        request TEXT NOT NULL,
        runtime TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX containers_pod ON containers(pod_id);
      CREATE INDEX containers_image ON containers(image_id);
    `,
  },
];

/** Pod states as stored. */
export type PodState = "creating" | "ready" | "notready";
/** Container states as stored. */
export type ContainerState = "creating" | "created" | "running" | "exited" | "unknown";

/** A pod record. `runtime` is the runtime side's own plain data (namespace paths, cgroup, IPs, ...). */
export interface PodRecord<R = Record<string, unknown>> {
  id: string;
  /** The reserved name (metadata name, namespace, uid and attempt). */
  name: string;
  state: PodState;
  /** Nanoseconds since the epoch, as a decimal string. */
  createdAt: string;
  runtimeHandler: string;
  /** The creating request, opaque here. */
  request: unknown;
  runtime: R;
}

/** A container record. */
export interface ContainerRecord<R = Record<string, unknown>> {
  id: string;
  podId: string;
  name: string;
  state: ContainerState;
  createdAt: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  reason: string;
  message: string;
  imageId: string;
  imageName: string;
  request: unknown;
  runtime: R;
}

type Row = Record<string, string | number | null>;

// deno-lint-ignore no-explicit-any
function podFrom(r: Row): PodRecord<any> {
  return {
    id: String(r.id),
    name: String(r.name),
    state: r.state as PodState,
    createdAt: String(r.created_at),
    runtimeHandler: String(r.runtime_handler),
    request: JSON.parse(String(r.request)),
    runtime: JSON.parse(String(r.runtime)),
  };
}

// deno-lint-ignore no-explicit-any
function containerFrom(r: Row): ContainerRecord<any> {
  return {
    id: String(r.id),
    podId: String(r.pod_id),
    name: String(r.name),
    state: r.state as ContainerState,
    createdAt: String(r.created_at),
    startedAt: String(r.started_at),
    finishedAt: String(r.finished_at),
    exitCode: Number(r.exit_code),
    reason: String(r.reason),
    message: String(r.message),
    imageId: String(r.image_id),
    imageName: String(r.image_name),
    request: JSON.parse(String(r.request)),
    runtime: JSON.parse(String(r.runtime)),
  };
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && /UNIQUE constraint failed/.test(err.message);
}

/** Pods and containers in the metadata database. */
export class StateStore {
  readonly #db: DatabaseSync;
  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Records a new pod (state "creating"); a taken name is AlreadyExists naming the pod that holds it. */
  addPod(p: PodRecord<unknown>): void {
    try {
      this.#db.prepare(
        "INSERT INTO pods (id, name, state, created_at, runtime_handler, request, runtime) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ).run(p.id, p.name, p.state, p.createdAt, p.runtimeHandler, JSON.stringify(p.request), JSON.stringify(p.runtime));
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const holder = this.podByName(p.name);
      throw new AlreadyExists(`pod name "${p.name}" is reserved by pod ${holder?.id ?? "(unknown)"}`, { cause: err });
    }
  }

  /** Updates a pod's state and/or runtime data. */
  updatePod(id: string, change: { state?: PodState; runtime?: unknown }): void {
    if (change.state) this.#db.prepare("UPDATE pods SET state = ? WHERE id = ?").run(change.state, id);
    if (change.runtime) {
      this.#db.prepare("UPDATE pods SET runtime = ? WHERE id = ?").run(JSON.stringify(change.runtime), id);
    }
  }

  /** One pod, or undefined. */
  pod<R = Record<string, unknown>>(id: string): PodRecord<R> | undefined {
    const r = this.#db.prepare("SELECT * FROM pods WHERE id = ?").get(id) as Row | undefined;
    return r && podFrom(r);
  }

  /** The pod with this reserved name, or undefined. */
  podByName<R = Record<string, unknown>>(name: string): PodRecord<R> | undefined {
    const r = this.#db.prepare("SELECT * FROM pods WHERE name = ?").get(name) as Row | undefined;
    return r && podFrom(r);
  }

  /** Pods whose ID starts with `prefix` (the CRI lets clients use unique prefixes). */
  podsByPrefix(prefix: string): PodRecord[] {
    return (this.#db.prepare("SELECT * FROM pods WHERE id LIKE ? ORDER BY created_at").all(`${prefix}%`) as Row[]).map(
      podFrom,
    );
  }

  /** Every pod. */
  pods<R = Record<string, unknown>>(): PodRecord<R>[] {
    return (this.#db.prepare("SELECT * FROM pods ORDER BY created_at").all() as Row[]).map(podFrom);
  }

  /** Deletes a pod record (its containers must be gone). */
  deletePod(id: string): void {
    this.#db.prepare("DELETE FROM pods WHERE id = ?").run(id);
  }

  /** Records a new container; a taken name is AlreadyExists naming the holder. */
  addContainer(c: ContainerRecord<unknown>): void {
    try {
      this.#db.prepare(
        "INSERT INTO containers (id, pod_id, name, state, created_at, image_id, image_name, request, runtime) " +
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ).run(
        c.id,
        c.podId,
        c.name,
        c.state,
        c.createdAt,
        c.imageId,
        c.imageName,
        JSON.stringify(c.request),
        JSON.stringify(c.runtime),
      );
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const holder = this.containerByName(c.name);
      throw new AlreadyExists(`container name "${c.name}" is reserved by container ${holder?.id ?? "(unknown)"}`, {
        cause: err,
      });
    }
  }

  /** Updates a container's lifecycle fields. */
  updateContainer(
    id: string,
    change: Partial<Pick<ContainerRecord, "state" | "startedAt" | "finishedAt" | "exitCode" | "reason" | "message">> & {
      runtime?: unknown;
    },
  ): void {
    const cols: [string, string | number][] = [];
    if (change.state !== undefined) cols.push(["state", change.state]);
    if (change.startedAt !== undefined) cols.push(["started_at", change.startedAt]);
    if (change.finishedAt !== undefined) cols.push(["finished_at", change.finishedAt]);
    if (change.exitCode !== undefined) cols.push(["exit_code", change.exitCode]);
    if (change.reason !== undefined) cols.push(["reason", change.reason]);
    if (change.message !== undefined) cols.push(["message", change.message]);
    if (change.runtime !== undefined) cols.push(["runtime", JSON.stringify(change.runtime)]);
    if (cols.length === 0) return;
    this.#db.prepare(`UPDATE containers SET ${cols.map(([c]) => `${c} = ?`).join(", ")} WHERE id = ?`)
      .run(...cols.map(([, v]) => v), id);
  }

  /** One container, or undefined. */
  container<R = Record<string, unknown>>(id: string): ContainerRecord<R> | undefined {
    const r = this.#db.prepare("SELECT * FROM containers WHERE id = ?").get(id) as Row | undefined;
    return r && containerFrom(r);
  }

  /** The container with this reserved name, or undefined. */
  containerByName<R = Record<string, unknown>>(name: string): ContainerRecord<R> | undefined {
    const r = this.#db.prepare("SELECT * FROM containers WHERE name = ?").get(name) as Row | undefined;
    return r && containerFrom(r);
  }

  /** Containers whose ID starts with `prefix`. */
  containersByPrefix(prefix: string): ContainerRecord[] {
    return (this.#db.prepare("SELECT * FROM containers WHERE id LIKE ? ORDER BY created_at").all(`${prefix}%`) as Row[])
      .map(containerFrom);
  }

  /** Every container, or a pod's. */
  containers<R = Record<string, unknown>>(podId?: string): ContainerRecord<R>[] {
    const rows = podId
      ? this.#db.prepare("SELECT * FROM containers WHERE pod_id = ? ORDER BY created_at").all(podId)
      : this.#db.prepare("SELECT * FROM containers ORDER BY created_at").all();
    return (rows as Row[]).map(containerFrom);
  }

  /** A container created from the image, if any. */
  containerUsingImage(imageId: string): string | undefined {
    const r = this.#db.prepare("SELECT id FROM containers WHERE image_id = ? LIMIT 1").get(imageId) as
      | { id: string }
      | undefined;
    return r?.id;
  }

  /** Deletes a container record. */
  deleteContainer(id: string): void {
    this.#db.prepare("DELETE FROM containers WHERE id = ?").run(id);
  }

  /** Resolves a full ID or unique prefix; NotFound or an ambiguity error otherwise. */
  resolve(kind: "pod" | "container", idOrPrefix: string): string {
    const exact = kind === "pod" ? this.pod(idOrPrefix) : this.container(idOrPrefix);
    if (exact) return exact.id;
    if (!/^[0-9a-f]{1,63}$/.test(idOrPrefix)) throw new NotFound(`${kind} "${idOrPrefix}" not found`);
    const matches = kind === "pod" ? this.podsByPrefix(idOrPrefix) : this.containersByPrefix(idOrPrefix);
    if (matches.length === 1) return matches[0]!.id;
    if (matches.length === 0) throw new NotFound(`${kind} "${idOrPrefix}" not found`);
    throw new NotFound(`${kind} ID prefix "${idOrPrefix}" is ambiguous (${matches.length} match)`);
  }
}
