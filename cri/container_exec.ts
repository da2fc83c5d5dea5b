/**
 * Exec: checks the request and the container, and answers a single-use URL on the streaming server where the
 * client (kubelet, crictl) runs the command interactively over SPDY or WebSocket.
 */
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Checks the stream flags every streaming request shares (CRI: tty excludes stderr; one stream at least). */
export function checkStreamFlags(req: { tty?: boolean; stdin?: boolean; stdout?: boolean; stderr?: boolean }): void {
  if (req.tty && req.stderr) {
    throw new InvalidArgument("tty and stderr cannot both be true (a terminal merges stderr into stdout)");
  }
  if (!req.stdin && !req.stdout && !req.stderr) {
    throw new InvalidArgument("one of stdin, stdout or stderr must be true");
  }
}

/** Handler for RuntimeService.Exec. */
export function exec(daemon: Daemon): UnaryHandler {
  return async (req) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    const cmd: string[] = req.cmd ?? [];
    if (cmd.length === 0 || cmd[0] === "") throw new InvalidArgument("cmd is empty");
    checkStreamFlags(req);
    const c = await daemon.containers.get(req.container_id);
    if (c.state !== "running") throw new FailedPrecondition(`container ${c.id} is ${c.state}, not running`);
    const url = daemon.streams.exec({
      containerId: c.id,
      cmd,
      tty: Boolean(req.tty),
      stdin: Boolean(req.stdin),
      stdout: Boolean(req.stdout),
      stderr: Boolean(req.stderr),
    });
    return { url };
  };
}
