/**
 * A pod's infra process: only a pod that asks for a shared PID namespace (`namespace_options.pid` POD) gets one. It
 * is a container of the pause image (`pause_image`, pulled when missing), created through the OCI runtime by the
 * pod's monitor like any other container, in a new PID namespace inside the pod's network, IPC and UTS namespaces
 * and the pod's cgroup. The pod's containers with pid POD join `/proc/<its pid>/ns/pid`. It is internal: recorded
 * with the pod, never in the containers table, so ListContainers does not show it. Its runtime ID is the pod's own
 * ID, so whatever a crash left of it can be found and removed from the pod's ID alone. It runs the image's own
 * Entrypoint and Cmd, with no command setting of davit's: the real pause image's `/pause` is the right PID 1 (it
 * reaps orphans and exits on SIGINT/SIGTERM), and an image is what air-gapped nodes already mirror.
 * @module
 */
import { DavitError, errorMessage, FailedPrecondition, InvalidArgument, NotFound, Unavailable } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { type ImageService, parseImageConfig } from "../image/mod.ts";
import {
  containerCgroupPath,
  infraSpec,
  type OciRuntime,
  type PodNamespacePaths,
  readCgroupLayout,
} from "../runtime/mod.ts";
import type { ImageRecord, RootfsManager } from "../storage/mod.ts";
import { processAlive, processStartTime } from "../monitor/mod.ts";
import type { MonitorSet } from "./monitors.ts";

/** What a pod's record keeps of its infra process; each field is set as soon as the thing it names exists. */
export interface InfraRecord {
  /** The OCI runtime's container ID (the pod's ID). */
  id: string;
  imageId?: string;
  rootfs?: string;
  bundle?: string;
  cgroup?: string;
  /** Set before the monitor is asked to `create`: from then on the runtime may know the container. */
  created?: boolean;
  /** The infra's host pid, once created. */
  pid?: number;
  /** Its start time (/proc/PID/stat field 22), telling it from a later process with the same pid. */
  startTime?: number;
  /** Set once StopPodSandbox killed it. */
  stopped?: boolean;
}

/**
 * False when a pod's infra process is known to have died: its pid is gone, a zombie, or another process (start time
 * differs). Read from /proc, no monitor round trip: list and status calls ask it for every such pod. True while it
 * is being made, and, for records made before start times were kept, while the pid lives.
 */
