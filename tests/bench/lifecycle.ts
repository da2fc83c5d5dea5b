/**
 * `deno task bench lifecycle`: RunPodSandbox, CreateContainer, StartContainer, StopContainer, StopPodSandbox and
 * RemovePodSandbox latencies (p50, p95) over N pods with a `sleep 3600` busybox container, one pod at a time and
 * then 10 at a time; the daemon's RSS; memory per pod of davit's monitor and of containerd's shim (PSS from
 * smaps_rollup, with M pods running). Both runtimes get the same private bridge CNI configuration, their own
 * cgroup parent and log directory, all removed afterwards.
 * @module
 */
import { CriClient, type Msg } from "../cri_client.ts";
import { startDaemon } from "../daemon.ts";
import { busybox } from "../fixtures/images.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { conflist } from "./cni.ts";
import { startContainerd } from "./containerd.ts";
import { pushPauseImage } from "./pause_image.ts";
import { findProcesses, peakRssKiB, pssKiB, removeCgroup, rssKiB } from "./proc.ts";
import { type BenchResult, containerdSide, davitSide, type Metric, progress } from "./report.ts";
import { quantile } from "./stats.ts";

const STEPS = [
  "RunPodSandbox",
  "CreateContainer",
  "StartContainer",
  "StopContainer",
  "StopPodSandbox",
  "RemovePodSandbox",
] as const;

type Times = Record<string, number[]>;

/** Options of {@link benchLifecycle}. */
export interface LifecycleOptions {
  pods: number;
  /** Pods running at once while memory per pod is measured (default 10). */
  memPods?: number;
  parallel?: number;
  /**
   * The containers' seccomp profile type: "Unconfined" (default) is what a kubelet sends for a pod that names none
   * (SeccompDefault off, its default); "RuntimeDefault" has each runtime apply its default profile.
   */
  seccomp?: "Unconfined" | "RuntimeDefault";
}

/** Where one side puts its pods: log directory and cgroup parent; and the containers' seccomp profile type. */
interface Placement {
  logDir: string;
  cgroupParent: string;
  image: string;
  seccomp: string;
}

/** One side's figures. */
interface Side {
  seq: Times;
  par: Times;
  /** Wall time of each phase, for pods per second. */
  seqSeconds: number;
  parSeconds: number;
  rssMiB: number;
  peakRssMiB: number;
  perPodPssMiB: number | null;
}

function podConfig(p: Placement, name: string): Msg {
  return {
    metadata: { name, namespace: "bench", uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: p.logDir,
    linux: { cgroup_parent: p.cgroupParent },
  };
}

async function timed(times: Times, step: string, fn: () => Promise<Msg>): Promise<Msg> {
  const t0 = performance.now();
  const r = await fn();
  (times[step] ??= []).push(performance.now() - t0);
  return r;
}

/** Runs a pod with a sleeping container; answers the pod ID and container ID. */
async function podUp(c: CriClient, p: Placement, name: string, times: Times): Promise<[string, string]> {
  const config = podConfig(p, name);
  const pod = (await timed(times, "RunPodSandbox", () => c.call("RunPodSandbox", { config }))).pod_sandbox_id;
  const ctr = (await timed(times, "CreateContainer", () =>
    c.call("CreateContainer", {
      pod_sandbox_id: pod,
      config: {
        metadata: { name: "sleep", attempt: 0 },
        image: { image: p.image },
        command: ["sleep", "3600"],
        log_path: `${name}.log`,
        linux: { security_context: { seccomp: { profile_type: p.seccomp } } },
      },
      sandbox_config: config,
    }))).container_id;
  await timed(times, "StartContainer", () => c.call("StartContainer", { container_id: ctr }));
  return [pod, ctr];
}

async function podDown(c: CriClient, pod: string, ctr: string, times: Times): Promise<void> {
  // sleep as PID 1 ignores SIGTERM: timeout 0 asks for SIGKILL at once on both runtimes.
  await timed(times, "StopContainer", () => c.call("StopContainer", { container_id: ctr, timeout: 0 }));
  await timed(times, "StopPodSandbox", () => c.call("StopPodSandbox", { pod_sandbox_id: pod }));
  await timed(times, "RemovePodSandbox", () => c.call("RemovePodSandbox", { pod_sandbox_id: pod }));
}

/** Full lifecycles of `pods` pods, `parallel` at a time; answers the times and the wall time in seconds. */
async function phase(c: CriClient, p: Placement, pods: number, parallel: number): Promise<[Times, number]> {
  const times: Times = {};
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < pods; i = next++) {
      const [pod, ctr] = await podUp(c, p, `p${parallel}-${i}`, times);
      await podDown(c, pod, ctr, times);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, pods) }, worker));
  return [times, (performance.now() - t0) / 1000];
}

