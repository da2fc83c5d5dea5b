/** PodSandboxStats: CPU, memory and process count of a pod's cgroup, with the stats of each of its containers. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { type CpuSamples, podStatsOf } from "./stats.ts";

/** Handler for RuntimeService.PodSandboxStats; an unknown ID is NotFound. */
export function podSandboxStats(daemon: Daemon, samples: CpuSamples): UnaryHandler {
  return async (req) => {
    if (!req.pod_sandbox_id) throw new InvalidArgument("pod_sandbox_id is empty");
    const pod = daemon.pods.get(req.pod_sandbox_id);
    const containers = (await daemon.containers.list()).filter((c) => c.podId === pod.id && c.state !== "creating");
    return { stats: await podStatsOf(daemon, pod, containers, samples) };
  };
}
