/**
 * What an exec or attach session looks like once its transport (SPDY streams or WebSocket channels) is set up:
 * the client's stdin, sinks for stdout and stderr, terminal resizes, and a signal that fires when the client goes
 * away. The transports build a {@link SessionIo}; the backends (exec through the OCI runtime, attach through the
 * pod monitor) consume it and report a {@link SessionOutcome}, which the transport turns into the final status.
 * @module
 */
import { errorStatus, exitCodeStatus, type K8sStatus, successStatus, type TerminalSize } from "./remotecommand.ts";

/** Where output for the client goes. `close` ends that stream (a FIN), telling the client no more follows. */
export interface ByteSink {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** The client's side of an exec or attach session. */
export interface SessionIo {
  /** Input from the client; ends when the client closes stdin. Null when stdin was not requested. */
  stdin: ReadableStream<Uint8Array> | null;
  stdout: ByteSink | null;
  stderr: ByteSink | null;
  /** Terminal sizes from the client; null without a terminal. */
  resizes: ReadableStream<TerminalSize> | null;
  /** Aborted when the client went away, the session idled out, or the server is stopping. */
  signal: AbortSignal;
}

/** How a session ended. */
export type SessionOutcome =
  | { kind: "exit"; exitCode: number }
  | { kind: "error"; message: string }
  /** The client went away: nothing to report. */
  | { kind: "gone" };

/** The final Status a session reports: Success, NonZeroExitCode with the code, or the error; none when gone. */
export function outcomeStatus(outcome: SessionOutcome): K8sStatus | undefined {
  if (outcome.kind === "gone") return undefined;
  if (outcome.kind === "error") return errorStatus(outcome.message);
  return outcome.exitCode === 0 ? successStatus() : exitCodeStatus(outcome.exitCode);
}

/** What an exec request asked for, as the CRI Exec call recorded it. */
export interface ExecTarget {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** What an attach request asked for. */
export interface AttachTarget {
  containerId: string;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** A TCP connection into a pod's network namespace. */
export interface PodConnection {
  readonly readable: ReadableStream<Uint8Array>;
  write(data: Uint8Array): Promise<void>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** A port-forward session: connections to ports of one pod, closed together. */
export interface PodDialer {
  /** Opens a connection to `port` on the pod's loopback; rejects with a message naming the port. */
  connect(port: number): Promise<PodConnection>;
  close(): Promise<void>;
}

/** What the streaming server asks of the daemon. */
export interface StreamBackend {
  exec(target: ExecTarget, io: SessionIo): Promise<SessionOutcome>;
  attach(target: AttachTarget, io: SessionIo): Promise<SessionOutcome>;
  /** Opens a port-forward session into the pod's network namespace. */
  portForward(podId: string, signal: AbortSignal): Promise<PodDialer>;
}

/**
 * Copies a readable into a sink until either ends; never throws (a vanished client or process simply ends the
 * copy). Closes the sink at the end when `closeSink`.
 */
export async function pump(
  from: ReadableStream<Uint8Array>,
  to: ByteSink,
  opts: { closeSink: boolean },
): Promise<void> {
  const reader = from.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length > 0) await to.write(value);
    }
  } catch {
    // one side went away
  } finally {
    reader.cancel().catch(() => {});
    reader.releaseLock();
    if (opts.closeSink) await to.close().catch(() => {});
  }
}

/** Copies a readable into a writable stream, closing the writable when the readable ends. Never throws. */
export async function pumpInto(from: ReadableStream<Uint8Array>, to: WritableStream<Uint8Array>): Promise<void> {
  const writer = to.getWriter();
  await pump(from, {
    write: (d) => writer.write(d),
    close: () => writer.close(),
  }, { closeSink: true });
  writer.releaseLock();
}
