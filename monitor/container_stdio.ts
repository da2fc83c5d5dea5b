/**
 * A container's stdio as the monitor holds it, in one shape for both kinds: the pipes `<runtime> create` was
 * started with (stdout and stderr apart), or a terminal (terminal.ts: one output, recorded as `stdout`, and a
 * size). container.ts copies the outputs into the log and the attach hub, and feeds the hub's stdin to `stdin`.
 * @module
 */
import type { TerminalSize } from "./attach_frame.ts";
import type { LogStream } from "./log_format.ts";

/** One output of a container and the log stream it is recorded as. */
export interface StdioOutput {
  name: LogStream;
  stream: ReadableStream<Uint8Array>;
}

/** See the module comment. */
export interface ContainerStdio {
  /** Where attach sessions' stdin goes; undefined when the container was created without stdin. */
  stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** The outputs, read to their end. */
  outputs: readonly StdioOutput[];
  /** Applies a terminal size; absent for pipes, which have none. */
  resize?: (size: TerminalSize) => void;
  /**
   * Releases what reading the outputs to their end does not (a terminal's master): called once the outputs
   * ended, and when the container is forgotten (which then ends them). Idempotent; never rejects.
   */
  close(): Promise<void>;
}

/** The stdio of a runtime started with piped stdout and stderr (and stdin when `stdin`). */
export function pipeStdio(child: Deno.ChildProcess, stdin: boolean): ContainerStdio {
  return {
    stdin: stdin ? child.stdin.getWriter() : undefined,
    outputs: [{ name: "stdout", stream: child.stdout }, { name: "stderr", stream: child.stderr }],
    // The pipes are read to their end whatever happens: nothing else to release.
    close: () => Promise.resolve(),
  };
}
