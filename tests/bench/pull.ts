/**
 * `deno task bench pull`: a cold pull of a ~200 MB, 8-layer image from a loopback registry through davit's CRI,
 * and the same image through containerd's CRI in the same run: wall time, MB/s and the daemon's peak RSS.
 * @module
 */
import { startDaemon } from "../daemon.ts";
import { startRegistry } from "../fixtures/registry.ts";
import { big } from "../fixtures/images.ts";
import { startContainerd } from "./containerd.ts";
import { pushPauseImage } from "./pause_image.ts";
import { peakRssKiB } from "./proc.ts";
import { fmt, quantile, ratio, table } from "./stats.ts";

/** One side's results. */
export interface PullResult {
  seconds: number[];
  mbPerSecond: number;
  peakRssMiB: number;
}

const CACHE = "/var/tmp/davit-bench-cache";

/** Runs the pull benchmark and prints its report; returns the medians. */
export async function benchPull(
  opts: { runs: number; totalMB: number; layers: number },
): Promise<Record<string, PullResult>> {
  await using reg = await startRegistry();
  const img = await big(reg, {
    totalMB: opts.totalMB,
    layers: opts.layers,
    cacheDir: CACHE,
    name: "bench",
    tag: "pull",
  });
  const bytes = img.layers.reduce((n, l) => n + l.size, 0);
  const ref = img.reference;
  const out: Record<string, PullResult> = {};

  const davit: number[] = [];
  let davitRss = 0;
  for (let i = 0; i < opts.runs; i++) {
    await using d = await startDaemon({
      files: { "etc/containers/registries.conf": `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n` },
      args: ["--log-level", "info"],
    });
    using c = d.client();
    const t0 = performance.now();
    await c.call("PullImage", { image: { image: ref } }, { timeoutMs: 600_000 });
    davit.push((performance.now() - t0) / 1000);
    davitRss = Math.max(davitRss, (peakRssKiB(d.process.pid) ?? 0) / 1024);
  }
  out.davit = { seconds: davit, mbPerSecond: bytes / 1e6 / quantile(davit, 0.5), peakRssMiB: davitRss };

  const ctrd: number[] = [];
  let ctrdRss = 0;
  let version = "";
  try {
    const pause = await pushPauseImage(reg);
    for (let i = 0; i < opts.runs; i++) {
      await using cd = await startContainerd({ sandboxImage: pause.reference, insecureRegistries: [reg.host] });
      version = cd.version;
      using c = cd.client({ timeoutMs: 600_000 });
      const t0 = performance.now();
      await c.call("PullImage", { image: { image: ref } }, { timeoutMs: 600_000 });
      ctrd.push((performance.now() - t0) / 1000);
      ctrdRss = Math.max(ctrdRss, (cd.peakRssKiB() ?? 0) / 1024);
    }
    out.containerd = { seconds: ctrd, mbPerSecond: bytes / 1e6 / quantile(ctrd, 0.5), peakRssMiB: ctrdRss };
  } catch (err) {
    console.log(`containerd: not measured (${(err as Error).message})`);
  }

  console.log(
    `\npull: ${(bytes / 1e6).toFixed(0)} MB compressed in ${opts.layers} layers, ${opts.runs} cold runs each, median`,
  );
  const rows = Object.entries(out).map(([name, r]) => [
    name === "containerd" ? `containerd ${version}` : "davit",
    fmt(quantile(r.seconds, 0.5), 2),
    fmt(r.mbPerSecond, 1),
    fmt(r.peakRssMiB, 0),
  ]);
  console.log(table(["runtime", "seconds", "MB/s", "peak RSS MiB"], rows));
  if (out.containerd) {
    console.log(
      `ratio davit/containerd: time ${ratio(quantile(davit, 0.5), quantile(ctrd, 0.5))}, ` +
        `peak RSS ${ratio(davitRss, ctrdRss)}`,
    );
  }
  return out;
}
