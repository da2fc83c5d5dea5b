/** `deno task bench exec`: ExecSync latency of `true` in a running container, davit and containerd side by side. */
import type { CriClient } from "../cri_client.ts";
import { startDaemon } from "../daemon.ts";
import { LOOPBACK_NETWORK } from "../daemon.ts";
import { busybox } from "../fixtures/images.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { startContainerd } from "./containerd.ts";
import { pushPauseImage } from "./pause_image.ts";
import { fmt, quantile, ratio, table } from "./stats.ts";

async function measure(c: CriClient, image: string, n: number): Promise<number[]> {
  const config = {
    metadata: { name: "exec", namespace: "bench", uid: "u-exec" },
    hostname: "exec",
    log_directory: "/tmp",
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
      await c.call("ExecSync", { container_id: ctr, cmd: ["true"], timeout: 10 });
      out.push(performance.now() - t0);
    }
    return out;
  } finally {
    await c.call("RemovePodSandbox", { pod_sandbox_id: pod });
  }
}

/** Runs the ExecSync benchmark and prints its report. */
export async function benchExec(opts: { runs: number }): Promise<void> {
  await using reg = await startRegistry();
  const bb = (await busybox(reg)).reference;
  const res: Record<string, number[]> = {};
  {
    await using d = await startDaemon({
      args: ["--log-level", "info"],
      files: {
        ...LOOPBACK_NETWORK,
        "etc/containers/registries.conf": `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`,
      },
    });
    using c = d.client();
    await c.call("PullImage", { image: { image: bb } });
    res.davit = await measure(c, bb, opts.runs);
  }
  try {
    const pause = await pushPauseImage(reg);
    // containerd's CRI wants an interface result from CNI: give it the bench bridge.
    await using cd = await startContainerd({
      sandboxImage: pause.reference,
      insecureRegistries: [reg.host],
      network: "bridge",
    });
    using c = cd.client({ timeoutMs: 60_000 });
    await c.call("PullImage", { image: { image: bb } });
    res.containerd = await measure(c, bb, opts.runs);
  } catch (err) {
    console.log(`containerd: not measured (${(err as Error).message})`);
  }
  console.log(`\nExecSync of "true", ${opts.runs} calls (ms)`);
  console.log(
    table(
      ["runtime", "p50", "p95"],
      Object.entries(res).map(([n, t]) => [n, fmt(quantile(t, 0.5)), fmt(quantile(t, 0.95))]),
    ),
  );
  if (res.containerd) {
    console.log(`ratio davit/containerd p50: ${ratio(quantile(res.davit!, 0.5), quantile(res.containerd, 0.5))}`);
  }
}
