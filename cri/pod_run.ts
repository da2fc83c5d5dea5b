/** RunPodSandbox: validates the pod config and hands it to the pod manager; answers the pod ID. */
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { validatePodConfig } from "./pod_config.ts";

/** Handler for RuntimeService.RunPodSandbox. */
export function runPodSandbox(daemon: Daemon): UnaryHandler {
  return async (req) => {
    const spec = validatePodConfig(req.config);
    const id = await daemon.pods.run(spec, typeof req.runtime_handler === "string" ? req.runtime_handler : "");
    return { pod_sandbox_id: id };
  };
}
