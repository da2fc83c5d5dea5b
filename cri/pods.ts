/**
 * Pod sandboxes: creating a pod's namespaces, files, /dev/shm, cgroup, monitor, network and (for a shared PID
 * namespace only) infra process, stopping and removing them, reporting their state, and putting things right after
 * a crash. Work on one pod is serialised; different pods proceed in parallel. Every step records what it made so a
 * failure (or a crash) undoes exactly that.
 * @module
 */
import { errorMessage, FailedPrecondition, InvalidArgument, NotFound } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { parseByteSize } from "../lib/config.ts";
import {
  createCgroup,
  createPodNamespaces,
  mountPodShm,
  podCgroupPath,
  type PodNamespacePaths,
  removeCgroup,
  removePodFiles,
  removePodNamespaces,
  unmountPodShm,
  writePodFiles,
} from "../runtime/mod.ts";
import type { PodRecord, StateStore } from "../runtime/mod.ts";
import { nowNanos, randomId } from "./ids.ts";
import { KeyedMutex } from "./keyed_mutex.ts";
import { defaultPodLogDir, podReservedName, type PodSpec } from "./pod_config.ts";
import { infraAlive, type InfraRecord, type PodInfra } from "./pod_infra.ts";

/** What a pod's runtime side consists of; stored with the pod so removal and recovery know what to undo. */
export interface PodRuntime {
  spec: PodSpec;
  namespaces?: PodNamespacePaths;
  files?: { hostname: string; hosts: string; resolvConf: string };
  shm?: string;
  cgroup?: string;
  /** True when davit made the cgroup (and so removes it). */
  ownsCgroup?: boolean;
  ips?: string[];
  networkSetUp?: boolean;
  monitorDir?: string;
  /** The infra process holding the pod's shared PID namespace (pods with `pid` POD only). */
  infra?: InfraRecord;
}

/** The pod network, filled in by CNI; without it pods get loopback only. */
export interface PodNetwork {
  setUp(pod: { id: string; spec: PodSpec; netns: string }): Promise<{ ips: string[] }>;
  tearDown(pod: { id: string; spec: PodSpec; netns?: string }): Promise<void>;
}

/** The pod monitor (a process that may serve several pods; placed with the pod, released after its removal). */
export interface PodMonitors {
  start(podId: string): Promise<{ dir: string }>;
  stop(podId: string): Promise<void>;
}

/** What {@link PodManager} needs. */
export interface PodManagerOptions {
  state: StateStore;
  runroot: string;
  shmSize: string;
  runtimeHandlers: string[];
  defaultRuntime: string;
  network?: PodNetwork;
  monitors?: PodMonitors;
  /** Infra processes, for pods that share a PID namespace. */
  infra?: PodInfra;
  /**
   * Where logs of pods without a `log_directory` of their own go (`<log_dir>/<ns>_<name>_<uid>`, made by
   * CreateContainer); RemovePodSandbox removes that directory, which nobody else owns.
   */
  defaultLogDir?: string;
  /** Stops and removes a pod's containers (the container side registers it). */
  containers?: {
    stopAll(podId: string, timeoutSec: number): Promise<void>;
    removeAll(podId: string): Promise<void>;
  };
}

/** Pod lifecycle. */
export class PodManager {
  readonly #o: PodManagerOptions;
  readonly #lock = new KeyedMutex();
  readonly #creating = new Map<string, Promise<string>>();
  readonly #log = logger("pods");

  constructor(opts: PodManagerOptions) {
    this.#o = opts;
  }

  /** Serialises work on one pod. */
  locked<T>(podId: string, fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(`pod:${podId}`, fn);
  }

  /** The pod record, or NotFound. */
  get(idOrPrefix: string): PodRecord<PodRuntime> {
    const id = this.#o.state.resolve("pod", idOrPrefix);
    return this.#o.state.pod<PodRuntime>(id)!;
  }

  /**
   * Creates a pod. A retry of a request whose first attempt is still running waits for it, and a retry after it
   * finished gets the same pod: the kubelet retries after its own deadline, and must never see "name reserved".
   */
  run(spec: PodSpec, runtimeHandler: string): Promise<string> {
    const handler = runtimeHandler || this.#o.defaultRuntime;
    if (!this.#o.runtimeHandlers.includes(handler)) {
      return Promise.reject(
        new InvalidArgument(
          `runtime_handler "${runtimeHandler}" is not configured (have: ${this.#o.runtimeHandlers.join(", ")})`,
        ),
      );
    }
    const name = podReservedName(spec);
    const pending = this.#creating.get(name);
    if (pending) return pending;
    const existing = this.#o.state.podByName(name);
    if (existing && existing.state !== "creating") return Promise.resolve(existing.id);
    const p = this.#create(spec, handler, name).finally(() => this.#creating.delete(name));
    this.#creating.set(name, p);
    return p;
  }

