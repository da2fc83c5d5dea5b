/**
 * `deno task bench lifecycle`: RunPodSandbox, CreateContainer, StartContainer, StopContainer, StopPodSandbox and
 * RemovePodSandbox latencies over N pods (sequential, then 10 at a time), daemon RSS, and memory per pod of davit's
 * monitor against containerd's shim (PSS), through each runtime's CRI in the same run, with a bridge network.
 * @module
 */
import type { CriClient, Msg } from "../cri_client.ts";
import { startDaemon } from "../daemon.ts";
import { busybox } from "../fixtures/images.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { startContainerd } from "./containerd.ts";
import { conflist } from "./cni.ts";
import { pushPauseImage } from "./pause_image.ts";
import { findProcesses, pssKiB, rssKiB } from "./proc.ts";
import { fmt, quantile, ratio, table } from "./stats.ts";

const STEPS = [
  "RunPodSandbox",
  "CreateContainer",
  "StartContainer",
  "StopContainer",
  "StopPodSandbox",
  "RemovePodSandbox",
];

type Times = Record<string, number[]>;

async function onePod(c: CriClient, image: string, i: number, label: string, times: Times): Promise<void> {
  const t = async (step: string, fn: () => Promise<Msg>) => {
    const t0 = performance.now();
    const r = await fn();
    (times[step] ??= []).push(performance.now() - t0);
    return r;
  };
  const config = {
    metadata: { name: `b${label}${i}`, namespace: "bench", uid: `u-${label}-${i}` },
    hostname: `b${i}`,
    log_directory: "/tmp",
  };
  const pod = (await t("RunPodSandbox", () => c.call("RunPodSandbox", { config }))).pod_sandbox_id;
  const ctr = (await t("CreateContainer", () =>
    c.call("CreateContainer", {
      pod_sandbox_id: pod,
      config: {
        metadata: { name: "sleep" },
        image: { image },
        command: ["sleep", "3600"],
        log_path: `bench-${label}-${i}.log`,
      },
      sandbox_config: config,
    }))).container_id;
  await t("StartContainer", () => c.call("StartContainer", { container_id: ctr }));
  await t("StopContainer", () => c.call("StopContainer", { container_id: ctr, timeout: 0 }));
  await t("StopPodSandbox", () => c.call("StopPodSandbox", { pod_sandbox_id: pod }));
  await t("RemovePodSandbox", () => c.call("RemovePodSandbox", { pod_sandbox_id: pod }));
}

async function runAll(c: CriClient, image: string, pods: number, parallel: number): Promise<Times> {
  const times: Times = {};
  for (let i = 0; i < pods; i += parallel) {
    await Promise.all(
      Array.from({ length: Math.min(parallel, pods - i) }, (_, j) => onePod(c, image, i + j, `p${parallel}-`, times)),
    );
  }
  return times;
}

