// `deno task bench <pull|lifecycle|exec|all> [flags]`: benchmarks of davit through its CRI, side by side with a
// private containerd's CRI in the same run where containerd is installed. They report; they assert nothing.
import { benchExec } from "./exec.ts";
import { benchLifecycle } from "./lifecycle.ts";
import { benchPull } from "./pull.ts";
import { type BenchResult, renderResult, renderSummary, resultsJson } from "./report.ts";

const HELP = `usage: deno task bench <pull|lifecycle|exec|all> [flags]

  pull       cold pull of a ~200 MB, 8-layer image from a loopback registry, fresh root each run
  lifecycle  Run/Create/Start/Stop/StopPod/RemovePod p50 and p95 over N pods, one and 10 at a time; daemon RSS;
             PSS per pod of davit's monitor and containerd's shim
  exec       ExecSync of "true" in a running container, p50 and p95
  all        all three

flags:
  --runs N   pull: cold pulls per runtime (default 3); exec: ExecSync calls (default 100); with all, pull only
  --pods N   lifecycle: pods per phase (default 50)
  --seccomp Unconfined|RuntimeDefault
             lifecycle: the containers' seccomp profile (default Unconfined, what a kubelet sends by default)
  --json     print one JSON document on stdout instead of tables (progress goes to stderr either way)
  --help     this text

Each figure is shown for davit and for containerd (Debian's package, run privately on temporary directories) with
the ratio davit/containerd; needs root, docker-registry, containerd, runc and containernetworking-plugins.`;

const BENCHES = ["pull", "lifecycle", "exec", "all"];

type Seccomp = "Unconfined" | "RuntimeDefault";

function parse(
  args: string[],
): { what: string; runs?: number; pods?: number; seccomp?: Seccomp; json: boolean } | string {
  let what: string | undefined, runs: number | undefined, pods: number | undefined, json = false;
  let seccomp: Seccomp | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--json") json = true;
    else if (a === "--seccomp") {
      const v = args[++i];
      if (v !== "Unconfined" && v !== "RuntimeDefault") {
        return `--seccomp takes Unconfined or RuntimeDefault, got ${JSON.stringify(v)}`;
      }
      seccomp = v;
    } else if (a === "--runs" || a === "--pods") {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1) return `${a} needs a positive integer, got ${JSON.stringify(args[i])}`;
      if (a === "--runs") runs = n;
      else pods = n;
    } else if (!a.startsWith("-") && what === undefined) what = a;
    else return `unknown argument ${JSON.stringify(a)}`;
  }
  if (!what) return "which benchmark? pull, lifecycle, exec or all";
  if (!BENCHES.includes(what)) return `unknown benchmark ${JSON.stringify(what)}: pull, lifecycle, exec or all`;
  return {
    what,
    json,
    ...(runs !== undefined ? { runs } : {}),
    ...(pods !== undefined ? { pods } : {}),
    ...(seccomp !== undefined ? { seccomp } : {}),
  };
}

if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  console.log(HELP);
  Deno.exit(0);
}
const opts = parse(Deno.args);
if (typeof opts === "string") {
  console.error(`bench: ${opts}\n\n${HELP}`);
  Deno.exit(2);
}
const started = new Date().toISOString();
const results: BenchResult[] = [];
const all = opts.what === "all";
if (all || opts.what === "pull") results.push(await benchPull({ runs: opts.runs ?? 3, totalMB: 200, layers: 8 }));
if (all || opts.what === "lifecycle") {
  results.push(await benchLifecycle({ pods: opts.pods ?? 50, ...(opts.seccomp ? { seccomp: opts.seccomp } : {}) }));
}
if (all || opts.what === "exec") results.push(await benchExec({ runs: all ? 100 : opts.runs ?? 100 }));

if (opts.json) {
  console.log(resultsJson(results, { started, target: Deno.build.target, cpus: navigator.hardwareConcurrency }));
} else {
  console.log(`davit benchmarks, ${started}, ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs\n`);
  for (const r of results) console.log(renderResult(r) + "\n");
  console.log(renderSummary(results));
}