/**
 * PSS per pod of all the helper processes (monitors or shims) while `n` pods run: davit's include the spare monitor
 * it keeps ready, and monitors shared by several pods count once.
 */
async function perPodPss(c: CriClient, p: Placement, n: number, helpers: () => number[]): Promise<number | null> {
  const pods: [string, string][] = [];
  try {
    for (let i = 0; i < n; i++) pods.push(await podUp(c, p, `mem-${i}`, {}));
    await new Promise((r) => setTimeout(r, 1000)); // let start-up garbage be collected
    const pids = helpers();
    if (pids.length === 0) return null;
    return pids.map((pid) => pssKiB(pid) ?? 0).reduce((a, b) => a + b, 0) / 1024 / n;
  } finally {
    for (const [pod, ctr] of pods) await podDown(c, pod, ctr, {});
  }
}

async function measure(
  c: CriClient,
  p: Placement,
  opts: Required<LifecycleOptions>,
  daemonPid: number,
  helpers: () => number[],
  label: string,
): Promise<Side> {
  await Deno.mkdir(p.logDir, { recursive: true });
  await c.call("PullImage", { image: { image: p.image } });
  const [seq, seqSeconds] = await phase(c, p, opts.pods, 1);
  progress(`lifecycle: ${label}: ${opts.pods} pods one at a time in ${seqSeconds.toFixed(1)} s`);
  const [par, parSeconds] = await phase(c, p, opts.pods, opts.parallel);
  progress(`lifecycle: ${label}: ${opts.pods} pods ${opts.parallel} at a time in ${parSeconds.toFixed(1)} s`);
  let rssMiB = 0;
  const perPodPssMiB = await perPodPss(c, p, opts.memPods, () => {
    rssMiB = Math.max(rssMiB, (rssKiB(daemonPid) ?? 0) / 1024);
    return helpers();
  });
  return { seq, par, seqSeconds, parSeconds, rssMiB, peakRssMiB: (peakRssKiB(daemonPid) ?? 0) / 1024, perPodPssMiB };
}

