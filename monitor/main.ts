/**
 * `davit monitor`: the pod monitor mode. Its command line is a contract between daemon versions (an upgraded
 * daemon talks to monitors started by an older one), documented in docs/monitor-protocol.md:
 *
 *     davit monitor --pod-id ID --dir DIR [--log-level LEVEL]
 *     davit monitor --help
 *
 * DIR is the pod's monitor directory under the runroot, created 0700 if missing; the monitor owns
 * `DIR/monitor.sock` (the protocol socket, 0600), `DIR/monitor.pid`, `DIR/monitor.log`, `DIR/exits/`, and for
 * the moment `<runtime> create` of a container with a terminal runs, its console socket `DIR/c-<n>.sock`.
 * Exit status: 0 after `shutdown`, 1 when it cannot start (e.g. another monitor serves DIR), 2 for a bad command line.
 *
 * Start-up order: the log file replaces stdin/stdout/stderr (so the monitor outlives the daemon that started it
 * and its own crashes land in the log); PR_SET_CHILD_SUBREAPER, so container inits are reparented here when the
 * runtime exits; exit files of earlier runs are loaded; the pid file is written; the socket is listened on last,
 * so a daemon that can connect finds a monitor ready to serve.
 * @module
 */
import { errorMessage } from "../lib/errors.ts";
import { AT, close, dup2, O, openat, PR, prctl } from "../lib/libc.ts";
import { configureLogging, logger } from "../lib/log.ts";
import { monitorPaths, parseMonitorArgs, USAGE } from "./cli.ts";
import { MonitorServer } from "./server.ts";

/** True when a monitor answers on `socket` (another process serves this directory). */
async function answering(socket: string): Promise<boolean> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch {
    return false;
  }
  conn.close();
  return true;
}

function writePidFile(path: string): void {
  const tmp = `${path}.tmp`;
  Deno.writeTextFileSync(tmp, `${Deno.pid}\n`, { mode: 0o644 });
  Deno.renameSync(tmp, path);
}

/** Points stdin at /dev/null and stdout/stderr at the monitor's log, so no fd refers to the daemon's pipes. */
function redirectStdio(logPath: string): void {
  const logFd = openat(AT.FDCWD, logPath, O.WRONLY | O.APPEND | O.CREAT, 0o600);
  const nullFd = openat(AT.FDCWD, "/dev/null", O.RDONLY);
  try {
    dup2(nullFd, 0);
    dup2(logFd, 1);
    dup2(logFd, 2);
  } finally {
    close(logFd);
    close(nullFd);
  }
}

/** Runs the monitor mode; resolves to the process exit status. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseMonitorArgs(args);
  if (parsed.kind === "help") {
    console.log(USAGE);
    return 0;
  }
  if (parsed.kind === "error") {
    console.error(`davit monitor: ${parsed.message}\n\n${USAGE}`);
    return 2;
  }
  const { podId, dir, logLevel } = parsed;
  const paths = monitorPaths(dir);
  configureLogging({ level: logLevel });
  const log = logger("monitor").with({ pod: podId });
  try {
    Deno.mkdirSync(paths.exits, { recursive: true, mode: 0o700 });
    redirectStdio(paths.log);
  } catch (err) {
    console.error(`davit monitor: cannot prepare ${dir}: ${errorMessage(err)}`);
    return 1;
  }
  let server: MonitorServer;
  let listener: Deno.Listener;
  try {
    prctl(PR.SET_CHILD_SUBREAPER, 1);
    if (await answering(paths.socket)) {
      log.error("another monitor serves this directory", { dir });
      return 1;
    }
    server = new MonitorServer({ podId, dir, exitsDir: paths.exits, log });
    writePidFile(paths.pid);
    try {
      Deno.removeSync(paths.socket);
    } catch {
      // no stale socket
    }
    listener = Deno.listen({ transport: "unix", path: paths.socket });
    Deno.chmodSync(paths.socket, 0o600);
  } catch (err) {
    log.error("cannot start", { err: errorMessage(err) });
    return 1;
  }
  log.info("monitor started", { pid: Deno.pid, dir });

  let reapQueued = false;
  const onChild = () => {
    if (reapQueued) return;
    reapQueued = true;
    setTimeout(() => {
      reapQueued = false;
      try {
        server.reapOrphans();
      } catch (err) {
        log.warn("orphan reaping failed", { err: errorMessage(err) });
      }
    }, 100);
  };
  // A monitor must not die with containers attached: their output pipes would break. SIGTERM/SIGINT only stop
  // an idle one; SIGKILL remains for an operator who means it.
  const onTerm = () => {
    if (server.liveCount === 0) {
      log.info("stopping on signal");
      listener.close();
      cleanup();
      Deno.exit(0);
    }
    log.warn("ignoring termination signal: containers are running", { live: server.liveCount });
  };
  const onHup = () => {
    try {
      redirectStdio(paths.log); // reopen our own log after an operator rotated it
    } catch (err) {
      log.warn("cannot reopen monitor log", { err: errorMessage(err) });
    }
  };
  const cleanup = () => {
    for (const p of [paths.socket, paths.pid]) {
      try {
        Deno.removeSync(p);
      } catch {
        // already gone
      }
    }
  };
  Deno.addSignalListener("SIGCHLD", onChild);
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onTerm);
  Deno.addSignalListener("SIGHUP", onHup);

  const serving = server.serve(listener);
  await server.stopped;
  log.info("monitor shutting down", { live: server.liveCount });
  listener.close();
  await serving;
  server.closeConnections();
  cleanup();
  // Blocking waitpid calls of containers left running by a forced shutdown would keep the process alive.
  Deno.exit(0);
}
