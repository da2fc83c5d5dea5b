/**
 * Attach: checks the request against the container (a terminal only for a container made with one, stdin only
 * for a container that keeps it open) and answers a single-use URL on the streaming server.
 */
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { checkStreamFlags } from "./container_exec.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { outlivedMonitor } from "./orphans.ts";

/** Handler for RuntimeService.Attach. */
export function attach(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    checkStreamFlags(req);
    const c = await daemon.containers.get(req.container_id);
    if (c.state !== "running") throw new FailedPrecondition(`container ${c.id} is ${c.state}, not running`);
    if (outlivedMonitor(c)) {
      throw new FailedPrecondition(
        `container ${c.id} cannot be attached to: the pod's monitor that held its stdin, stdout and stderr died ` +
          `while it ran (it still runs, but its output is no longer logged)`,
      );
    }
    const spec = c.runtime.spec;
    if (Boolean(req.tty) !== Boolean(spec.tty)) {
      throw new InvalidArgument(
        `tty is ${Boolean(req.tty)} but container ${c.id} was created with tty ${Boolean(spec.tty)}`,
      );
    }
    if (req.stdin && !spec.stdin) {
      throw new InvalidArgument(`stdin is true but container ${c.id} was created without stdin`);
    }
    const url = daemon.streams.attach({
      containerId: c.id,
      tty: Boolean(req.tty),
      stdin: Boolean(req.stdin),
      stdout: Boolean(req.stdout),
      stderr: Boolean(req.stderr),
    });
    return { url };
  };
}
