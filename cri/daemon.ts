/**
 * The daemon's life: takes the root's lock, opens the database, serves CRI on the public socket and shuts down
 * cleanly. Everything a handler needs from the daemon (config, database, runtime handlers) is reached through it.
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { type Config, parseDuration, reloadableDiff } from "../lib/config.ts";
import { errorMessage, FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { configureLogging, type Logger, logger } from "../lib/log.ts";
import {
  checkCgroupManager,
  type OciRuntime,
  releaseNamespaceRoot,
  resolveRuntimeBinary,
  RuncLikeRuntime,
  type RuntimeHandlerConfig,
  STATE_MIGRATIONS,
  StateStore,
} from "../runtime/mod.ts";
import { PodManager } from "./pods.ts";
import { ContainerManager } from "./containers.ts";
import { MonitorSet } from "./monitors.ts";
import { specBuilder } from "./container_spec.ts";
import { InfraManager } from "./pod_infra.ts";
import { pidNamespaces } from "./pid_namespace.ts";
import { createContainer } from "./container_create.ts";
import { startContainer } from "./container_start.ts";
import { stopContainer } from "./container_stop.ts";
import { removeContainer } from "./container_remove.ts";
import { containerStatus } from "./container_status.ts";
import { listContainers, streamContainers } from "./container_list.ts";
import { reopenContainerLog } from "./container_reopen_log.ts";
import { execSync } from "./container_exec_sync.ts";
import { exec } from "./container_exec.ts";
import { attach } from "./container_attach.ts";
import { portForward } from "./pod_port_forward.ts";
import { StreamServer } from "./stream/server.ts";
import { streamBackend } from "./stream_backend.ts";
import { CniManager } from "../network/mod.ts";
import { updateRuntimeConfig } from "./runtime_config_update.ts";
import { runPodSandbox } from "./pod_run.ts";
import { stopPodSandbox } from "./pod_stop.ts";
import { removePodSandbox } from "./pod_remove.ts";
import { podSandboxStatus } from "./pod_status.ts";
import { listPodSandbox, streamPodSandboxes } from "./pod_list.ts";
import { CpuSamples } from "./stats.ts";
import { containerStats } from "./container_stats.ts";
import { listContainerStats } from "./container_stats_list.ts";
import { podSandboxStats } from "./pod_stats.ts";
import { listPodSandboxStats } from "./pod_stats_list.ts";
import { DAEMON_MIGRATIONS, IMAGE_STORE_MIGRATIONS, openDatabase, RootfsManager } from "../storage/mod.ts";
import type { ImageService } from "../image/mod.ts";
import { openImageService } from "./image_setup.ts";
import { CriGrpcServer, type Handlers } from "./grpc_server.ts";
import { type AuthorityFront, startAuthorityFront } from "./h2_front.ts";
import { runtimeConfig } from "./runtime_config.ts";
import { imageFsInfo } from "./image_fs_info.ts";
import { listImages, streamImages } from "./image_list.ts";
import { removeImage } from "./image_remove.ts";
import { imageStatus } from "./image_status.ts";
import { pullImage, redactPullError } from "./image_pull.ts";
import { claimSocketPath, ensureDir, parentDir } from "./socket.ts";
import { status } from "./status.ts";
import { version } from "./version.ts";

/** Options for {@link Daemon.start}. */
export interface DaemonOptions {
  config: Config;
  /** Re-reads configuration from the same sources (SIGHUP). */
  reload?: () => Promise<Config>;
  /** How long in-flight calls may run on at shutdown. */
  shutdownGraceMs?: number;
}

/** A running davit daemon. */
export class Daemon {
  #config: Config;
  readonly #opts: DaemonOptions;
  readonly log: Logger = logger("daemon");
  #lock: Deno.FsFile | undefined;
  #db: DatabaseSync | undefined;
  #server?: CriGrpcServer;
  #images: ImageService | undefined;
  #state: StateStore | undefined;
  #pods: PodManager | undefined;
  #cni: CniManager | undefined;
  #containers: ContainerManager | undefined;
  #rootfs: RootfsManager | undefined;
  #monitors: MonitorSet | undefined;
  readonly #runtimes = new Map<string, OciRuntime & { path: string; root: string; args: string[] }>();
  readonly #runtimePaths = new Map<string, string>();
  #front: AuthorityFront | undefined;
  #streams: StreamServer | undefined;
  #backendPath = "";
  #stopping?: Promise<void>;