/** Runs the lifecycle benchmark. */
export async function benchLifecycle(o: LifecycleOptions): Promise<BenchResult> {
  const opts: Required<LifecycleOptions> = { memPods: 10, parallel: 10, seccomp: "Unconfined", ...o };
  const notes: string[] = [];
  await using reg = await startRegistry();
  const image = (await busybox(reg)).reference;
  const registriesConf = `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`;
  const tag = crypto.randomUUID().slice(0, 8);

  const davit = await davitSide(notes, async () => {
    const net = `davit-bench-${tag}`, bridge = `dvd${tag}`;
    const cgroupParent = `/davit-bench-d${tag}`;
    try {
      await using d = await startDaemon({
        args: ["--plugin-dirs", "/usr/lib/cni", "--log-level", "info"],
        files: {
          "cni/10-bench.conflist": conflist("bridge", net, bridge, `/tmp/davit-bench-ipam-${tag}`),
          "etc/containers/registries.conf": registriesConf,
        },
      });
      using c = new CriClient(d.socket, { timeoutMs: 120_000 });
      const monitors = () =>
        findProcesses((p) => p.argv.includes("monitor") && p.argv.some((a) => a.startsWith(d.runroot)))
          .map((p) => p.pid);
      const placement = { logDir: `${d.dir}/pod-logs`, cgroupParent, image, seccomp: opts.seccomp };
      return await measure(c, placement, opts, d.process.pid, monitors, "davit");
    } finally {
      await new Deno.Command("ip", { args: ["link", "del", bridge], stderr: "null" }).output();
      await Deno.remove(`/tmp/davit-bench-ipam-${tag}`, { recursive: true }).catch(() => {});
      removeCgroup(cgroupParent);
    }
  });

  let version: string | null = null;
  const ctrd = await containerdSide(notes, async () => {
    const pause = await pushPauseImage(reg);
    const cgroupParent = `/davit-bench-c${tag}`;
    await using cd = await startContainerd({
      sandboxImage: pause.reference,
      insecureRegistries: [reg.host],
      network: "bridge",
    });
    version = cd.version;
    try {
      using c = cd.client({ timeoutMs: 120_000 });
      // The sandbox image is pulled ahead, as a kubelet node would have it: RunPodSandbox then measures the pod.
      await c.call("PullImage", { image: { image: pause.reference } });
      const placement = { logDir: `${cd.dir}/pod-logs`, cgroupParent, image, seccomp: opts.seccomp };
      return await measure(c, placement, opts, cd.pid, () => cd.shims().map((s) => s.pid), "containerd");
    } finally {
      await cd.stop();
      removeCgroup(cgroupParent);
    }
  });

  const metrics: Metric[] = [];
  const q = (s: Side | null, mode: "seq" | "par", step: string, p: number) =>
    s ? quantile(s[mode][step] ?? [], p) : null;
  const start = (s: Side | null, mode: "seq" | "par") =>
    s
      ? ["RunPodSandbox", "CreateContainer", "StartContainer"].reduce((n, st) => n + quantile(s[mode][st]!, 0.5), 0)
      : null;
  for (const mode of ["seq", "par"] as const) {
    const how = mode === "seq" ? "1 at a time" : `${opts.parallel} at a time`;
    metrics.push({
      name: `pod start p50 (Run+Create+Start), ${how}`,
      unit: "ms",
      davit: start(davit, mode),
      containerd: start(ctrd, mode),
      headline: true,
    });
    for (const step of STEPS) {
      for (const p of [0.5, 0.95]) {
        metrics.push({
          name: `${step} p${p * 100}, ${how}`,
          unit: "ms",
          davit: q(davit, mode, step, p),
          containerd: q(ctrd, mode, step, p),
        });
      }
    }
    const rate = (s: Side | null) => s ? opts.pods / (mode === "seq" ? s.seqSeconds : s.parSeconds) : null;
    metrics.push({
      name: `full lifecycles per second, ${how}`,
      unit: "pods/s",
      davit: rate(davit),
      containerd: rate(ctrd),
      digits: 2,
    });
  }
  metrics.push(
    {
      name: `daemon RSS with ${opts.memPods} pods running`,
      unit: "MiB",
      davit: davit?.rssMiB ?? null,
      containerd: ctrd?.rssMiB ?? null,
      digits: 0,
    },
    {
      name: "daemon peak RSS",
      unit: "MiB",
      davit: davit?.peakRssMiB ?? null,
      containerd: ctrd?.peakRssMiB ?? null,
      digits: 0,
    },
    {
      name: `PSS per pod: davit monitor / containerd shim (${opts.memPods} pods)`,
      unit: "MiB",
      davit: davit?.perPodPssMiB ?? null,
      containerd: ctrd?.perPodPssMiB ?? null,
      digits: 2,
      headline: true,
    },
  );
  if (davit && davit.perPodPssMiB === null) notes.push("davit: no monitor process found for running pods");
  notes.push(
    "containerd's sandbox (pause) container and shim are its own per-pod costs; davit pins namespaces " +
      "without an infra container",
    opts.seccomp === "Unconfined"
      ? "containers carry seccomp Unconfined, what a kubelet sends by default (--seccomp RuntimeDefault for each " +
        "runtime's default profile)"
      : "containers carry seccomp RuntimeDefault: each runtime's own default profile, compiled by runc at create",
    "davit's monitors: up to monitor_pods_per_process (default 8) pods share a process, plus one spare process " +
      "kept ready; the PSS per pod counts every monitor process, spare included",
  );
  return {
    bench: "lifecycle",
    title: `${opts.pods} pods with a busybox "sleep 3600" container (seccomp ${opts.seccomp}), private bridge CNI, ` +
      "StopContainer timeout 0",
    containerdVersion: version,
    metrics,
    notes,
  };
}
