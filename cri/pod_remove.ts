/** RemovePodSandbox: removes the pod with all its containers and resources; idempotent. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.RemovePodSandbox. */
export function removePodSandbox(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.pod_sandbox_id) throw new InvalidArgument("pod_sandbox_id is empty");
    await daemon.pods.remove(req.pod_sandbox_id);
    return {};
  };
}
