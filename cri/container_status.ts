/**
 * ContainerStatus: state, times, exit code and reason, image, mounts, log path, user, the resources applied (taken
 * from the container's OCI spec when it was created) and metadata.
 */
import { InvalidArgument } from "../lib/errors.ts";
import type { ContainerRecord } from "../runtime/mod.ts";
import type { ContainerRuntime } from "./containers.ts";
import { resourcesFromSpec } from "./container_spec.ts";
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
    // The spec is read only when needed: for verbose info, or for a container recorded before resources were kept.
    const readSpec = () =>
      c.runtime.bundle
        ? Deno.readTextFile(`${c.runtime.bundle}/config.json`).then(JSON.parse, () => undefined)
        : Promise.resolve(undefined);
    const config = req.verbose || !c.runtime.resources ? await readSpec() : undefined;
    const resources = c.runtime.resources ?? (config ? resourcesFromSpec(config) : undefined);
    if (resources) status.resources = resources;
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
