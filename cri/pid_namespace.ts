/**
 * Where a new container's PID namespace comes from when it joins one: the pod's infra process (pid POD) or another
 * running container of the same pod (pid TARGET with `target_id`, as for ephemeral debug containers). Answers the
 * `/proc/<pid>/ns/pid` path that spec generation takes as an input, after checking that the process behind it runs.
 * @module
 */
import { FailedPrecondition, InvalidArgument, NotFound } from "../lib/errors.ts";
import type { ContainerRecord, PodRecord } from "../runtime/mod.ts";
import type { ContainerRuntime } from "./containers.ts";
import type { PodInfra } from "./pod_infra.ts";
import type { PodRuntime } from "./pods.ts";

/** Resolves the PID namespace a container joins. */
export interface PidNamespaces {
  /** The pod's shared PID namespace (its infra process's). */
  pod(pod: PodRecord<PodRuntime>): Promise<string>;
  /** The PID namespace of the running container `targetId` of the same pod. */
  target(pod: PodRecord<PodRuntime>, targetId: string): Promise<string>;
}

/** What {@link pidNamespaces} reads. */
export interface PidNamespaceSources {
  infra: Pick<PodInfra, "pidNamespace">;
  /** A container by ID or unique prefix, refreshed from its monitor; NotFound when unknown. */
  container(idOrPrefix: string): Promise<ContainerRecord<ContainerRuntime>>;
  /** True when a process with this pid exists. */
  alive?: (pid: number) => Promise<boolean>;
}

const FIELD = "linux.security_context.namespace_options.target_id";

function procAlive(pid: number): Promise<boolean> {
  return Deno.stat(`/proc/${pid}/ns/pid`).then(() => true, () => false);
}

/** The PID namespace resolver over the pod's infra and the container records. */
export function pidNamespaces(src: PidNamespaceSources): PidNamespaces {
  const alive = src.alive ?? procAlive;
  return {
    pod: (pod) => src.infra.pidNamespace({ id: pod.id, ...(pod.runtime.infra ? { infra: pod.runtime.infra } : {}) }),
    async target(pod, targetId) {
      if (targetId === "") throw new InvalidArgument(`${FIELD} is empty: pid TARGET needs the container to join`);
      let target: ContainerRecord<ContainerRuntime>;
      try {
        target = await src.container(targetId);
      } catch (err) {
        if (err instanceof NotFound) {
          throw new NotFound(`${FIELD} ${JSON.stringify(targetId)}: no such container`, { cause: err });
        }
        throw err;
      }
      if (target.podId !== pod.id) {
        throw new FailedPrecondition(
          `${FIELD} ${JSON.stringify(targetId)}: container ${target.id} belongs to pod ${target.podId}, not to pod ` +
            pod.id,
        );
      }
      const pid = target.runtime.pid ?? 0;
      if (target.state !== "running" || pid <= 0 || !(await alive(pid))) {
        const state = target.state === "running" ? "running but its process is gone" : target.state;
        throw new FailedPrecondition(
          `${FIELD} ${JSON.stringify(targetId)}: container ${target.id} is ${state}; only a running container's ` +
            "PID namespace can be joined",
        );
      }
      return `/proc/${pid}/ns/pid`;
    },
  };
}
