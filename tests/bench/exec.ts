/**
 * `deno task bench exec`: ExecSync latency (p50, p95) of `true` in a running busybox container, one call at a time,
 * davit and containerd side by side.
 * @module
 */
import { CriClient } from "../cri_client.ts";
import { LOOPBACK_NETWORK, startDaemon } from "../daemon.ts";
import { busybox } from "../fixtures/images.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { startContainerd } from "./containerd.ts";
import { pushPauseImage } from "./pause_image.ts";
import { removeCgroup } from "./proc.ts";
import { type BenchResult, containerdSide, davitSide, progress } from "./report.ts";
import { quantile } from "./stats.ts";

/** Options of {@link benchExec}. */
export interface ExecOptions {
  runs: number;
}

async function measure(
  c: CriClient,
  image: string,
  logDir: string,
  cgroupParent: string,
  n: number,
): Promise<number[]> {
  await Deno.mkdir(logDir, { recursive: true });
  await c.call("PullImage", { image: { image } });
  const config = {
    metadata: { name: "exec", namespace: "bench", uid: "uid-exec", attempt: 0 },
    hostname: "exec",
    log_directory: logDir,
    linux: { cgroup_parent: cgroupParent },
  };
  const pod = (await c.call("RunPodSandbox", { config })).pod_sandbox_id;
  try {
    const ctr = (await c.call("CreateContainer", {
      pod_sandbox_id: pod,
      config: { metadata: { name: "sleep" }, image: { image }, command: ["sleep", "3600"], log_path: "exec.log" },
      sandbox_config: config,
    })).container_id;
    await c.call("StartContainer", { container_id: ctr });
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await c.call("ExecSync", { container_id: ctr, cmd: ["true"], timeout: 10 });
      out.push(performance.now() - t0);
      if ((r.exit_code ?? 0) !== 0) throw new Error(`ExecSync true exited with ${r.exit_code}`);
    }
    return out;
  } finally {
    await c.call("StopPodSandbox", { pod_sandbox_id: pod });
    await c.call("RemovePodSandbox", { pod_sandbox_id: pod });
  }
}

/** Runs the ExecSync benchmark. */
export async function benchExec(opts: ExecOptions): Promise<BenchResult> {
  const notes: string[] = [];
  await using reg = await startRegistry();
  const image = (await busybox(reg)).reference;
  const tag = crypto.randomUUID().slice(0, 8);

  const davit = await davitSide(notes, async () => {
    try {
      await using d = await startDaemon({
        args: ["--log-level", "info"],
        files: {
          ...LOOPBACK_NETWORK,
          "etc/containers/registries.conf": `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`,
        },
      });
      using c = new CriClient(d.socket, { timeoutMs: 60_000 });
      return await measure(c, image, `${d.dir}/pod-logs`, `/davit-bench-d${tag}`, opts.runs);
    } finally {
      removeCgroup(`/davit-bench-d${tag}`); // after the daemon stopped
    }
  });
  if (davit) progress(`exec: davit: ${opts.runs} calls, p50 ${quantile(davit, 0.5).toFixed(1)} ms`);

  let version: string | null = null;
  const ctrd = await containerdSide(notes, async () => {
    const pause = await pushPauseImage(reg);
    // containerd 1.6's CRI insists on an eth0 in the CNI result: a loopback-only network fails RunPodSandbox.
    await using cd = await startContainerd({
      sandboxImage: pause.reference,
      insecureRegistries: [reg.host],
      network: "bridge",
    });
    version = cd.version;
    using c = cd.client({ timeoutMs: 60_000 });
    try {
      await c.call("PullImage", { image: { image: pause.reference } });
      return await measure(c, image, `${cd.dir}/pod-logs`, `/davit-bench-c${tag}`, opts.runs);
    } finally {
      await cd.stop();
      removeCgroup(`/davit-bench-c${tag}`);
    }
  });
  if (ctrd) progress(`exec: containerd: ${opts.runs} calls, p50 ${quantile(ctrd, 0.5).toFixed(1)} ms`);
  notes.push("davit's pod is on a loopback-only network, containerd's on a private bridge (it refuses loopback only)");

  return {
    bench: "exec",
    title: `ExecSync of "true" in a running busybox container, ${opts.runs} calls one at a time`,
    containerdVersion: version,
    metrics: [
      {
        name: "ExecSync p50",
        unit: "ms",
        davit: davit ? quantile(davit, 0.5) : null,
        containerd: ctrd ? quantile(ctrd, 0.5) : null,
        headline: true,
      },
      {
        name: "ExecSync p95",
        unit: "ms",
        davit: davit ? quantile(davit, 0.95) : null,
        containerd: ctrd ? quantile(ctrd, 0.95) : null,
      },
    ],
    notes,
  };
}
