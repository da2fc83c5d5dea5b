/**
 * ContainerStatus: state, times, exit code and reason, image, mounts, log path, user, the resources applied (read
 * back from the container's OCI spec) and metadata.
 */
import { InvalidArgument } from "../lib/errors.ts";
import type { ContainerRecord } from "../runtime/mod.ts";
import type { ContainerRuntime } from "./containers.ts";
import type { Daemon } from "./daemon.ts";
import type { Message, UnaryHandler } from "./grpc_server.ts";

const STATES: Record<string, string> = {
  created: "CONTAINER_CREATED",
  running: "CONTAINER_RUNNING",
  exited: "CONTAINER_EXITED",
  unknown: "CONTAINER_UNKNOWN",
  creating: "CONTAINER_UNKNOWN",
};

/** The CRI state name of a container. */
export function containerState(c: ContainerRecord<ContainerRuntime>): string {
  return STATES[c.state] ?? "CONTAINER_UNKNOWN";
}

/** The fields ContainerStatus and ListContainers share. */
export function containerBasics(c: ContainerRecord<ContainerRuntime>): Message {
  const s = c.runtime.spec;
  return {
    id: c.id,
    metadata: { name: s.name, attempt: s.attempt },
    image: { image: c.imageName, annotations: {}, user_specified_image: c.imageName },
    image_ref: c.imageId,
    image_id: c.imageId,
    state: containerState(c),
    created_at: c.createdAt,
    labels: s.labels,
    annotations: s.annotations,
  };
}

type Spec = {
  process?: { oomScoreAdj?: number };
  linux?: {
    resources?: {
      cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
      memory?: { limit?: number; swap?: number };
      hugepageLimits?: { pageSize: string; limit: number }[];
      unified?: Record<string, string>;
    };
  };
};

/** The CRI `LinuxContainerResources` of what the OCI spec applies (zero values for what it leaves unset). */
export function resourcesFromSpec(spec: Spec): Message {
  const r = spec.linux?.resources ?? {};
  return {
    linux: {
      cpu_period: r.cpu?.period ?? 0,
      cpu_quota: r.cpu?.quota ?? 0,
      cpu_shares: r.cpu?.shares ?? 0,
      memory_limit_in_bytes: r.memory?.limit ?? 0,
      oom_score_adj: spec.process?.oomScoreAdj ?? 0,
      cpuset_cpus: r.cpu?.cpus ?? "",
      cpuset_mems: r.cpu?.mems ?? "",
      hugepage_limits: (r.hugepageLimits ?? []).map((h) => ({ page_size: h.pageSize, limit: h.limit })),
      unified: r.unified ?? {},
      memory_swap_limit_in_bytes: r.memory?.swap ?? 0,
    },
  };
}

/** Handler for RuntimeService.ContainerStatus. */
export function containerStatus(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    const c = await daemon.containers.get(req.container_id);
    const s = c.runtime.spec;
    const status: Message = {
      ...containerBasics(c),
      started_at: c.startedAt,
      finished_at: c.finishedAt,
      exit_code: c.exitCode,
      reason: c.reason,
      message: c.message,
      mounts: s.mounts.map((m) => ({
        container_path: m.containerPath,
        host_path: m.hostPath,
        readonly: m.readonly,
        propagation: m.propagation,
        recursive_read_only: m.recursiveReadOnly,
      })),
      log_path: c.runtime.logPath ?? "",
      ...(c.runtime.user
        ? {
          user: {
            linux: {
              uid: c.runtime.user.uid,
              gid: c.runtime.user.gid,
              supplemental_groups: c.runtime.user.additionalGids,
            },
          },
        }
        : {}),
    };
    const config = c.runtime.bundle
      ? await Deno.readTextFile(`${c.runtime.bundle}/config.json`).then(JSON.parse, () => undefined)
      : undefined;
    if (config) status.resources = resourcesFromSpec(config);
    const res: Message = { status };
    if (req.verbose) {
      res.info = {
        info: JSON.stringify({
          pid: c.runtime.pid ?? 0,
          sandboxID: c.podId,
          runtimeSpec: config,
          bundle: c.runtime.bundle,
        }),
      };
    }
    return res;
  };
}
