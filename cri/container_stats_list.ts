/** ListContainerStats: the stats of the containers passing a filter by ID, pod and labels. */
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { containerMatches, containerStatsOf, type CpuSamples } from "./stats.ts";

/** Handler for RuntimeService.ListContainerStats. */
export function listContainerStats(daemon: Daemon, samples: CpuSamples): UnaryHandler {
  return async (req) => {
    const chosen = (await daemon.containers.list())
      .filter((c) => c.state !== "creating")
      .filter((c) => containerMatches({ id: c.id, podId: c.podId, labels: c.runtime.spec.labels }, req.filter));
    return { stats: await Promise.all(chosen.map((c) => containerStatsOf(daemon, c, samples))) };
  };
}
