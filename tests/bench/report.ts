// What a benchmark hands back (named figures for davit and containerd, notes), how it is printed as a table or
// JSON, and the guard that turns a davit RPC not built yet into a note instead of a crash.
import { CriCallError } from "../cri_client.ts";
import { fmt, ratio, table } from "./stats.ts";

/** One figure measured on both sides; null where a side was not measured. */
export interface Metric {
  name: string;
  unit: string;
  davit: number | null;
  containerd: number | null;
  /** Decimals when printed (default 1). */
  digits?: number;
  /** Repeated in the final summary. */
  headline?: boolean;
}

/** A benchmark's outcome. */
export interface BenchResult {
  bench: string;
  /** What was measured, in one line (sizes, counts). */
  title: string;
  /** containerd's version, or null when its side did not run. */
  containerdVersion: string | null;
  metrics: Metric[];
  /** Things a reader must know: a side not measured, an RPC not implemented yet, an asymmetry. */
  notes: string[];
}

/** davit/containerd, or null when either side is missing or zero. */
export function metricRatio(m: Metric): number | null {
  return m.davit && m.containerd ? m.davit / m.containerd : null;
}

/** The result as an aligned text table with its notes. */
export function renderResult(r: BenchResult): string {
  const ctrd = r.containerdVersion ? `containerd ${r.containerdVersion}` : "containerd";
  const rows = r.metrics.map((m) => [
    m.name,
    m.unit,
    fmt(m.davit, m.digits ?? 1),
    fmt(m.containerd, m.digits ?? 1),
    ratio(m.davit, m.containerd),
  ]);
  const lines = [`${r.bench}: ${r.title}`, table(["metric", "unit", "davit", ctrd, "davit/containerd"], rows)];
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join("\n");
}

/** The headline figures of every result, one line each. */
export function renderSummary(results: BenchResult[]): string {
  const lines = ["summary (davit/containerd; below 1 means davit is faster or smaller):"];
  for (const r of results) {
    for (const m of r.metrics.filter((x) => x.headline)) {
      const q = metricRatio(m);
      lines.push(
        `  ${r.bench} ${m.name}: davit ${fmt(m.davit, m.digits ?? 1)} ${m.unit}, containerd ${
          fmt(m.containerd, m.digits ?? 1)
        } ${m.unit}, ratio ${q === null ? "-" : q.toFixed(2)}`,
      );
    }
  }
  return lines.join("\n");
}

/** The results as one JSON document (ratios included). */
export function resultsJson(results: BenchResult[], meta: Record<string, unknown>): string {
  return JSON.stringify(
    {
      ...meta,
      results: results.map((r) => ({ ...r, metrics: r.metrics.map((m) => ({ ...m, ratio: metricRatio(m) })) })),
    },
    null,
    2,
  );
}

/**
 * Lets what the previous side left settle before a side starts: `sync` writes back its dirty pages (a 400 MB pull
 * would otherwise be flushed during the next side's fsyncs and charged to it), then a short pause.
 */
export async function settle(): Promise<void> {
  await new Deno.Command("sync").output().catch(() => {});
  await new Promise((r) => setTimeout(r, 500));
}

/** Runs davit's side; an RPC answering UNIMPLEMENTED becomes a note ("davit: PullImage not implemented yet"). */
export async function davitSide<T>(notes: string[], fn: () => Promise<T>): Promise<T | null> {
  await settle();
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CriCallError && err.codeName === "UNIMPLEMENTED") {
      notes.push(`davit: ${err.method} not implemented yet`);
      return null;
    }
    throw err;
  }
}

/** Runs containerd's side; any failure becomes a note, so davit's figures still print. */
export async function containerdSide<T>(notes: string[], fn: () => Promise<T>): Promise<T | null> {
  await settle();
  try {
    return await fn();
  } catch (err) {
    notes.push(`containerd: not measured (${(err as Error).message.split("\n")[0]})`);
    return null;
  }
}

/** Progress lines go to stderr, so that `--json` output on stdout stays clean. */
export function progress(line: string): void {
  console.error(line);
}