/** Starts `n` pods each with a sleeping container and returns per-pod helper PSS (KiB) and a clean-up. */
async function perPodMemory(c: CriClient, image: string, n: number, helpers: () => number[]): Promise<number> {
  const before = helpers();
  const pods: string[] = [];
  for (let i = 0; i < n; i++) {
    const config = {
      metadata: { name: `m${i}`, namespace: "bench", uid: `um-${i}` },
      hostname: `m${i}`,
      log_directory: "/tmp",
    };
    const pod = (await c.call("RunPodSandbox", { config })).pod_sandbox_id;
    const ctr = (await c.call("CreateContainer", {
      pod_sandbox_id: pod,
      config: { metadata: { name: "sleep" }, image: { image }, command: ["sleep", "3600"], log_path: `mem-${i}.log` },
      sandbox_config: config,
    })).container_id;
    await c.call("StartContainer", { container_id: ctr });
    pods.push(pod);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const pids = helpers().filter((p) => !before.includes(p));
  const pss = pids.map((p) => pssKiB(p) ?? 0).reduce((a, b) => a + b, 0);
  for (const p of pods) await c.call("RemovePodSandbox", { pod_sandbox_id: p });
  return pss / n;
}

function report(name: string, times: Times): string[][] {
  return STEPS.map((s) => [name, s, fmt(quantile(times[s] ?? [], 0.5)), fmt(quantile(times[s] ?? [], 0.95))]);
}

/** Runs the lifecycle benchmark and prints its report. */
export async function benchLifecycle(opts: { pods: number }): Promise<void> {
  await using reg = await startRegistry();
  const bb = (await busybox(reg)).reference;
  const octet = 200 + Math.floor(Math.random() * 50);
  const results: Record<string, { seq: Times; par: Times; rssMiB: number; perPodKiB: number }> = {};
  {
    const dir = await Deno.makeTempDir({ prefix: "davit-bench-net-" });
    const net = conflist("bridge", "davit-bench", "dvtbench", `${dir}/ipam`).replace(
      /10\.\d+\.\d+\.0\/\d+/,
      `10.245.${octet}.0/24`,
    );
    await using d = await startDaemon({
      args: ["--plugin-dirs", "/usr/lib/cni", "--log-level", "info"],
      files: {
        "cni/10-bench.conflist": net,
        "etc/containers/registries.conf": `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`,
      },
    });
    using c = d.client();
    await c.call("PullImage", { image: { image: bb } });
    const seq = await runAll(c, bb, opts.pods, 1);
    const par = await runAll(c, bb, opts.pods, 10);
    const monitors = () =>
      findProcesses((p) => p.argv.includes("monitor") && p.argv.some((a) => a.startsWith(d.runroot))).map((p) => p.pid);
    const perPodKiB = await perPodMemory(c, bb, 5, monitors);
    results.davit = { seq, par, rssMiB: (rssKiB(d.process.pid) ?? 0) / 1024, perPodKiB };
    await new Deno.Command("ip", { args: ["link", "del", "dvtbench"], stderr: "null" }).output();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  let version = "";
  try {
    const pause = await pushPauseImage(reg);
    await using cd = await startContainerd({
      sandboxImage: pause.reference,
      insecureRegistries: [reg.host],
      network: "bridge",
    });
    version = cd.version;
    using c = cd.client({ timeoutMs: 120_000 });
    await c.call("PullImage", { image: { image: bb } });
    await c.call("PullImage", { image: { image: pause.reference } });
    const seq = await runAll(c, bb, opts.pods, 1);
    const par = await runAll(c, bb, opts.pods, 10);
    const perPodKiB = await perPodMemory(c, bb, 5, () => cd.shims().map((s) => s.pid));
    results.containerd = { seq, par, rssMiB: (cd.rssKiB() ?? 0) / 1024, perPodKiB };
  } catch (err) {
    console.log(`containerd: not measured (${(err as Error).message})`);
  }
  for (const mode of ["seq", "par"] as const) {
    console.log(`\nlifecycle, ${opts.pods} pods, ${mode === "seq" ? "one at a time" : "10 at a time"} (ms)`);
    const rows = Object.entries(results).flatMap(([n, r]) =>
      report(n === "containerd" ? `containerd ${version}` : n, r[mode])
    );
    console.log(table(["runtime", "call", "p50", "p95"], rows));
    const start = (r: { seq: Times; par: Times }) =>
      ["RunPodSandbox", "CreateContainer", "StartContainer"].reduce((n, s) => n + quantile(r[mode][s] ?? [], 0.5), 0);
    if (results.containerd) {
      console.log(
        `pod start p50 (Run+Create+Start): davit ${fmt(start(results.davit!))} ms, containerd ${
          fmt(start(results.containerd))
        } ms, ratio ${ratio(start(results.davit!), start(results.containerd))}`,
      );
      for (const s of STEPS) {
        console.log(
          `  ${s}: ratio ${
            ratio(quantile(results.davit![mode][s] ?? [], 0.5), quantile(results.containerd[mode][s] ?? [], 0.5))
          }`,
        );
      }
    }
  }
  console.log("\nmemory");
  console.log(table(
    ["runtime", "daemon RSS MiB", "per pod helper PSS MiB"],
    Object.entries(results).map(([n, r]) => [
      n,
      fmt(r.rssMiB),
      fmt(r.perPodKiB / 1024, 2),
    ]),
  ));
}
