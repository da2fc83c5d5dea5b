/**
 * Containers: creating them (root filesystem, OCI spec, bundle, `create` through the pod's monitor), starting,
 * stopping with the stop signal then SIGKILL, removing, and keeping their exit status in the database as the
 * monitors report it (or, for containers that outlived a killed monitor, as the OCI runtime does: orphans.ts).
 * Work on one container is serialised; different containers proceed in parallel.
 * @module
 */
import { DavitError, errorMessage, FailedPrecondition, NotFound } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import type { ImageService } from "../image/mod.ts";
import type { ContainerRecord, OciRuntime, PodRecord, StateStore } from "../runtime/mod.ts";
import { containerCgroupPath } from "../runtime/mod.ts";
import type { RootfsManager } from "../storage/mod.ts";
import type { ContainerStatus as MonitorStatus } from "../monitor/mod.ts";
import { containerReservedName, type ContainerSpec } from "./container_config.ts";
import { resourcesFromSpec } from "./container_spec.ts";
import { defaultPodLogDir } from "./pod_config.ts";
import { KeyedMutex } from "./keyed_mutex.ts";
import type { MonitorSet } from "./monitors.ts";
import { nowNanos, randomId } from "./ids.ts";
import { Orphans, outlivedMonitor } from "./orphans.ts";
import type { PodManager, PodRuntime } from "./pods.ts";

/** What a container's runtime side consists of (stored with it). */
export interface ContainerRuntime {
  spec: ContainerSpec;
  bundle?: string;
  rootfs?: string;
  logPath?: string;
  cgroup?: string;
  /** The resolved user, for ContainerStatus. */
  user?: { uid: number; gid: number; additionalGids: number[] };
  /** The CRI ContainerResources the OCI spec applies, for ContainerStatus (taken once, at creation). */
  resources?: Record<string, unknown>;
  created?: boolean;
  pid?: number;
  /**
   * When davit found that the pod's monitor had died while this container lived (nanoseconds): its stdio is gone
   * and its end is learnt from the OCI runtime (orphans.ts).
   */
  monitorLostAt?: string;
}

/** Everything spec generation gets (plain data). */
export interface SpecContext {
  id: string;
  container: ContainerSpec;
  pod: PodRecord<PodRuntime>;
  imageConfig: Uint8Array;
  rootfsPath: string;
  passwd?: string;
  group?: string;
  cgroupsPath: string;
}

/** Builds the OCI runtime spec for a container; returns it with the user it resolved. */
export type SpecBuilder = (
  ctx: SpecContext,
) => Promise<{ spec: Record<string, unknown>; user: ContainerRuntime["user"] }>;

/** What {@link ContainerManager} needs. */
export interface ContainerManagerOptions {
  state: StateStore;
  pods: PodManager;
  images: ImageService;
  rootfs: RootfsManager;
  monitors: MonitorSet;
  runtimeFor: (handler: string) => OciRuntime & { path: string; root: string; args: string[] };
  buildSpec: SpecBuilder;
  runroot: string;
  logDir: string;
  logSizeMax: number;
}

function toNanos(rfc3339: string | undefined): string {
  if (!rfc3339) return "0";
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(rfc3339);
  if (!m) return String(BigInt(Date.parse(rfc3339)) * 1_000_000n);
  const base = BigInt(Date.parse(`${m[1]}${m[3]}`)) * 1_000_000n;
  const frac = BigInt((m[2] ?? "").padEnd(9, "0").slice(0, 9) || "0");
  return String(base + frac);
}

/** Container lifecycle. */
export class ContainerManager {
  readonly #o: ContainerManagerOptions;
  readonly #lock = new KeyedMutex();
  readonly #creating = new Map<string, Promise<string>>();
  readonly #log = logger("containers");
  readonly #orphans: Orphans;

  constructor(opts: ContainerManagerOptions) {
    this.#o = opts;
    this.#orphans = new Orphans({ state: opts.state, runtimeFor: opts.runtimeFor });
  }