  private constructor(opts: DaemonOptions) {
    this.#opts = opts;
    this.#config = opts.config;
  }

  /** The effective configuration. */
  get config(): Config {
    return this.#config;
  }

  /** The metadata database (open while the daemon runs). */
  get db(): DatabaseSync {
    if (!this.#db) throw new FailedPrecondition("the database is not open");
    return this.#db;
  }

  /** Stored images, pulls and imports. */
  get images(): ImageService {
    if (!this.#images) throw new FailedPrecondition("the image service is not running");
    return this.#images;
  }

  /** Durable pod and container records. */
  get state(): StateStore {
    if (!this.#state) throw new FailedPrecondition("the state store is not open");
    return this.#state;
  }

  /** The CNI network manager. */
  get cni(): CniManager {
    if (!this.#cni) throw new FailedPrecondition("the network manager is not running");
    return this.#cni;
  }

  /** Container lifecycle. */
  get containers(): ContainerManager {
    if (!this.#containers) throw new FailedPrecondition("the container manager is not running");
    return this.#containers;
  }

  /** Containers' root filesystems and writable layers. */
  get rootfs(): RootfsManager {
    if (!this.#rootfs) throw new FailedPrecondition("the root filesystem manager is not running");
    return this.#rootfs;
  }

  /** The streaming server for exec, attach and port-forward. */
  get streams(): StreamServer {
    if (!this.#streams) throw new FailedPrecondition("the streaming server is not running");
    return this.#streams;
  }

  /** The pod monitors. */
  get monitors(): MonitorSet {
    if (!this.#monitors) throw new FailedPrecondition("the monitors are not running");
    return this.#monitors;
  }

  /** The OCI runtime of a handler (the default one for ""). */
  runtimeFor(handler: string): OciRuntime & { path: string; root: string; args: string[] } {
    const name = handler || this.#config.davit.runtime.default_runtime;
    const have = this.#runtimes.get(name);
    if (have) return have;
    const h = this.runtimeHandler(name);
    if (!h) throw new InvalidArgument(`runtime handler "${name}" is not configured`);
    const path = this.#runtimePaths.get(name) ?? (h.runtimePath || name);
    const extraArgs = this.#config.davit.runtime.runtimes[name]?.runtime_args ?? [];
    const systemd = this.#config.davit.runtime.cgroup_manager === "systemd";
    const rt = Object.assign(
      new RuncLikeRuntime({
        name,
        path,
        root: h.runtimeRoot,
        cgroupManager: this.#config.davit.runtime.cgroup_manager,
        extraArgs,
      }),
      { path, root: h.runtimeRoot, args: [...extraArgs, ...(systemd ? ["--systemd-cgroup"] : [])] },
    );
    this.#runtimes.set(name, rt);
    return rt;
  }

  /** Pod lifecycle. */
  get pods(): PodManager {
    if (!this.#pods) throw new FailedPrecondition("the pod manager is not running");
    return this.#pods;
  }

  /** The ID of a container created from the image, if any (a pod's infra process counts, under the pod's ID). */
  containerUsingImage(imageId: string): string | undefined {
    return this.#state?.containerUsingImage(imageId) ?? this.#pods?.infraUsingImage(imageId);
  }

  /** Every configured runtime handler. */
  runtimeHandlers(): RuntimeHandlerConfig[] {
    return Object.entries(this.#config.davit.runtime.runtimes).map(([name, r]) => ({
      name,
      runtimePath: r.runtime_path,
      runtimeRoot: r.runtime_root,
      runtimeType: r.runtime_type,
    }));
  }

  /** One runtime handler by name, or undefined. */
  runtimeHandler(name: string): RuntimeHandlerConfig | undefined {
    return this.runtimeHandlers().find((h) => h.name === name);
  }

  /** Starts a daemon; on any failure everything already taken (lock, database, sockets) is released. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    try {
      await d.#start();
    } catch (err) {
      await d.#server?.shutdown(0);
      await d.#streams?.close();
      await d.#release();
      throw err;
    }
    return d;
  }

  async #start(): Promise<void> {
    const cfg = this.#config.davit;
    await ensureDir(cfg.root, 0o711);
    await ensureDir(cfg.runroot, 0o711);
    await this.#takeLock(`${cfg.root}/davit.lock`);
    await checkCgroupManager(cfg.runtime.cgroup_manager);
    this.#db = openDatabase(`${cfg.root}/davit.db`, {
      daemon: DAEMON_MIGRATIONS,
      storage: IMAGE_STORE_MIGRATIONS,
      runtime: STATE_MIGRATIONS,
    });
    this.#state = new StateStore(this.#db);
    this.#images = await openImageService(this.#config, this.#db, this.log);
    await this.#images.store.recover();
    this.#cni = new CniManager({
      networkDir: cfg.network.network_dir,
      pluginDirs: cfg.network.plugin_dirs,
      cacheDir: `${cfg.root}/cni-cache`,
      defaultNetwork: cfg.network.cni_default_network,
      timeoutMs: parseDuration(cfg.network.plugin_timeout) || 60_000,
      log: logger("cni"),
      // The pod's `lo` is brought up where its namespace is made (runtime/pod_namespaces.ts): running the loopback
      // plugin again, as a separate attachment, would cost a plugin start (about 20 ms here) per ADD and per DEL.
      loopback: false,
    });
    const cni = this.#cni;
    // The monitor runs `create` itself and wants absolute runtime paths: resolve them once.
    for (const h of this.runtimeHandlers()) {
      const bin = await resolveRuntimeBinary(h);
      if (bin.ok) this.#runtimePaths.set(h.name, bin.path);
      else this.log.warn("runtime handler unusable", { handler: h.name, reason: bin.reason });
    }
    this.#monitors = new MonitorSet(cfg.runroot, cfg.log_level, {
      podsPerProcess: cfg.runtime.monitor_pods_per_process,
    });
    const rootfs = new RootfsManager(this.#images.store, cfg.root);
    this.#rootfs = rootfs;
    const infra = new InfraManager({
      images: this.#images,
      rootfs,
      monitors: this.#monitors,
      runtimeFor: (h) => this.runtimeFor(h),
      runroot: cfg.runroot,
      pauseImage: cfg.image.pause_image,
    });
    this.#pods = new PodManager({
      monitors: this.#monitors,
      infra,
      containers: {
        stopAll: (podId, timeout) => this.containers.stopAll(podId, timeout),
        removeAll: (podId) => this.containers.removeAll(podId),
      },
      state: this.#state,
      runroot: cfg.runroot,
      shmSize: cfg.runtime.shm_size,
      runtimeHandlers: Object.keys(cfg.runtime.runtimes),
      defaultLogDir: cfg.log_dir,
      defaultRuntime: cfg.runtime.default_runtime,
      network: {
        setUp: async ({ id, spec, netns }) => {
          const res = await cni.setUpPod({
            id,
            name: spec.name,
            namespace: spec.namespace,
            uid: spec.uid,
            netnsPath: netns,
            portMappings: spec.portMappings.map((p) => ({
              hostPort: p.hostPort,
              containerPort: p.containerPort,
              protocol: p.protocol.toLowerCase(),
              ...(p.hostIp ? { hostIP: p.hostIp } : {}),
            })),
            ...(spec.dns ? { dns: spec.dns } : {}),
            // Burst of one second's worth of traffic, as the bandwidth plugin's convention takes it in bits.
            ...(spec.bandwidth
              ? {
                bandwidth: {
                  ...(spec.bandwidth.ingressRate
                    ? { ingressRate: spec.bandwidth.ingressRate, ingressBurst: spec.bandwidth.ingressRate }
                    : {}),
                  ...(spec.bandwidth.egressRate
                    ? { egressRate: spec.bandwidth.egressRate, egressBurst: spec.bandwidth.egressRate }
                    : {}),
                },
              }
              : {}),
          });
          return { ips: res.ips };
        },
        tearDown: ({ id, spec, netns }) =>
          cni.tearDownPod({
            id,
            name: spec.name,
            namespace: spec.namespace,
            uid: spec.uid,
            ...(netns ? { netnsPath: netns } : {}),
          }),
      },
    });
    this.#containers = new ContainerManager({
      state: this.#state,
      pods: this.#pods,
      images: this.#images,
      rootfs,
      monitors: this.#monitors,
      runtimeFor: (h) => this.runtimeFor(h),
      buildSpec: specBuilder(this.#config, {
        pidNamespaces: pidNamespaces({ infra, container: (id) => this.containers.get(id) }),
      }),
      runroot: cfg.runroot,
      logDir: cfg.log_dir,
      logSizeMax: cfg.runtime.log_size_max,
    });
    // First which process serves which pod (recovery may stop pods, and must know who else a process serves);
    // those processes take new pods too, and a spare is started for the first new pod when none has room.
    await this.#monitors.prepare();
    await this.#pods.recover();
    await this.#containers.recover();
    // Attachments whose pod no longer exists (removed while the daemon was down, or half-made) are released.
    await cni.gc(this.#state.pods().map((p) => p.id)).catch((err) =>
      this.log.warn("CNI garbage collection failed", { error: errorMessage(err) })
    );
    this.#db.prepare("INSERT OR REPLACE INTO daemon_meta (key, value) VALUES ('last_start', ?)").run(
      new Date().toISOString(),
    );

    // CPU samples for usage_nano_cores, shared by the four stats RPCs (a rate needs the previous reading).
    const samples = new CpuSamples();
    const handlers: Handlers = {
      Version: version,
      Status: status(this),
      RuntimeConfig: runtimeConfig(this),
      UpdateRuntimeConfig: updateRuntimeConfig(this),
      CreateContainer: createContainer(this),
      StartContainer: startContainer(this),
      StopContainer: stopContainer(this),
      RemoveContainer: removeContainer(this),
      ContainerStatus: containerStatus(this),
      ListContainers: listContainers(this),
      StreamContainers: streamContainers(this),
      ReopenContainerLog: reopenContainerLog(this),
      ExecSync: execSync(this),
      Exec: exec(this),
      Attach: attach(this),
      PortForward: portForward(this),
      RunPodSandbox: runPodSandbox(this),
      StopPodSandbox: stopPodSandbox(this),
      RemovePodSandbox: removePodSandbox(this),
      PodSandboxStatus: podSandboxStatus(this),
      ListPodSandbox: listPodSandbox(this),
      ContainerStats: containerStats(this, samples),
      ListContainerStats: listContainerStats(this, samples),
      PodSandboxStats: podSandboxStats(this, samples),
      ListPodSandboxStats: listPodSandboxStats(this, samples),
      StreamPodSandboxes: streamPodSandboxes(this),
      PullImage: pullImage(this),
      ImageStatus: imageStatus(this),
      ListImages: listImages(this),
      StreamImages: streamImages(this),
      RemoveImage: removeImage(this),
      ImageFsInfo: imageFsInfo(this),
    };
    this.#streams = await StreamServer.start({
      address: cfg.api.stream_address,
      port: Number(cfg.api.stream_port),
      ...(cfg.api.stream_enable_tls
        ? {
          tls: {
            cert: await Deno.readTextFile(cfg.api.stream_tls_cert),
            key: await Deno.readTextFile(cfg.api.stream_tls_key),
          },
        }
        : {}),
      backend: streamBackend(this),
      log: logger("stream"),
      tokenTtlMs: parseDuration(cfg.api.stream_token_ttl),
      idleTimeoutMs: parseDuration(cfg.api.stream_idle_timeout),
      streamCreationTimeoutMs: parseDuration(cfg.api.stream_creation_timeout),
    });
    this.log.info("streaming server listening", { url: this.#streams.baseUrl });
    this.#server = new CriGrpcServer({
      handlers,
      log: logger("cri"),
      redact: redactPullError,
      maxRecvMessageSize: cfg.api.grpc_max_recv_msg_size,
      maxSendMessageSize: cfg.api.grpc_max_send_msg_size,
    });
    // grpc-js listens on a private socket; the public socket is served by the authority front, which lets clients
    // built with older grpc-go (kubelet and crictl up to 1.28) in: they send the socket path as :authority, which
    // the HTTP/2 server under Deno refuses.
    await ensureDir(`${cfg.runroot}/private`, 0o700);
    this.#backendPath = `${cfg.runroot}/private/grpc.sock`;
    await claimSocketPath(this.#backendPath);
    await this.#server.bind(this.#backendPath);
    const listen = cfg.api.listen;
    await ensureDir(parentDir(listen), 0o755);
    const claimed = await claimSocketPath(listen);
    if (claimed === "stale") this.log.warn("replaced a stale socket left by an earlier daemon", { path: listen });
    this.#front = await startAuthorityFront({
      publicPath: listen,
      backendPath: this.#backendPath,
      log: logger("h2front"),
    });
    await Deno.chmod(listen, 0o660);
    this.log.info("serving CRI", { socket: listen, root: cfg.root, runroot: cfg.runroot });
  }

  async #takeLock(path: string): Promise<void> {
    const file = await Deno.open(path, { create: true, read: true, write: true, mode: 0o600 });
    let locked = false;
    try {
      locked = await file.tryLock(true);
    } catch (err) {
      file.close();
      throw err;
    }
    if (!locked) {
      const holder = await Deno.readTextFile(path).catch(() => "");
      file.close();
      throw new FailedPrecondition(
        `another davit daemon already runs on root ${parentDir(path)} (lock ${path} is held` +
          (holder.trim() ? ` by pid ${holder.trim()}` : "") + ")",
      );
    }
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    this.#lock = file;
  }

  /** Re-reads configuration and applies what can change at run time (the log level); logs every change. */
  async reload(): Promise<void> {
    if (!this.#opts.reload) return;
    let next: Config;
    try {
      next = await this.#opts.reload();
    } catch (err) {
      this.log.error("configuration reload failed; keeping the running configuration", { error: errorMessage(err) });
      return;
    }
    const changes = reloadableDiff(this.#config, next);
    if (changes.length === 0) {
      this.log.info("configuration reloaded: nothing changed");
      return;
    }
    for (const c of changes) {
      this.log.info(c.reloadable ? "configuration changed" : "configuration changed; takes effect after a restart", {
        key: c.key,
        from: c.from,
        to: c.to,
      });
    }
    const reloadable = { ...this.#config.davit, log_level: next.davit.log_level, log_format: next.davit.log_format };
    this.#config = { ...this.#config, davit: reloadable };
    configureLogging({ level: next.davit.log_level, format: next.davit.log_format });
  }

  /** Stops serving: no new calls, in-flight calls finish (bounded), then the database and socket are closed. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.log.info("shutting down");
      // New connections stop at once; calls already on open connections may finish within the grace period.
      const front = this.#front;
      this.#front = undefined;
      await front?.stopAccepting();
      await this.#server?.shutdown(this.#opts.shutdownGraceMs ?? 10_000);
      await this.#streams?.close();
      await front?.close();
      await this.#release();
      this.log.info("stopped");
    })();
    return this.#stopping;
  }

  async #release(): Promise<void> {
    if (this.#pods) {
      await releaseNamespaceRoot(this.#config.davit.runroot).catch((err) =>
        this.log.warn("cannot release the namespace directory mount", { error: errorMessage(err) })
      );
    }
    await this.#front?.close();
    this.#front = undefined;
    if (this.#backendPath) {
      await Deno.remove(this.#backendPath).catch(() => {});
      this.#backendPath = "";
    }
    await this.#containers?.close();
    await this.#monitors?.close();
    await this.#cni?.close();
    this.#cni = undefined;
    this.#db?.close();
    this.#db = undefined;
    if (this.#lock) {
      this.#lock.close();
      this.#lock = undefined;
    }
  }
}
