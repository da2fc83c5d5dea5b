/**
 * The daemon's side of the streaming server: an exec runs through the OCI runtime's exec (a terminal through its
 * console socket), an attach goes through the pod's monitor (which holds the container's stdio), and a
 * port-forward opens connections inside the pod's network namespace through the port-forward helper.
 * @module
 */
import { errorMessage } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { connectLoopback, PortForwarder } from "../runtime/mod.ts";
import type { Daemon } from "./daemon.ts";
import {
  type AttachTarget,
  type ExecTarget,
  type PodConnection,
  type PodDialer,
  pump,
  pumpInto,
  type SessionIo,
  type SessionOutcome,
  type StreamBackend,
} from "./stream/session.ts";

const log = logger("stream");

/** How long output may keep flowing after the process ended (a background child holding the pipe). */
const DRAIN_GRACE_MS = 2_000;

async function forwardResizes(
  resizes: ReadableStream<{ cols: number; rows: number }> | null,
  apply: (cols: number, rows: number) => Promise<void>,
): Promise<void> {
  if (!resizes) return;
  try {
    for await (const s of resizes) await apply(s.cols, s.rows).catch(() => {});
  } catch {
    // the client went away
  }
}

/** Waits for `p`, at most `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise((r) => timer = setTimeout(r, ms))]);
  clearTimeout(timer);
}

/** The streaming backend of a daemon. */
export function streamBackend(daemon: Daemon): StreamBackend {
  return {
    async exec(t: ExecTarget, io: SessionIo): Promise<SessionOutcome> {
      const c = await daemon.containers.get(t.containerId);
      if (c.state !== "running") return { kind: "error", message: `container ${c.id} is ${c.state}, not running` };
      const pod = daemon.state.pod(c.podId)!;
      const runtime = daemon.runtimeFor(pod.runtimeHandler);
      let proc;
      try {
        proc = await runtime.execInteractive(c.id, {
          args: t.cmd,
          tty: t.tty,
          stdin: t.stdin,
          stdout: t.stdout,
          stderr: t.stderr && !t.tty,
          signal: io.signal,
        });
      } catch (err) {
        return { kind: "error", message: errorMessage(err) };
      }
      const onAbort = () => proc.kill().catch(() => {});
      io.signal.addEventListener("abort", onAbort, { once: true });
      try {
        const outputs = Promise.all([
          proc.stdout && io.stdout ? pump(proc.stdout, io.stdout, { closeSink: true }) : undefined,
          proc.stderr && io.stderr ? pump(proc.stderr, io.stderr, { closeSink: true }) : undefined,
        ]);
        if (io.stdin && proc.stdin) void pumpInto(io.stdin, proc.stdin);
        void forwardResizes(io.resizes, (cols, rows) => proc.resize(cols, rows));
        let exitCode: number;
        try {
          exitCode = (await proc.exited).exitCode;
        } catch (err) {
          return { kind: "error", message: errorMessage(err) };
        }
        await within(outputs, DRAIN_GRACE_MS);
        if (io.signal.aborted) return { kind: "gone" };
        return { kind: "exit", exitCode };
      } finally {
        io.signal.removeEventListener("abort", onAbort);
        await proc.kill().catch(() => {});
      }
    },

    async attach(t: AttachTarget, io: SessionIo): Promise<SessionOutcome> {
      const c = await daemon.containers.get(t.containerId);
      if (c.state !== "running") return { kind: "error", message: `container ${c.id} is ${c.state}, not running` };
      let session;
      try {
        session = await (await daemon.monitors.client(c.podId)).attach(c.id, {
          stdin: t.stdin,
          stdout: t.stdout,
          stderr: t.stderr,
        });
      } catch (err) {
        return { kind: "error", message: errorMessage(err) };
      }
      const onAbort = () => session.close();
      io.signal.addEventListener("abort", onAbort, { once: true });
      try {
        const outputs = Promise.all([
          session.stdout && io.stdout ? pump(session.stdout, io.stdout, { closeSink: true }) : undefined,
          session.stderr && io.stderr ? pump(session.stderr, io.stderr, { closeSink: true }) : undefined,
        ]);
        // The client ending its stdin detaches it (crictl's ^P^Q, a piped stdin's end) and the container reads on;
        // but a container made with stdin_once has its stdin closed by that same end (the monitor does it), so the
        // EOF is meant for it: the session then lasts until the container ends, with all its output.
        const detachOnEof = t.stdin && !c.runtime.spec.stdinOnce;
        let detached: Promise<"detached"> | undefined;
        if (io.stdin) {
          const copied = pump(io.stdin, {
            write: (d) => session.writeStdin(d),
            close: () => session.closeStdin(),
          }, { closeSink: true });
          if (detachOnEof) detached = copied.then(() => "detached" as const);
        }
        void forwardResizes(io.resizes, (cols, rows) => session.resize(cols, rows));
        const exit = await Promise.race([session.exited, ...(detached ? [detached] : [])]);
        if (exit === "detached") {
          if (io.signal.aborted) return { kind: "gone" };
          log.debug("attach detached", { container: c.id });
          return { kind: "exit", exitCode: 0 };
        }
        await within(outputs, DRAIN_GRACE_MS);
        if (io.signal.aborted || exit === undefined) return { kind: "gone" };
        // Attach reports success when the container ended: its own exit code belongs to ContainerStatus.
        return { kind: "exit", exitCode: 0 };
      } finally {
        io.signal.removeEventListener("abort", onAbort);
        session.close();
      }
    },

    async portForward(podId: string, signal: AbortSignal): Promise<PodDialer> {
      const pod = daemon.pods.get(podId);
      const netns = pod.runtime.namespaces?.net;
      if (!netns) return hostDialer(signal);
      const fwd = await PortForwarder.start(netns, { signal });
      return {
        connect: (port) => fwd.connect(port),
        close: () => fwd.close(),
      };
    },
  };
}

/** Connections on the host's own loopback, for a pod on the host network (the helper's dialling rule). */
function hostDialer(signal: AbortSignal): PodDialer {
  const open = new Set<Deno.TcpConn>();
  const closeQuietly = (conn: Deno.TcpConn) => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  return {
    async connect(port: number): Promise<PodConnection> {
      const conn = await connectLoopback(port, { signal, where: "on the host's loopback" });
      open.add(conn);
      const writer = conn.writable.getWriter();
      return {
        readable: conn.readable,
        write: (d) => writer.write(d),
        closeWrite: () => conn.closeWrite(),
        close: () => {
          if (open.delete(conn)) closeQuietly(conn);
        },
      };
    },
    close(): Promise<void> {
      for (const c of open) closeQuietly(c);
      open.clear();
      log.debug("host port-forward session closed");
      return Promise.resolve();
    },
  };
}
