/**
 * PortForward: checks the pod (ready) and the ports, and answers a single-use URL on the streaming server through
 * which the client opens connections to the pod's loopback (the host's, for a pod on the host network).
 */
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.PortForward. */
export function portForward(daemon: Daemon): UnaryHandler {
  return (req) => {
    if (!req.pod_sandbox_id) throw new InvalidArgument("pod_sandbox_id is empty");
    const ports: number[] = (req.port ?? []).map(Number);
    for (const p of ports) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) {
        throw new InvalidArgument(`port ${p} is not between 1 and 65535`);
      }
    }
    const pod = daemon.pods.get(req.pod_sandbox_id);
    if (pod.state !== "ready") throw new FailedPrecondition(`pod sandbox ${pod.id} is ${pod.state}, not ready`);
    const url = daemon.streams.portForward({ podId: pod.id, ports });
    return Promise.resolve({ url });
  };
}
