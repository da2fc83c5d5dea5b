/** StopContainer: the stop signal, then SIGKILL after `timeout` seconds; idempotent for stopped containers. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.StopContainer. */
export function stopContainer(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    const timeout = Number(req.timeout ?? 0);
    if (!Number.isFinite(timeout) || timeout < 0) throw new InvalidArgument(`timeout ${req.timeout} is negative`);
    await daemon.containers.stop(req.container_id, timeout);
    return {};
  };
}
