/** StopPodSandbox: stops the pod's containers and releases its network; idempotent. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.StopPodSandbox. */
export function stopPodSandbox(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.pod_sandbox_id) throw new InvalidArgument("pod_sandbox_id is empty");
    await daemon.pods.stop(req.pod_sandbox_id);
    return {};
  };
}
