/**
 * `deno task bench pull`: a cold pull of a ~200 MB, 8-layer image from a loopback registry through davit's CRI
 * (a fresh daemon and root each run), and the same image through containerd's CRI (a fresh containerd and root
 * each run) in the same invocation: wall time, MB/s of compressed bytes, the daemon's peak RSS, disk used.
 * @module
 */
import { startDaemon } from "../daemon.ts";
import { big } from "../fixtures/images.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { startContainerd } from "./containerd.ts";
import { pushPauseImage } from "./pause_image.ts";
import { peakRssKiB } from "./proc.ts";
import { type BenchResult, containerdSide, davitSide, progress, settle } from "./report.ts";
import { quantile } from "./stats.ts";

/** Where the big image is built once and kept between runs. */
export const BENCH_CACHE = "/var/tmp/davit-bench-cache";

/** Options of {@link benchPull}. */
export interface PullOptions {
  runs: number;
  totalMB: number;
  layers: number;
}

interface Run {
  seconds: number;
  peakRssMiB: number;
  diskMiB: number;
}

/** Disk used below `dir` in MiB (du -sk: allocated blocks, hard links once). */
export async function diskMiB(dir: string): Promise<number> {
  const out = await new Deno.Command("du", { args: ["-sk", dir], stdout: "piped", stderr: "null" }).output();
  return Number(new TextDecoder().decode(out.stdout).split("\t")[0]) / 1024;
}

const median = (runs: Run[], pick: (r: Run) => number) => runs.length ? quantile(runs.map(pick), 0.5) : null;

/** Runs the pull benchmark. */
export async function benchPull(opts: PullOptions): Promise<BenchResult> {
  const notes: string[] = [];
  progress(`pull: building (or loading) the ${opts.totalMB} MB image in ${BENCH_CACHE}`);
  await using reg = await startRegistry();
  const img = await big(reg, { totalMB: opts.totalMB, layers: opts.layers, cacheDir: BENCH_CACHE, name: "bench" });
  const bytes = img.layers.reduce((n, l) => n + l.size, 0);
  const registriesConf = `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`;

  const davit: Run[] = [];
  await davitSide(notes, async () => {
    for (let i = 0; i < opts.runs; i++) {
      if (i > 0) await settle(); // the previous run's 200-400 MB must not be written back during this one
      await using d = await startDaemon({
        files: { "etc/containers/registries.conf": registriesConf },
        args: ["--log-level", "info"],
      });
      using c = d.client();
      const t0 = performance.now();
      await c.call("PullImage", { image: { image: img.reference } }, { timeoutMs: 600_000 });
      const seconds = (performance.now() - t0) / 1000;
      const run = { seconds, peakRssMiB: (peakRssKiB(d.process.pid) ?? 0) / 1024, diskMiB: await diskMiB(d.root) };
      davit.push(run);
      progress(`pull: davit run ${i + 1}: ${seconds.toFixed(2)} s, peak RSS ${run.peakRssMiB.toFixed(0)} MiB`);
    }
  });
  if (notes.some((n) => n.includes("PullImage"))) progress("davit: PullImage not implemented yet");

  const ctrd: Run[] = [];
  let version: string | null = null;
  await containerdSide(notes, async () => {
    const pause = await pushPauseImage(reg); // its sandbox image; not pulled by this benchmark
    for (let i = 0; i < opts.runs; i++) {
      if (i > 0) await settle();
      await using cd = await startContainerd({ sandboxImage: pause.reference, insecureRegistries: [reg.host] });
      version = cd.version;
      using c = cd.client({ timeoutMs: 600_000 });
      const t0 = performance.now();
      await c.call("PullImage", { image: { image: img.reference } }, { timeoutMs: 600_000 });
      const seconds = (performance.now() - t0) / 1000;
      const run = { seconds, peakRssMiB: (cd.peakRssKiB() ?? 0) / 1024, diskMiB: await diskMiB(cd.root) };
      ctrd.push(run);
      progress(`pull: containerd run ${i + 1}: ${seconds.toFixed(2)} s, peak RSS ${run.peakRssMiB.toFixed(0)} MiB`);
    }
  });

  const mbps = (runs: Run[]) => {
    const s = median(runs, (r) => r.seconds);
    return s ? bytes / 1e6 / s : null;
  };
  return {
    bench: "pull",
    title: `cold pull of ${(bytes / 1e6).toFixed(0)} MB (compressed) in ${opts.layers} gzip layers from a loopback ` +
      `registry, median of ${opts.runs} runs, fresh daemon and root each run`,
    containerdVersion: version,
    metrics: [
      {
        name: "pull time",
        unit: "s",
        davit: median(davit, (r) => r.seconds),
        containerd: median(ctrd, (r) => r.seconds),
        digits: 2,
        headline: true,
      },
      { name: "throughput", unit: "MB/s", davit: mbps(davit), containerd: mbps(ctrd) },
      {
        name: "daemon peak RSS (VmHWM)",
        unit: "MiB",
        davit: median(davit, (r) => r.peakRssMiB),
        containerd: median(ctrd, (r) => r.peakRssMiB),
        digits: 0,
        headline: true,
      },
      {
        name: "root disk use after pull",
        unit: "MiB",
        davit: median(davit, (r) => r.diskMiB),
        containerd: median(ctrd, (r) => r.diskMiB),
        digits: 0,
      },
    ],
    notes,
  };
}
