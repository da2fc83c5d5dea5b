/**
 * A private containerd (Debian's 1.6 package) for side-by-side benchmarks: temporary root and state, its own
 * socket, a generated config (version 2) with the CRI plugin, the overlayfs snapshotter, runc through
 * io.containerd.runc.v2 with cgroupfs, a loopback registry reached over plain HTTP through `hosts.toml`, and a
 * CNI directory of its own. {@link BenchContainerd.stop} removes the pods, stops containerd, kills any shim and
 * container left, unmounts everything below its directory and deletes it.
 * @module
 */
import { CriClient } from "../cri_client.ts";
import { type BenchCni, type BenchNetwork, CNI_BIN_DIR, writeCni } from "./cni.ts";
import { findProcesses, peakRssKiB, type ProcInfo, rssKiB, signal, unmountUnder, waitGone } from "./proc.ts";

/** Options of {@link startContainerd}. */
export interface ContainerdOptions {
  /** The image containerd's CRI runs as each pod's sandbox container (pulled at RunPodSandbox). */
  sandboxImage: string;
  /** Registries ("127.0.0.1:PORT") reached over plain HTTP. */
  insecureRegistries?: string[];
  /** The CNI configuration written for it (default loopback). */
  network?: BenchNetwork;
  /** containerd's log level (default "warn"). */
  logLevel?: string;
}