  async #create(spec: PodSpec, handler: string, name: string): Promise<string> {
    // A shared PID namespace needs the pause image: made sure of before anything of the pod exists to undo.
    if (spec.pid === "POD") {
      if (!this.#o.infra) throw new FailedPrecondition("a shared PID namespace (pid POD) needs an infra process");
      await this.#o.infra.prepare();
    }
    const id = randomId();
    const rt: PodRuntime = { spec };
    this.#o.state.addPod({
      id,
      name,
      state: "creating",
      createdAt: nowNanos(),
      runtimeHandler: handler,
      request: spec,
      runtime: { ...rt },
    });
    const save = () => this.#o.state.updatePod(id, { runtime: { ...rt } });
    const runroot = this.#o.runroot;
    return await this.locked(id, async () => {
      let infra: Promise<void> | undefined;
      try {
        // The monitor is a separate process whose start-up overlaps with the namespace work.
        const monitor = this.#o.monitors?.start(id);
        // Awaited below; until then a failure must not count as an unhandled rejection.
        monitor?.catch(() => {});
        rt.namespaces = await createPodNamespaces(runroot, id, {
          hostname: spec.hostname,
          hostNetwork: spec.network === "NODE",
          hostIpc: spec.ipc === "NODE",
          sysctls: spec.sysctls,
        });
        save();
        rt.files = await writePodFiles(runroot, id, {
          hostname: spec.hostname,
          ...(spec.dns ? { dns: spec.dns } : {}),
        });
        if (spec.ipc !== "NODE") rt.shm = await mountPodShm(runroot, id, { sizeBytes: parseByteSize(this.#o.shmSize) });
        save();
        if (spec.cgroupParent) {
          rt.cgroup = await createCgroup(spec.cgroupParent);
          rt.ownsCgroup = false;
        } else {
          rt.cgroup = await createCgroup(podCgroupPath("/davit", id));
          rt.ownsCgroup = true;
        }
        save();
        if (spec.pid === "POD" && this.#o.infra) {
          // Recorded before any of it exists, so a crash at any point leaves a record recovery undoes.
          const rec = rt.infra = { id };
          save();
          const pod = {
            id,
            runtimeHandler: handler,
            hostname: spec.hostname,
            namespaces: rt.namespaces,
            cgroup: rt.cgroup,
          };
          // The infra is made while CNI sets the network up and the monitor starts (it waits for the monitor only to
          // have it run `create`).
          infra = this.#o.infra.start(pod, rec, save, monitor ? { monitorReady: monitor } : {});
          infra.catch(() => {});
        }
        if (spec.network !== "NODE" && this.#o.network && rt.namespaces.net) {
          rt.networkSetUp = true;
          save();
          rt.ips = (await this.#o.network.setUp({ id, spec, netns: rt.namespaces.net })).ips;
        }
        // Awaited last: the monitor's start-up (a new process) overlaps with all the work above.
        if (monitor) rt.monitorDir = (await monitor).dir;
        await infra;
        rt.ips ??= [];
        this.#o.state.updatePod(id, { state: "ready", runtime: { ...rt } });
        this.#log.debug("pod ready", { pod: id, name });
        return id;
      } catch (err) {
        this.#log.warn("pod creation failed; undoing it", { pod: id, name, error: errorMessage(err) });
        // The infra's creation may still run beside a failed network set-up: undo it only once it settled.
        await infra?.catch(() => {});
        await this.#teardown(id, handler, rt).catch((e) =>
          this.#log.error("undoing a failed pod left something", { pod: id, error: errorMessage(e) })
        );
        this.#o.state.deletePod(id);
        throw err;
      }
    });
  }

  /** Releases everything a pod's runtime record says was made; each step is idempotent. */
  async #teardown(id: string, handler: string, rt: PodRuntime): Promise<void> {
    const problems: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        problems.push(`${what}: ${errorMessage(err)}`);
      }
    };
    if (rt.networkSetUp && this.#o.network) {
      await step(
        "network",
        () =>
          this.#o.network!.tearDown({ id, spec: rt.spec, ...(rt.namespaces?.net ? { netns: rt.namespaces.net } : {}) }),
      );
    }
    if (rt.infra && this.#o.infra) {
      await step("infra", () => this.#o.infra!.remove({ id, runtimeHandler: handler }, rt.infra!));
    }
    if (this.#o.monitors) await step("monitor", () => this.#o.monitors!.stop(id));
    await step("shm", () => unmountPodShm(this.#o.runroot, id));
    await step("files", () => removePodFiles(this.#o.runroot, id));
    await step("namespaces", () => removePodNamespaces(this.#o.runroot, id));
    if (rt.cgroup && rt.ownsCgroup) await step("cgroup", () => removeCgroup(rt.cgroup!));
    if (problems.length) throw new FailedPrecondition(`releasing pod ${id}: ${problems.join("; ")}`);
  }

  /** Stops a pod: its containers (with their grace), then its network. Idempotent; an unknown pod is not an error. */
  async stop(idOrPrefix: string): Promise<void> {
    let pod: PodRecord<PodRuntime>;
    try {
      pod = this.get(idOrPrefix);
    } catch (err) {
      if (err instanceof NotFound) return;
      throw err;
    }
    await this.locked(pod.id, async () => {
      const cur = this.#o.state.pod<PodRuntime>(pod.id);
      if (!cur) return;
      // The kubelet stops containers with their grace period first; what still runs now is killed (CRI: "forcibly").
      await this.#o.containers?.stopAll(cur.id, 0);
      const rt = cur.runtime;
      // The infra after the containers: its end would kill whatever still ran in its PID namespace, unrecorded.
      if (rt.infra && this.#o.infra) {
        await this.#o.infra.stop({ id: cur.id, runtimeHandler: cur.runtimeHandler }, rt.infra);
        this.#o.state.updatePod(cur.id, { runtime: { ...rt } });
      }
      if (rt.networkSetUp && this.#o.network) {
        await this.#o.network.tearDown({
          id: cur.id,
          spec: rt.spec,
          ...(rt.namespaces?.net ? { netns: rt.namespaces.net } : {}),
        });
        rt.networkSetUp = false;
      }
      this.#o.state.updatePod(cur.id, { state: "notready", runtime: { ...rt } });
    });
  }

  /**
   * A ready pod whose infra process died is not ready any more: its shared PID namespace died with it, and so did
   * every container in it (the kernel ends a PID namespace's processes with its init). Recorded, so the pod stays
   * not ready; the kubelet then stops and removes it and makes a new one. Answers the pod as it is now.
   */
  reconcileInfra(pod: PodRecord<PodRuntime>): PodRecord<PodRuntime> {
    const rec = pod.runtime.infra;
    if (pod.state !== "ready" || !rec || rec.stopped || infraAlive(rec)) return pod;
    this.#log.warn("the pod's infra process died; the pod is not ready", { pod: pod.id, pid: rec.pid });
    this.#o.state.updatePod(pod.id, { state: "notready" });
    return { ...pod, state: "notready" };
  }

  /** Removes a pod and everything in it. Idempotent; an unknown pod is not an error. */
  async remove(idOrPrefix: string): Promise<void> {
    let pod: PodRecord<PodRuntime>;
    try {
      pod = this.get(idOrPrefix);
    } catch (err) {
      if (err instanceof NotFound) return;
      throw err;
    }
    await this.stop(pod.id);
    await this.locked(pod.id, async () => {
      const cur = this.#o.state.pod<PodRuntime>(pod.id);
      if (!cur) return;
      await this.#o.containers?.removeAll(cur.id);
      await this.#teardown(cur.id, cur.runtimeHandler, cur.runtime);
      const spec = cur.runtime.spec;
      if (!spec.logDirectory && this.#o.defaultLogDir) {
        // The kubelet removes the log directories it names; the one davit chose for this pod is davit's to remove.
        const dir = defaultPodLogDir(this.#o.defaultLogDir, spec);
        await Deno.remove(dir, { recursive: true }).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) {
            this.#log.warn("cannot remove the pod's log directory", { pod: cur.id, dir, error: errorMessage(err) });
          }
        });
      }
      this.#o.state.deletePod(cur.id);
    });
  }

  /** The pod whose infra process runs from the image, if any (its runtime ID is the pod's ID). */
  infraUsingImage(imageId: string): string | undefined {
    return this.#o.state.pods<PodRuntime>().find((p) => p.runtime.infra?.imageId === imageId)?.id;
  }

  /** At start: finish or undo what a crash interrupted, and mark pods whose namespaces vanished (a reboot). */
  async recover(): Promise<void> {
    for (const pod of this.#o.state.pods<PodRuntime>()) {
      if (pod.state === "creating") {
        this.#log.warn("removing a pod whose creation was interrupted", { pod: pod.id });
        await this.#teardown(pod.id, pod.runtimeHandler, pod.runtime).catch((e) =>
          this.#log.error("cleanup left something", { pod: pod.id, error: errorMessage(e) })
        );
        for (const c of this.#o.state.containers(pod.id)) this.#o.state.deleteContainer(c.id);
        this.#o.state.deletePod(pod.id);
        continue;
      }
      const net = pod.runtime.namespaces?.net;
      if (pod.state === "ready" && net && !(await Deno.lstat(net).then(() => true, () => false))) {
        this.#log.warn("pod namespaces are gone (reboot?); marking the pod not ready", { pod: pod.id });
        this.#o.state.updatePod(pod.id, { state: "notready" });
      }
    }
  }
}
