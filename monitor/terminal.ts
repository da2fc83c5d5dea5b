/**
 * The terminal of a container created with `terminal: true`. Loaded by container.ts with a dynamic import only
 * when such a container is created, so a monitor whose pods have no terminal never loads the pty code.
 *
 * Hand-over (runc's `--console-socket`, as in runc's docs/terminals.md): before `<runtime> create` runs, the
 * monitor listens on a unix socket in its own directory (0700, so only root reaches it); the runtime makes the
 * container's pty inside the container, gives the slave to the init as stdin, stdout and stderr, and sends the
 * master over the socket (SCM_RIGHTS) before it exits. The socket is used once and removed.
 *
 * The master is then the container's stdio: what it reads is the terminal's output, stdout and stderr merged by
 * the kernel (with the line discipline's `\r\n`), recorded in the CRI log as `stdout`, as CRI-O and containerd do;
 * what is written to it is typed input (echoed by the terminal when echo is on). Closing the terminal's stdin
 * (`stdin_once`) cannot close anything the container holds: one EOT (^D) is sent, which a program reading in
 * canonical mode sees as end of file at the start of a line, and stdin is forwarded no more. The master is
 * closed once its output ended (read EIO: the last slave closed) or the container is forgotten.
 * @module
 */
import { ConsoleSocket } from "../lib/console_socket.ts";
import { errorMessage, FailedPrecondition } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { Pty } from "../lib/pty.ts";
import type { ContainerStdio } from "./container_stdio.ts";

/** End of transmission (^D): end of file to a terminal reader in canonical mode. */
const EOT = new Uint8Array([0x04]);

/** A console socket waiting for the terminal a runtime's `create` sends; see the module comment. */
export class ConsoleHandOver {
  /** The socket's path, for `--console-socket`. */
  readonly path: string;
  readonly #socket: ConsoleSocket;
  readonly #receiving: Promise<Pty>;
  #taken = false;

  private constructor(socket: ConsoleSocket, signal: AbortSignal) {
    this.path = socket.path;
    this.#socket = socket;
    this.#receiving = socket.receive({ signal });
    // Settled by take() or abandon(); never an unhandled rejection meanwhile.
    this.#receiving.catch(() => {});
  }

  /**
   * Listens at `path` and starts waiting, until `signal` (the create's deadline) aborts. A file at `path` is left
   * from an earlier monitor process of the same directory (paths are never reused within one) and is removed.
   */
  static listen(path: string, signal: AbortSignal): ConsoleHandOver {
    try {
      Deno.removeSync(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return new ConsoleHandOver(ConsoleSocket.listen(path), signal);
  }

  /**
   * The terminal, after the runtime's `create` succeeded (it sent the master before exiting, so it is there or
   * never comes). Throws FailedPrecondition when none arrived within `graceMs` or the runtime's message was bad.
   */
  async take(what: string, graceMs: number): Promise<Pty> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), graceMs));
    let pty: Pty | undefined;
    try {
      pty = await Promise.race([this.#receiving, late]);
    } catch (err) {
      throw new FailedPrecondition(`${what}: receiving its terminal on ${this.path} failed: ${errorMessage(err)}`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
    if (pty === undefined) {
      await this.abandon();
      throw new FailedPrecondition(`${what} succeeded but sent no terminal to ${this.path} within ${graceMs} ms`);
    }
    this.#taken = true;
    return pty;
  }

  /** Closes and removes the socket (the runtime failed); a terminal that arrived anyway is closed. Idempotent. */
  async abandon(): Promise<void> {
    await this.#socket.close();
    if (this.#taken) return;
    const pty = await this.#receiving.catch(() => undefined);
    await pty?.close();
  }
}

/** Options for {@link terminalStdio}. */
export interface TerminalStdioOptions {
  containerId: string;
  /** The container was created with stdin: attach sessions may type into the terminal. */
  stdin: boolean;
  log: Logger;
}

/** The container's stdio over its terminal's master; see the module comment. */
export function terminalStdio(pty: Pty, opts: TerminalStdioOptions): ContainerStdio {
  const { containerId: id, log } = opts;
  const stdin = opts.stdin
    ? new WritableStream<Uint8Array>({
      write: (chunk) => pty.write(chunk),
      // stdin_once (or the exit): the terminal stays the container's; an EOT is its end of file.
      close: async () => {
        if (!pty.closed) await pty.write(EOT);
      },
    }).getWriter()
    : undefined;
  return {
    stdin,
    outputs: [{ name: "stdout", stream: pty.readable }],
    resize: (size) => {
      try {
        pty.resize(size.cols, size.rows);
      } catch (err) {
        log.debug("terminal resize failed", { id, err: errorMessage(err) });
      }
    },
    close: () => pty.close().catch((err) => log.warn("closing the terminal failed", { id, err: errorMessage(err) })),
  };
}
