/**
 * `davit monitor`: the pod monitor mode. Its command line is a contract between daemon versions (an upgraded
 * daemon talks to monitors started by an older one), documented in docs/monitor-protocol.md:
 *
 *     davit monitor --pod-id ID --dir DIR [--log-level LEVEL]
 *     davit monitor --help
 *
 * DIR is the pod's monitor directory under the runroot, created 0700 if missing; the monitor owns
 * `DIR/monitor.sock` (the protocol socket, 0600), `DIR/monitor.pid`, `DIR/monitor.log`, `DIR/exits/`, and for
 * the moment `<runtime> create` of a container with a terminal runs, its console socket `DIR/c-<n>.sock`. Pods
 * handed over later with `adopt` get the same files in their own directories (host.ts); the process log stays in
 * one of them. Exit status: 0 once it serves no pod (after the last `shutdown`), 1 when it cannot start (e.g.
 * another monitor serves DIR), 2 for a bad command line.
 *
 * Start-up order: PR_SET_CHILD_SUBREAPER, so container inits are reparented here when the runtime exits; then the
 * first pod: the log file replaces stdin/stdout/stderr (so the monitor outlives the daemon that started it and its
 * own crashes land in the log), exit files of earlier runs are loaded, the pid file is written, and the socket is
 * listened on last, so a daemon that can connect finds a monitor ready to serve.
 * @module
 */
import { errorMessage } from "../lib/errors.ts";
import { PR, prctl } from "../lib/libc.ts";
import { configureLogging, logger } from "../lib/log.ts";
import { parseMonitorArgs, USAGE } from "./cli.ts";
import { MonitorHost } from "./host.ts";

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
  configureLogging({ level: logLevel });
  const log = logger("monitor");
  const host = new MonitorHost(log);
  try {
    prctl(PR.SET_CHILD_SUBREAPER, 1);
    await host.add(podId, dir);
  } catch (err) {
    // Before the log took over stderr this reaches the daemon that waits for the socket; after, the log.
    console.error(`davit monitor: cannot serve pod ${podId} from ${dir}: ${errorMessage(err)}`);
    return 1;
  }
  log.info("monitor started", { pid: Deno.pid, pod: podId, dir });

  let reapQueued = false;
  const onChild = () => {
    if (reapQueued) return;
    reapQueued = true;
    setTimeout(() => {
      reapQueued = false;
      try {
        // Skipped while a create is in flight: look again shortly, or a zombie would wait for the next SIGCHLD.
        if (host.reapOrphans() === undefined) onChild();
      } catch (err) {
        log.warn("orphan reaping failed", { err: errorMessage(err) });
      }
    }, 100);
  };
  // A monitor must not die with containers attached: their output pipes would break. SIGTERM/SIGINT only stop
  // an idle one; SIGKILL remains for an operator who means it.
  const onTerm = () => {
    if (host.liveCount === 0) {
      log.info("stopping on signal", { pods: host.podIds });
      host.stopAll();
      Deno.exit(0);
    }
    log.warn("ignoring termination signal: containers are running", { live: host.liveCount });
  };
  const onHup = () => {
    try {
      host.reopenLog(); // after an operator rotated it
    } catch (err) {
      log.warn("cannot reopen monitor log", { err: errorMessage(err) });
    }
  };
  Deno.addSignalListener("SIGCHLD", onChild);
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onTerm);
  Deno.addSignalListener("SIGHUP", onHup);

  await host.empty;
  log.info("monitor exiting: it serves no pod", { live: host.liveCount });
  // Blocking waitpid calls of containers left running by a forced shutdown would keep the process alive.
  Deno.exit(0);
}