export function infraAlive(rec: InfraRecord): boolean {
  if (rec.pid === undefined || rec.pid <= 0) return true;
  if (rec.startTime !== undefined) return processAlive(rec.pid, rec.startTime);
  try {
    const stat = Deno.readTextFileSync(`/proc/${rec.pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The pod facts an infra process needs. */
export interface InfraPod {
  id: string;
  runtimeHandler: string;
  hostname: string;
  namespaces: PodNamespacePaths;
  /** The pod's cgroup. */
  cgroup: string;
}

/** What the pod manager asks of the infra side. */
export interface PodInfra {
  /** Makes sure the pause image is stored, pulling it when missing; FailedPrecondition or Unavailable naming it. */
  prepare(): Promise<void>;
  /**
   * Creates and starts the infra process; records each step in `rec` and calls `save` after it. The root filesystem
   * and bundle are made at once; the monitor is asked to `create` once `monitorReady` settles.
   */
  start(pod: InfraPod, rec: InfraRecord, save: () => void, opts?: { monitorReady?: Promise<unknown> }): Promise<void>;
  /** Kills the infra process and waits for its exit; idempotent. */
  stop(pod: Pick<InfraPod, "id" | "runtimeHandler">, rec: InfraRecord): Promise<void>;
  /** Removes whatever exists of the infra (runtime state, monitor record, root filesystem, bundle); idempotent. */
  remove(pod: Pick<InfraPod, "id" | "runtimeHandler">, rec: InfraRecord): Promise<void>;
  /** `/proc/<pid>/ns/pid` of the running infra process; FailedPrecondition naming the pod when it does not run. */
  pidNamespace(pod: { id: string; infra?: InfraRecord }): Promise<string>;
}

/** What {@link InfraManager} needs. */
export interface InfraManagerOptions {
  images: ImageService;
  rootfs: RootfsManager;
  monitors: Pick<MonitorSet, "client">;
  runtimeFor: (handler: string) => OciRuntime & { path: string; root: string; args: string[] };
  runroot: string;
  /** The configured `pause_image`. */
  pauseImage: string;
  /** How long a pull of the pause image may take; default 2 minutes. */
  pullTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isKind(err: unknown, ...kinds: string[]): boolean {
  return err instanceof DavitError && kinds.includes(err.kind);
}

/** Infra processes of the pods that share a PID namespace. */
export class InfraManager implements PodInfra {
  readonly #o: InfraManagerOptions;
  readonly #log = logger("infra");
  #pulling: Promise<ImageRecord> | undefined;

  constructor(opts: InfraManagerOptions) {
    this.#o = opts;
  }

  /** The stored pause image, pulled once when missing (concurrent callers share the pull). */
  async #image(): Promise<ImageRecord> {
    const name = this.#o.pauseImage;
    const have = this.#o.images.find(name);
    if (have) return have;
    this.#pulling ??= (async () => {
      this.#log.info("pulling the pause image", { image: name });
      try {
        return await this.#o.images.pull(name, { signal: AbortSignal.timeout(this.#o.pullTimeoutMs ?? 120_000) });
      } catch (err) {
        const msg = `the pause image "${name}" (pause_image), needed for the pod's shared PID namespace, is not ` +
          `stored and cannot be pulled (on a node without registry access, import it with \`davit image import\`): ` +
          errorMessage(err);
        throw isKind(err, "Unavailable", "DeadlineExceeded")
          ? new Unavailable(msg, { cause: err })
          : new FailedPrecondition(msg, { cause: err });
      } finally {
        this.#pulling = undefined;
      }
    })();
    return await this.#pulling;
  }

  async prepare(): Promise<void> {
    await this.#image();
  }

  async start(
    pod: InfraPod,
    rec: InfraRecord,
    save: () => void,
    opts: { monitorReady?: Promise<unknown> } = {},
  ): Promise<void> {
    const img = await this.#image();
    rec.imageId = img.id;
    save();
    const fs = await this.#o.rootfs.mount(rec.id, img.id);
    rec.rootfs = fs.path;
    save();
    const read = (p: string) => Deno.readTextFile(`${fs.path}${p}`).catch(() => undefined);
    const [passwd, group, own, layout] = await Promise.all([
      read("/etc/passwd"),
      read("/etc/group"),
      Deno.readTextFile("/proc/self/oom_score_adj").then((t) => Number(t.trim()) || 0, () => 0),
      readCgroupLayout(),
    ]);
    const cfg = parseImageConfig(img.config);
    rec.cgroup = containerCgroupPath(pod.cgroup, rec.id);
    let spec;
    try {
      spec = infraSpec({
        id: rec.id,
        podId: pod.id,
        rootfs: fs.path,
        image: {
          ...(cfg.entrypoint ? { entrypoint: cfg.entrypoint } : {}),
          ...(cfg.cmd ? { cmd: cfg.cmd } : {}),
          ...(cfg.env ? { env: cfg.env } : {}),
          ...(cfg.workingDir ? { workingDir: cfg.workingDir } : {}),
          ...(cfg.user ? { user: cfg.user } : {}),
        },
        ...(passwd !== undefined ? { passwd } : {}),
        ...(group !== undefined ? { group } : {}),
        hostname: pod.hostname,
        namespaces: pod.namespaces,
        cgroupsPath: rec.cgroup,
        cgroupV2: layout.kind === "v2",
        ownOomScoreAdj: own,
      });
    } catch (err) {
      if (!(err instanceof InvalidArgument)) throw err;
      throw new FailedPrecondition(`the pause image "${this.#o.pauseImage}" (pause_image) cannot run: ${err.message}`, {
        cause: err,
      });
    }
    const bundle = this.#bundle(rec.id);
    await Deno.mkdir(bundle, { recursive: true, mode: 0o700 });
    rec.bundle = bundle;
    save();
    await Deno.writeTextFile(`${bundle}/config.json`, JSON.stringify(spec));
    const runtime = this.#o.runtimeFor(pod.runtimeHandler);
    await opts.monitorReady;
    const monitor = await this.#o.monitors.client(pod.id);
    rec.created = true;
    save();
    rec.pid = await monitor.create({
      container_id: rec.id,
      runtime_path: runtime.path,
      runtime_root: runtime.root,
      runtime_args: runtime.args,
      bundle,
      // The pause process writes nothing worth keeping; the log goes with the bundle.
      log_path: `${bundle}/infra.log`,
      log_size_max: 64 * 1024,
    });
    const startTime = processStartTime(rec.pid);
    if (startTime !== undefined) rec.startTime = startTime;
    save();
    await runtime.start(rec.id);
    this.#log.debug("infra process started", { pod: pod.id, pid: rec.pid });
  }

  async stop(pod: Pick<InfraPod, "id" | "runtimeHandler">, rec: InfraRecord): Promise<void> {
    if (!rec.created || rec.stopped) return;
    // SIGKILL from outside its PID namespace ends the namespace's init whatever it handles, and with it every process
    // left in the namespace.
    await this.#o.runtimeFor(pod.runtimeHandler).kill(rec.id, "SIGKILL").catch((err) =>
      this.#log.debug("SIGKILL to the infra process not delivered", { pod: pod.id, error: errorMessage(err) })
    );
    try {
      await (await this.#o.monitors.client(pod.id)).wait(rec.id, { timeoutMs: 30_000 });
    } catch (err) {
      if (isKind(err, "DeadlineExceeded")) {
        throw new FailedPrecondition(`the infra process of pod ${pod.id} did not exit after SIGKILL within 30 s`, {
          cause: err,
        });
      }
      if (!isKind(err, "NotFound", "Unavailable")) throw err;
    }
    rec.stopped = true;
  }

  async remove(pod: Pick<InfraPod, "id" | "runtimeHandler">, rec: InfraRecord): Promise<void> {
    const runtime = this.#o.runtimeFor(pod.runtimeHandler);
    const deleteState = () =>
      runtime.delete(rec.id, { force: true }).catch((err) => {
        if (!(err instanceof NotFound)) throw err;
      });
    // A daemon killed while the monitor ran `create` leaves the monitor finishing it: wait for that to settle (the
    // monitor refuses to forget a container being created or still running), deleting again each time, so nothing
    // it finishes creating survives.
    for (let attempt = 0;; attempt++) {
      await deleteState();
      let monitor;
      try {
        monitor = await this.#o.monitors.client(pod.id);
      } catch (err) {
        // No monitor (never started, or gone): nothing can create the infra any more.
        this.#log.debug("no monitor to forget the infra in", { pod: pod.id, error: errorMessage(err) });
        break;
      }
      try {
        await monitor.wait(rec.id, { timeoutMs: 5_000 }).catch((err) => {
          if (!isKind(err, "NotFound", "DeadlineExceeded")) throw err;
        });
        await monitor.forget(rec.id);
        break;
      } catch (err) {
        if (isKind(err, "Unavailable")) break;
        if (!isKind(err, "FailedPrecondition") || attempt >= 100) throw err;
        await sleep(100);
      }
    }
    await this.#o.rootfs.remove(rec.id);
    await Deno.remove(this.#bundle(rec.id), { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  async pidNamespace(pod: { id: string; infra?: InfraRecord }): Promise<string> {
    const rec = pod.infra;
    if (!rec) {
      throw new FailedPrecondition(
        `pod ${pod.id} has no shared PID namespace: its RunPodSandbox did not ask for namespace_options.pid POD`,
      );
    }
    const pid = rec.pid ?? 0;
    let alive = false;
    if (pid > 0 && !rec.stopped) {
      try {
        const [st] = await (await this.#o.monitors.client(pod.id)).status(rec.id);
        alive = st !== undefined && st.state !== "exited" && st.pid === pid;
      } catch (err) {
        if (!isKind(err, "NotFound", "Unavailable")) throw err;
      }
    }
    if (!alive) {
      throw new FailedPrecondition(`the infra process of pod ${pod.id}, which holds its PID namespace, is not running`);
    }
    return `/proc/${pid}/ns/pid`;
  }

  #bundle(id: string): string {
    return `${this.#o.runroot}/containers/${id}`;
  }
}