  #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(`ctr:${id}`, fn);
  }

  /** The container record (exit status refreshed from its monitor), or NotFound. */
  async get(idOrPrefix: string): Promise<ContainerRecord<ContainerRuntime>> {
    const id = this.#o.state.resolve("container", idOrPrefix);
    await this.#refresh(id);
    return this.#o.state.container<ContainerRuntime>(id)!;
  }

  /**
   * Brings the record up to date with what the monitor knows (an exit recorded while nobody asked). A container
   * the pod's monitor does not know (it was started by a monitor that died and was replaced) or whose monitor is
   * gone for good is followed through the OCI runtime from then on.
   */
  async #refresh(id: string, known?: MonitorStatus): Promise<void> {
    const c = this.#o.state.container<ContainerRuntime>(id);
    if (!c || (c.state !== "running" && c.state !== "created")) return;
    if (outlivedMonitor(c)) return await this.#orphans.check(id);
    let st = known;
    if (!st) {
      try {
        st = (await (await this.#o.monitors.client(c.podId)).status(id))[0];
      } catch (err) {
        // The monitor was replaced, or is gone for good: so are the other containers of the pod it served.
        if (err instanceof NotFound) return await this.#refreshPod(c.podId);
        await this.#o.monitors.forgetClient(c.podId);
        if (this.#o.monitors.gone(c.podId)) return await this.#refreshPod(c.podId);
        this.#log.debug("monitor unreachable while refreshing a container", {
          container: id,
          error: errorMessage(err),
        });
        return;
      }
    }
    if (!st) return;
    // An exit is final only with its code (a monitor older than the fix could say "exited" while draining).
    if (st.state === "exited" && st.exit_code !== undefined) {
      this.#o.state.updateContainer(id, {
        state: "exited",
        exitCode: st.exit_code ?? 0,
        finishedAt: toNanos(st.finished_at),
        reason: st.reason ?? "",
        message: st.message ?? "",
      });
    } else if (st.state === "running" && c.state === "created") {
      this.#o.state.updateContainer(id, { state: "running" });
    }
  }

  /** Creates a container in a ready pod; a retried request gets the first attempt's container. */
  create(podIdOrPrefix: string, spec: ContainerSpec): Promise<string> {
    const pod = this.#o.pods.get(podIdOrPrefix);
    if (pod.state !== "ready") {
      return Promise.reject(new FailedPrecondition(`pod sandbox ${pod.id} is not ready (state ${pod.state})`));
    }
    const name = containerReservedName(spec, pod.runtime.spec);
    const pending = this.#creating.get(name);
    if (pending) return pending;
    const existing = this.#o.state.containerByName(name);
    if (existing && existing.state !== "creating") return Promise.resolve(existing.id);
    const p = this.#create(pod, spec, name).finally(() => this.#creating.delete(name));
    this.#creating.set(name, p);
    return p;
  }

  async #create(pod: PodRecord<PodRuntime>, spec: ContainerSpec, name: string): Promise<string> {
    const img = this.#o.images.find(spec.image);
    if (!img) throw new NotFound(`image "${spec.image}" is not stored: pull it first`);
    const id = randomId();
    const rt: ContainerRuntime = { spec };
    this.#o.state.addContainer({
      id,
      podId: pod.id,
      name,
      state: "creating",
      createdAt: nowNanos(),
      startedAt: "0",
      finishedAt: "0",
      exitCode: 0,
      reason: "",
      message: "",
      imageId: img.id,
      imageName: spec.image,
      request: spec,
      runtime: rt,
    });
    const save = () => this.#o.state.updateContainer(id, { runtime: { ...rt } });
    return await this.#locked(id, async () => {
      try {
        const fs = await this.#o.rootfs.mount(id, img.id);
        rt.rootfs = fs.path;
        save();
        const read = (p: string) => Deno.readTextFile(`${fs.path}${p}`).catch(() => undefined);
        const [passwd, group] = await Promise.all([read("/etc/passwd"), read("/etc/group")]);
        rt.cgroup = containerCgroupPath(pod.runtime.cgroup ?? "/davit", id);
        const { spec: oci, user } = await this.#o.buildSpec({
          id,
          container: spec,
          pod,
          imageConfig: img.config,
          rootfsPath: fs.path,
          ...(passwd !== undefined ? { passwd } : {}),
          ...(group !== undefined ? { group } : {}),
          cgroupsPath: rt.cgroup,
        });
        if (user) rt.user = user;
        rt.resources = resourcesFromSpec(oci);
        const bundle = `${this.#o.runroot}/containers/${id}`;
        await Deno.mkdir(bundle, { recursive: true, mode: 0o700 });
        await Deno.writeTextFile(`${bundle}/config.json`, JSON.stringify(oci));
        rt.bundle = bundle;
        const logDir = pod.runtime.spec.logDirectory ||
          defaultPodLogDir(this.#o.logDir, pod.runtime.spec);
        rt.logPath = `${logDir}/${spec.logPath || `${spec.name}/${spec.attempt}.log`}`;
        await Deno.mkdir(rt.logPath.slice(0, rt.logPath.lastIndexOf("/")), { recursive: true });
        save();
        const runtime = this.#o.runtimeFor(pod.runtimeHandler);
        const monitor = await this.#o.monitors.client(pod.id);
        rt.pid = await monitor.create({
          container_id: id,
          runtime_path: runtime.path,
          runtime_root: runtime.root,
          runtime_args: runtime.args,
          bundle,
          log_path: rt.logPath,
          log_size_max: this.#o.logSizeMax,
          terminal: spec.tty,
          stdin: spec.stdin,
          stdin_once: spec.stdinOnce,
        });
        rt.created = true;
        this.#o.state.updateContainer(id, { state: "created", runtime: { ...rt } });
        return id;
      } catch (err) {
        this.#log.warn("container creation failed; undoing it", { container: id, name, error: errorMessage(err) });
        await this.#teardown(id, pod.id, pod.runtimeHandler, rt).catch((e) =>
          this.#log.error("undoing a failed container left something", { container: id, error: errorMessage(e) })
        );
        this.#o.state.deleteContainer(id);
        throw err;
      }
    });
  }

  async #teardown(id: string, podId: string, handler: string, rt: ContainerRuntime): Promise<void> {
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${errorMessage(err)}`);
      }
    };
    if (rt.created || rt.bundle) {
      await step("runtime delete", () => this.#o.runtimeFor(handler).delete(id, { force: true }));
    }
    await step("monitor forget", async () => {
      try {
        await (await this.#o.monitors.client(podId)).forget(id);
      } catch (err) {
        if (!(err instanceof NotFound) && !(err instanceof DavitError && err.kind === "Unavailable")) throw err;
      }
    });
    await step("rootfs", () => this.#o.rootfs.remove(id));
    if (rt.bundle) await step("bundle", () => Deno.remove(rt.bundle!, { recursive: true }).catch(() => {}));
    if (problems.length) throw new FailedPrecondition(`releasing container ${id}: ${problems.join("; ")}`);
  }

  /** Starts a created container. */
  async start(idOrPrefix: string): Promise<void> {
    const c = await this.get(idOrPrefix);
    await this.#locked(c.id, async () => {
      const cur = this.#o.state.container<ContainerRuntime>(c.id)!;
      if (cur.state !== "created") {
        throw new FailedPrecondition(`container ${c.id} is ${cur.state}, not created: it cannot be started`);
      }
      if (outlivedMonitor(cur)) {
        throw new FailedPrecondition(
          `container ${c.id} cannot be started: the pod's monitor that held its stdout and stderr died, so its ` +
            `output would go nowhere; remove it and create it again`,
        );
      }
      const pod = this.#o.state.pod<PodRuntime>(cur.podId)!;
      // Taken before the start: a container that exits at once must never finish before it started.
      const startedAt = nowNanos();
      await this.#o.runtimeFor(pod.runtimeHandler).start(c.id);
      // A refresh (a status call, the orphan check) may already have recorded its exit: keep that state.
      const now = this.#o.state.container<ContainerRuntime>(c.id);
      this.#o.state.updateContainer(c.id, now?.state === "created" ? { state: "running", startedAt } : { startedAt });
    });
  }

  /** Stops a container: its stop signal, then SIGKILL after `timeoutSec`; idempotent. */
  async stop(idOrPrefix: string, timeoutSec: number): Promise<void> {
    const c = await this.get(idOrPrefix);
    await this.#locked(c.id, () => this.#stopLocked(c.id, timeoutSec));
  }

  async #stopLocked(id: string, timeoutSec: number): Promise<void> {
    await this.#refresh(id);
    const cur = this.#o.state.container<ContainerRuntime>(id)!;
    if (cur.state !== "running" && cur.state !== "created") return;
    const signal = cur.runtime.spec.stopSignal || this.#imageStopSignal(cur) || "SIGTERM";
    if (outlivedMonitor(cur)) return await this.#orphans.stop(id, signal, timeoutSec);
    try {
      await this.#stopThroughMonitor(cur, signal, timeoutSec);
    } catch (err) {
      // The monitor died during the stop: the container is then followed through the runtime.
      // (NotFound: it was replaced meanwhile, and the new one does not know the container.)
      if (!(err instanceof DavitError && (err.kind === "Unavailable" || err.kind === "NotFound"))) throw err;
      await this.#o.monitors.forgetClient(cur.podId);
      await this.#refresh(id);
      const now = this.#o.state.container<ContainerRuntime>(id)!;
      if (!outlivedMonitor(now)) throw err;
      await this.#orphans.stop(id, signal, timeoutSec);
    }
  }

  async #stopThroughMonitor(
    cur: ContainerRecord<ContainerRuntime>,
    signal: string,
    timeoutSec: number,
  ): Promise<void> {
    const id = cur.id;
    const pod = this.#o.state.pod<PodRuntime>(cur.podId)!;
    const runtime = this.#o.runtimeFor(pod.runtimeHandler);
    const monitor = await this.#o.monitors.client(cur.podId);
    const waitExit = (ms: number) =>
      monitor.wait(id, { timeoutMs: ms }).then(() => true, (err: unknown) => {
        if (err instanceof DavitError && err.kind === "DeadlineExceeded") return false;
        throw err;
      });
    if (timeoutSec > 0 && cur.state === "running") {
      await runtime.kill(id, signal).catch((err) =>
        this.#log.debug("stop signal not delivered", { container: id, error: errorMessage(err) })
      );
      if (await waitExit(timeoutSec * 1000)) return await this.#refresh(id);
    }
    await runtime.kill(id, "SIGKILL", { all: true }).catch((err) =>
      this.#log.debug("SIGKILL not delivered", { container: id, error: errorMessage(err) })
    );
    if (!(await waitExit(30_000))) {
      throw new FailedPrecondition(`container ${id} did not exit after SIGKILL within 30 s`);
    }
    await this.#refresh(id);
  }

  #imageStopSignal(c: ContainerRecord<ContainerRuntime>): string {
    const img = this.#o.images.store.getImage(c.imageId);
    if (!img) return "";
    try {
      const cfg = JSON.parse(new TextDecoder().decode(img.config));
      return typeof cfg?.config?.StopSignal === "string" ? cfg.config.StopSignal : "";
    } catch {
      return "";
    }
  }

  /** Removes a container, killing it first if it runs; idempotent. */
  async remove(idOrPrefix: string): Promise<void> {
    let c: ContainerRecord<ContainerRuntime>;
    try {
      c = await this.get(idOrPrefix);
    } catch (err) {
      if (err instanceof NotFound) return;
      throw err;
    }
    await this.#locked(c.id, async () => {
      const cur = this.#o.state.container<ContainerRuntime>(c.id);
      if (!cur) return;
      await this.#stopLocked(c.id, 0).catch((err) =>
        this.#log.debug("stop before remove", { container: c.id, error: errorMessage(err) })
      );
      const pod = this.#o.state.pod<PodRuntime>(cur.podId)!;
      await this.#teardown(c.id, cur.podId, pod.runtimeHandler, cur.runtime);
      this.#o.state.deleteContainer(c.id);
    });
  }

  /** Stops every container of a pod. */
  async stopAll(podId: string, timeoutSec: number): Promise<void> {
    await Promise.all(
      this.#o.state.containers(podId).map((c) =>
        this.stop(c.id, timeoutSec).catch((err) => {
          this.#log.warn("stopping a container of a stopping pod failed", {
            container: c.id,
            error: errorMessage(err),
          });
        })
      ),
    );
  }

  /** Removes every container of a pod. */
  async removeAll(podId: string): Promise<void> {
    for (const c of this.#o.state.containers(podId)) await this.remove(c.id);
  }

  /**
   * Every container, refreshed from the monitors (and from the OCI runtime for containers that outlived their
   * monitor: those a pod's monitor does not know, and those of a monitor gone for good).
   */
  async list(): Promise<ContainerRecord<ContainerRuntime>[]> {
    const all = this.#o.state.containers<ContainerRuntime>().filter((c) => c.state !== "creating");
    const live = all.filter((c) => c.state === "running" || c.state === "created");
    const pods = new Set(live.filter((c) => !outlivedMonitor(c)).map((c) => c.podId));
    await Promise.all([
      ...[...pods].map((podId) => this.#refreshPod(podId)),
      this.#orphans.checkMany(live.filter(outlivedMonitor).map((c) => c.id)),
    ]);
    return live.length === 0 ? all : this.#o.state.containers<ContainerRuntime>().filter((c) => c.state !== "creating");
  }

  /**
   * Refreshes the live containers of one pod from its monitor (started again if it died). Those it does not know,
   * or all of them when the monitor is gone for good, outlived their monitor.
   */
  async #refreshPod(podId: string): Promise<void> {
    const ids = this.#o.state.containers<ContainerRuntime>(podId)
      .filter((c) => (c.state === "running" || c.state === "created") && !outlivedMonitor(c))
      .map((c) => c.id);
    if (ids.length === 0) return;
    let statuses: MonitorStatus[];
    try {
      statuses = await (await this.#o.monitors.client(podId)).status();
    } catch (err) {
      await this.#o.monitors.forgetClient(podId);
      if (this.#o.monitors.gone(podId)) {
        for (const id of ids) await this.#orphans.adopt(id);
        return;
      }
      this.#log.debug("monitor unreachable while refreshing a pod's containers", {
        pod: podId,
        error: errorMessage(err),
      });
      return;
    }
    for (const st of statuses) await this.#refresh(st.container_id, st);
    const known = new Set(statuses.map((st) => st.container_id));
    for (const id of ids) if (!known.has(id)) await this.#orphans.adopt(id);
  }

  /** Stops following containers that outlived their monitor (at daemon shutdown). */
  async close(): Promise<void> {
    await this.#orphans.close();
  }

  /** At start: remove containers whose creation a crash interrupted; refresh the rest from the monitors. */
  async recover(): Promise<void> {
    for (const c of this.#o.state.containers<ContainerRuntime>()) {
      if (c.state !== "creating") continue;
      const pod = this.#o.state.pod<PodRuntime>(c.podId);
      this.#log.warn("removing a container whose creation was interrupted", { container: c.id });
      await this.#teardown(c.id, c.podId, pod?.runtimeHandler ?? "runc", c.runtime).catch((err) =>
        this.#log.error("cleanup left something", { container: c.id, error: errorMessage(err) })
      );
      this.#o.state.deleteContainer(c.id);
    }
    await this.list();
  }
}
