/** RemoveContainer: kills a running container, then removes it; idempotent. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.RemoveContainer. */
export function removeContainer(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    await daemon.containers.remove(req.container_id);
    return {};
  };
}
