/** StartContainer: runs a created container's process. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.StartContainer. */
export function startContainer(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    await daemon.containers.start(req.container_id);
    return {};
  };
}