/** A running private containerd. */
export interface BenchContainerd extends AsyncDisposable {
  dir: string;
  root: string;
  state: string;
  socket: string;
  pid: number;
  /** `containerd --version`'s version field, e.g. "1.6.20~ds1". */
  version: string;
  cni: BenchCni;
  /** A client on containerd's CRI socket. */
  client(opts?: { timeoutMs?: number }): CriClient;
  /** containerd's peak RSS (VmHWM) in KiB. */
  peakRssKiB(): number | null;
  /** containerd's current RSS in KiB. */
  rssKiB(): number | null;
  /** The shim processes serving this containerd. */
  shims(): ProcInfo[];
  /** Everything containerd logged so far. */
  logs(): string;
  /** Removes pods, stops containerd and its shims, unmounts and deletes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Where a runc.v2 shim listens: containerd 1.6 puts every shim socket under /run/containerd/s, whatever `state` is. */
export const SHIM_SOCKET_DIR = "/run/containerd/s";
const RUNC = "/usr/bin/runc";

/** The config.toml for a private containerd; pure. */
export function containerdConfig(o: {
  root: string;
  state: string;
  socket: string;
  sandboxImage: string;
  hostsDir: string;
  cniConfDir: string;
  runcRoot: string;
  logLevel: string;
}): string {
  const q = (s: string) => JSON.stringify(s); // a JSON string is a valid TOML basic string for these paths
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return `version = 2
root = ${q(o.root)}
state = ${q(o.state)}
oom_score = 0
# Plugins the benchmarks do not use: the opt plugin would create /opt/containerd, the other snapshotters only log.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = ${q(o.socket)}

[ttrpc]
  address = ${q(o.socket + ".ttrpc")}

[debug]
  level = ${q(o.logLevel)}

[${cri}]
  sandbox_image = ${q(o.sandboxImage)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # Network namespaces under state instead of /var/run/netns.
  netns_mounts_under_state_dir = true
  # This VM withholds CAP_SYS_RESOURCE: the sandbox's oom_score_adj (-998) would make runc fail.
  restrict_oom_score_adj = true
  max_concurrent_downloads = 3

  [${cri}.cni]
    bin_dir = ${q(CNI_BIN_DIR)}
    conf_dir = ${q(o.cniConfDir)}
    max_conf_num = 1

  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = ${q(RUNC)}
        # runc's state under our state directory instead of /run/containerd/runc.
        Root = ${q(o.runcRoot)}

  [${cri}.registry]
    config_path = ${q(o.hostsDir)}
`;
}

/** hosts.toml for a registry served over plain HTTP on `host` ("127.0.0.1:PORT"); pure. */
export function hostsToml(host: string): string {
  return `server = "http://${host}"

[host."http://${host}"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
`;
}

/** `containerd --version`'s version field. */
export async function containerdVersion(): Promise<string> {
  const out = await new Deno.Command("containerd", { args: ["--version"], stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(out.stdout).trim().split(/\s+/)[2] ?? "unknown";
}

/** Shim socket path for one shim (containerd 1.6 runtime/v2/shim SocketAddress: sha256 of address/ns/id). */
async function shimSocketPath(address: string, namespace: string, id: string): Promise<string> {
  const bytes = new TextEncoder().encode(`${address}/${namespace}/${id}`);
  const hex = [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${SHIM_SOCKET_DIR}/${hex}`;
}

function argAfter(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(30_000),
  })
    .output();
  return new TextDecoder().decode(out.stdout);
}

/** Starts containerd on fresh temporary directories; resolves once its CRI answers Version. */
export async function startContainerd(opts: ContainerdOptions): Promise<BenchContainerd> {
  const dir = await Deno.makeTempDir({ prefix: "davit-bench-containerd-" });
  const root = `${dir}/root`, state = `${dir}/state`, socket = `${dir}/containerd.sock`;
  const hostsDir = `${dir}/certs.d`, runcRoot = `${state}/runc`, logFile = `${dir}/containerd.log`;
  const runContainerdExisted = await Deno.stat("/run/containerd").then(() => true, () => false);
  for (const host of opts.insecureRegistries ?? []) {
    await Deno.mkdir(`${hostsDir}/${host}`, { recursive: true });
    await Deno.writeTextFile(`${hostsDir}/${host}/hosts.toml`, hostsToml(host));
  }
  const cni = await writeCni(dir, opts.network ?? "loopback");
  const configPath = `${dir}/config.toml`;
  await Deno.writeTextFile(
    configPath,
    containerdConfig({
      root,
      state,
      socket,
      sandboxImage: opts.sandboxImage,
      hostsDir,
      cniConfDir: cni.confDir,
      runcRoot,
      logLevel: opts.logLevel ?? "warn",
    }),
  );
  const version = await containerdVersion();
  // exec keeps the pid: the child's pid is containerd's own, for VmHWM and signals.
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'exec /usr/bin/containerd --config "$1" >>"$2" 2>&1', "sh", configPath, logFile],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => exited = s);
  const logs = () => {
    try {
      return Deno.readTextFileSync(logFile);
    } catch {
      return "";
    }
  };
  const shims = () =>
    findProcesses((p) =>
      (p.argv[0] ?? "").endsWith("containerd-shim-runc-v2") && argAfter(p.argv, "-address") === socket
    );

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    stopped ??= (async () => {
      const problems: string[] = [];
      // Pods first, through the CRI, so shims exit on their own and CNI DEL runs.
      if (!exited) {
        const c = new CriClient(socket, { timeoutMs: 20_000 });
        try {
          const pods = (await c.call("ListPodSandbox", {})).items ?? [];
          for (const p of pods) {
            await c.call("StopPodSandbox", { pod_sandbox_id: p.id }).catch((e) => problems.push(String(e)));
            await c.call("RemovePodSandbox", { pod_sandbox_id: p.id }).catch((e) => problems.push(String(e)));
          }
        } catch {
          // CRI not answering: the kills below do the work
        } finally {
          c.close();
        }
      }
      signal(child.pid, "SIGTERM");
      const timer = setTimeout(() => signal(child.pid, "SIGKILL"), 10_000);
      await status;
      clearTimeout(timer);
      // Shims outlive containerd by design; kill the ones left with their containers, and their sockets.
      const left = shims();
      for (const s of left) signal(s.pid, "SIGKILL");
      await waitGone(left.map((s) => s.pid), 5_000);
      for (const s of left) {
        const ns = argAfter(s.argv, "-namespace"), id = argAfter(s.argv, "-id");
        if (ns && id) await Deno.remove(await shimSocketPath(socket, ns, id)).catch(() => {});
      }
      // Containers whose shim died keep running: runc knows them from our runc root.
      for (const nsDir of await Array.fromAsync(Deno.readDir(runcRoot)).catch(() => [])) {
        const rr = `${runcRoot}/${nsDir.name}`;
        for (const id of (await run(RUNC, ["--root", rr, "list", "-q"]).catch(() => "")).split("\n")) {
          if (id) await run(RUNC, ["--root", rr, "delete", "--force", id]).catch(() => {});
        }
      }
      const mounts = unmountUnder(dir);
      if (mounts.length > 0) problems.push(`still mounted: ${mounts.join(", ")}`);
      await cni.cleanup();
      if (!runContainerdExisted) {
        await Deno.remove(SHIM_SOCKET_DIR).catch(() => {}); // only when empty
        await Deno.remove("/run/containerd").catch(() => {});
      }
      await Deno.remove(dir, { recursive: true }).catch((e) => problems.push(String(e)));
      if (problems.length > 0) console.error(`containerd clean-up: ${problems.join("; ")}`);
    })();

  const bc: BenchContainerd = {
    dir,
    root,
    state,
    socket,
    pid: child.pid,
    version,
    cni,
    client: (o = {}) => new CriClient(socket, o),
    peakRssKiB: () => peakRssKiB(child.pid),
    rssKiB: () => rssKiB(child.pid),
    shims,
    logs,
    stop,
    [Symbol.asyncDispose]: stop,
  };
  try {
    await waitReady(socket, () => exited);
  } catch (err) {
    const tail = logs().slice(-3000);
    await stop();
    throw new Error(`containerd did not start: ${(err as Error).message}\n--- containerd log ---\n${tail}`);
  }
  return bc;
}

async function waitReady(socket: string, exited: () => Deno.CommandStatus | undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const s = exited();
    if (s) throw new Error(`exited with code ${s.code}`);
    if (await Deno.stat(socket).then(() => true, () => false)) {
      const c = new CriClient(socket, { timeoutMs: 2_000 });
      try {
        await c.call("Version", {});
        return;
      } catch {
        // the socket is up before the CRI plugin is
      } finally {
        c.close();
      }
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no CRI answer on ${socket} after 30 s`);
}
