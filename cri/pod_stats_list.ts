/** ListPodSandboxStats: the stats of the pods passing a filter by ID and labels. */
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import type { PodRuntime } from "./pods.ts";
import { type CpuSamples, podMatches, podStatsOf } from "./stats.ts";

/** Handler for RuntimeService.ListPodSandboxStats. */
export function listPodSandboxStats(daemon: Daemon, samples: CpuSamples): UnaryHandler {
  return async (req) => {
    const pods = daemon.state.pods<PodRuntime>()
      .filter((p) => p.state !== "creating")
      .filter((p) => podMatches({ id: p.id, labels: p.runtime.spec.labels }, req.filter));
    const containers = (await daemon.containers.list()).filter((c) => c.state !== "creating");
    return {
      stats: await Promise.all(
        pods.map((p) => podStatsOf(daemon, p, containers.filter((c) => c.podId === p.id), samples)),
      ),
    };
  };
}
