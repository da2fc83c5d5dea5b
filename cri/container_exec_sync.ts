/**
 * ExecSync: runs a command in a running container through the OCI runtime's exec (the container's user, env,
 * capabilities, cgroup and namespaces), and answers its output and exit code. Output past 16 MiB per stream is
 * cut, and the cut is said at the end of stderr; a `timeout` kills the command and answers DEADLINE_EXCEEDED.
 */
import { DeadlineExceeded, FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** The most output kept per stream. */
export const EXEC_SYNC_MAX_OUTPUT = 16 << 20;

/** Handler for RuntimeService.ExecSync. */
export function execSync(daemon: Daemon): UnaryHandler {
  return async (req, ctx) => {
    if (!req.container_id) throw new InvalidArgument("container_id is empty");
    const cmd: string[] = req.cmd ?? [];
    if (cmd.length === 0 || cmd[0] === "") throw new InvalidArgument("cmd is empty");
    const timeoutSec = Number(req.timeout ?? 0);
    if (!Number.isFinite(timeoutSec) || timeoutSec < 0) throw new InvalidArgument(`timeout ${req.timeout} is negative`);
    const c = await daemon.containers.get(req.container_id);
    if (c.state !== "running") throw new FailedPrecondition(`container ${c.id} is ${c.state}, not running`);
    const pod = daemon.state.pod(c.podId)!;
    const runtime = daemon.runtimeFor(pod.runtimeHandler);
    let result;
    try {
      result = await runtime.exec(c.id, {
        args: cmd,
        maxOutputBytes: EXEC_SYNC_MAX_OUTPUT,
        ...(timeoutSec > 0 ? { timeoutMs: timeoutSec * 1000 } : { timeoutMs: 24 * 3600 * 1000 }),
        signal: ctx.signal,
      });
    } catch (err) {
      if (err instanceof DeadlineExceeded && timeoutSec > 0) {
        throw new DeadlineExceeded(
          `command ${JSON.stringify(cmd)} in container ${c.id} timed out after ${timeoutSec}s`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
    let stderr = result.stderr;
    if (result.truncated) {
      const note = new TextEncoder().encode(`\n[davit: output cut at ${EXEC_SYNC_MAX_OUTPUT} bytes per stream]\n`);
      const joined = new Uint8Array(stderr.length + note.length);
      joined.set(stderr);
      joined.set(note, stderr.length);
      stderr = joined;
    }
    return { stdout: result.stdout, stderr, exit_code: result.exitCode };
  };
}
