/** ReopenContainerLog: after the kubelet renamed a container's log file, the monitor starts a new one. */
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { outlivedMonitor } from "./orphans.ts";

/** Handler for RuntimeService.ReopenContainerLog. */
export function reopenContainerLog(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    const c = await daemon.containers.get(req.container_id);
    if (c.state !== "running") throw new FailedPrecondition(`container ${c.id} is ${c.state}, not running`);
    if (outlivedMonitor(c)) {
      throw new FailedPrecondition(
        `container ${c.id}'s log cannot be reopened: the pod's monitor that wrote it died while the container ran`,
      );
    }
    await (await daemon.monitors.client(c.podId)).reopenLog(c.id);
    return {};
  };
}
