/** CreateContainer: validates the container config and hands it to the container manager; answers its ID. */
import { InvalidArgument } from "../lib/errors.ts";
import { validateContainerConfig } from "./container_config.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.CreateContainer. */
export function createContainer(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.pod_sandbox_id) throw new InvalidArgument("pod_sandbox_id is empty");
    const spec = validateContainerConfig(req.config);
    return { container_id: await daemon.containers.create(req.pod_sandbox_id, spec) };
  };
}
