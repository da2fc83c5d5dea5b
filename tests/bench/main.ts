// `deno task bench <pull|lifecycle|exec|all> [--runs N] [--pods N]`: benchmarks of davit through its CRI, side by
// side with containerd's CRI in the same run where containerd is installed. They report; they assert nothing.
import { benchExec } from "./exec.ts";
import { benchLifecycle } from "./lifecycle.ts";
import { benchPull } from "./pull.ts";

const HELP = `deno task bench <pull|lifecycle|exec|all> [--runs N] [--pods N]
  pull       cold pull of a ~200 MB, 8-layer image from a loopback registry (--runs, default 3)
  lifecycle  pod and container lifecycle latencies over --pods pods (default 50), memory per pod
  exec       ExecSync latency (--runs, default 100)`;

function flag(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

const [what, ...rest] = Deno.args;
if (!what || what === "--help" || !["pull", "lifecycle", "exec", "all"].includes(what)) {
  console.log(HELP);
  Deno.exit(what && what !== "--help" ? 2 : 0);
}
console.log(`davit benchmarks, ${new Date().toISOString()}, ${Deno.build.target}`);
if (what === "pull" || what === "all") await benchPull({ runs: flag(rest, "--runs", 3), totalMB: 200, layers: 8 });
if (what === "lifecycle" || what === "all") await benchLifecycle({ pods: flag(rest, "--pods", 50) });
if (what === "exec" || what === "all") await benchExec({ runs: flag(rest, "--runs", 100) });
