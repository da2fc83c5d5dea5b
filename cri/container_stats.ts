/** ContainerStats: CPU, memory and writable-layer usage of one container. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { containerStatsOf, type CpuSamples } from "./stats.ts";

/** Handler for RuntimeService.ContainerStats; an unknown ID is NotFound. */
export function containerStats(daemon: Daemon, samples: CpuSamples): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    const c = await daemon.containers.get(req.container_id);
    return { stats: await containerStatsOf(daemon, c, samples) };
  };
}
