/** PodSandboxStatus: state, creation time, IPs, namespace options and metadata of one pod. */
import { InvalidArgument } from "../lib/errors.ts";
import type { PodRecord } from "../runtime/mod.ts";
import type { Daemon } from "./daemon.ts";
import type { Message, UnaryHandler } from "./grpc_server.ts";
import type { PodRuntime } from "./pods.ts";

/** The CRI metadata of a pod. */
export function podMetadata(pod: PodRecord<PodRuntime>): Message {
  const s = pod.runtime.spec;
  return { name: s.name, uid: s.uid, namespace: s.namespace, attempt: s.attempt };
}

/** The CRI state name of a pod. */
export function podState(pod: PodRecord<PodRuntime>): string {
  return pod.state === "ready" ? "SANDBOX_READY" : "SANDBOX_NOTREADY";
}

/** Handler for RuntimeService.PodSandboxStatus. */
export function podSandboxStatus(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.pod_sandbox_id) throw new InvalidArgument("pod_sandbox_id is empty");
    const pod = daemon.pods.reconcileInfra(daemon.pods.get(req.pod_sandbox_id));
    const s = pod.runtime.spec;
    const ips = pod.runtime.ips ?? [];
    const status: Message = {
      id: pod.id,
      metadata: podMetadata(pod),
      state: podState(pod),
      created_at: pod.createdAt,
      network: { ip: ips[0] ?? "", additional_ips: ips.slice(1).map((ip) => ({ ip })) },
      linux: { namespaces: { options: { network: s.network, pid: s.pid, ipc: s.ipc, target_id: "" } } },
      labels: s.labels,
      annotations: s.annotations,
      runtime_handler: pod.runtimeHandler,
    };
    const res: Message = { status };
    if (req.verbose) {
      // A verbose status also asks the CNI plugins to CHECK the pod's network (where the config's version allows).
      let networkCheck = "not applicable";
      const net = pod.runtime.namespaces?.net;
      if (pod.runtime.networkSetUp && net && pod.state === "ready") {
        networkCheck = await daemon.cni.checkPod({
          id: pod.id,
          name: s.name,
          namespace: s.namespace,
          uid: s.uid,
          netnsPath: net,
        })
          .then(() => "ok", (err: unknown) => `failed: ${(err as Error).message}`);
      }
      res.info = {
        info: JSON.stringify({
          networkCheck,
          namespaces: pod.runtime.namespaces ?? {},
          cgroup: pod.runtime.cgroup ?? "",
          files: pod.runtime.files ?? {},
          shm: pod.runtime.shm ?? "",
          monitorDir: pod.runtime.monitorDir ?? "",
          // Only pods with a shared PID namespace have one.
          ...(pod.runtime.infra
            ? {
              infra: {
                id: pod.runtime.infra.id,
                pid: pod.runtime.infra.pid ?? 0,
                imageId: pod.runtime.infra.imageId ?? "",
                stopped: Boolean(pod.runtime.infra.stopped),
              },
            }
            : {}),
        }),
      };
    }
    return res;
  };
}
