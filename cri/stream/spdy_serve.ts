/**
 * Exec, attach and port-forward over SPDY/3.1, as kubectl, crictl and the kubelet speak them. After the 101 answer
 * the client opens one SPDY stream per role, naming it in a `streamtype` header: for exec and attach `error`,
 * `stdin`, `stdout`, `stderr`, `resize`; for port-forward a `data` and an `error` stream per forwarded
 * connection, paired by `requestid`, with the target in `port`. The server replies to each stream, runs the
 * session, writes the final status to the error stream and closes.
 * @module
 */
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { HttpError, type IncomingRequest, writeSwitchingProtocols } from "./http1.ts";
import { pushStream } from "./push_stream.ts";
import {
  encodeStatus,
  parsePort,
  PORT_HEADER,
  protocolRules,
  REQUEST_ID_HEADER,
  ResizeDecoder,
  STREAM_TYPE_HEADER,
  type TerminalSize,
} from "./remotecommand.ts";
import type { ByteSink, PodConnection, PodDialer, SessionIo, SessionOutcome } from "./session.ts";
import { outcomeStatus, pump } from "./session.ts";
import { SpdySession } from "./spdy_session.ts";
import type { SpdyStream } from "./spdy_stream.ts";
import type { StreamFlags } from "./ws_remotecommand.ts";

/** An upgraded SPDY connection and the streams its client opens. */
export interface SpdyUpgrade {
  session: SpdySession;
  streams: ReadableStream<SpdyStream>;
  readonly lastActivity: number;
  close(): Promise<void>;
}

/** Answers 101 for SPDY/3.1 with the negotiated protocol and starts a server session. */
export async function upgradeSpdy(req: IncomingRequest, protocol: string): Promise<SpdyUpgrade> {
  const connection = (req.headers.get("connection") ?? "").toLowerCase().split(",").map((s) => s.trim());
  if (!connection.includes("upgrade")) throw new HttpError(400, "a SPDY upgrade needs Connection: Upgrade");
  const headers = new Headers({ connection: "Upgrade", upgrade: "SPDY/3.1" });
  if (protocol) headers.set("x-stream-protocol-version", protocol);
  await writeSwitchingProtocols(req.conn.writable, headers);
  const incoming = pushStream<SpdyStream>(64);
  const session = new SpdySession(req.conn, {
    role: "server",
    onStream: (s) => incoming.push(s),
  });
  void session.closed.then(() => incoming.close());
  return {
    session,
    streams: incoming.readable,
    get lastActivity() {
      return session.lastActivity;
    },
    close: () => session.close(),
  };
}

function streamSink(s: SpdyStream): ByteSink {
  return { write: (d) => s.write(d), close: () => s.closeWrite() };
}

/** Reads the next stream, or undefined at the deadline or the end. */
async function nextStream(
  reader: ReadableStreamDefaultReader<SpdyStream>,
  deadline: number,
): Promise<SpdyStream | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((r) =>
    timer = setTimeout(() => r(undefined), Math.max(0, deadline - Date.now()))
  );
  try {
    const got = await Promise.race([reader.read(), timeout]);
    return got && !got.done ? got.value : undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link serveSpdyRemoteCommand}. */
export interface RemoteCommandOptions {
  /** How long the client may take to open its streams. */
  timeoutMs: number;
  signal: AbortSignal;
  /** Runs the session (the backend's exec or attach). */
  run: (io: SessionIo) => Promise<SessionOutcome>;
}

/** Serves one exec or attach on an upgraded SPDY connection, then closes it. */
export async function serveSpdyRemoteCommand(
  up: SpdyUpgrade,
  protocol: string,
  flags: StreamFlags,
  opts: RemoteCommandOptions,
): Promise<void> {
  const rules = protocolRules(protocol);
  const stderr = flags.stderr && !flags.tty;
  const expected = 1 + Number(flags.stdin) + Number(flags.stdout) + Number(stderr) +
    Number(flags.tty && rules.resize);
  const got = new Map<string, SpdyStream>();
  const reader = up.streams.getReader();
  const deadline = Date.now() + opts.timeoutMs;
  try {
    while (got.size < expected) {
      const s = await nextStream(reader, deadline);
      if (!s) return; // the client never opened them all, or went away
      const type = s.headers[STREAM_TYPE_HEADER] ?? "";
      if (!["error", "stdin", "stdout", "stderr", "resize"].includes(type) || got.has(type)) {
        s.reset();
        continue;
      }
      got.set(type, s);
      await s.reply();
    }
  } finally {
    reader.releaseLock();
  }
  const gone = new AbortController();
  const onAbort = () => gone.abort();
  opts.signal.addEventListener("abort", onAbort, { once: true });
  void up.session.closed.then(onAbort);
  let resizes: ReadableStream<TerminalSize> | null = null;
  const resizeStream = got.get("resize");
  if (resizeStream) {
    const out = pushStream<TerminalSize>();
    resizes = out.readable;
    void (async () => {
      const decoder = new ResizeDecoder();
      try {
        for await (const chunk of resizeStream.readable) for (const size of decoder.push(chunk)) await out.push(size);
      } catch {
        // reset or malformed: no more resizes
      } finally {
        out.close();
      }
    })();
  }
  const io: SessionIo = {
    stdin: flags.stdin ? got.get("stdin")!.readable : null,
    stdout: flags.stdout ? streamSink(got.get("stdout")!) : null,
    stderr: stderr ? streamSink(got.get("stderr")!) : null,
    resizes,
    signal: gone.signal,
  };
  let outcome: SessionOutcome;
  try {
    outcome = await opts.run(io);
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
  }
  const errorStream = got.get("error")!;
  const status = outcomeStatus(outcome);
  if (status) {
    const bytes = encodeStatus(rules, status);
    if (bytes) await errorStream.write(bytes).catch(() => {});
    else if (rules.legacyV1) errorStream.reset();
  }
  for (const s of got.values()) await s.closeWrite().catch(() => {});
  await up.close();
}

/** Options of {@link serveSpdyPortForward}. */
export interface PortForwardOptions {
  /** How long the second stream of a pair may lag the first. */
  timeoutMs: number;
  signal: AbortSignal;
  log: Logger;
}

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: ReturnType<typeof setTimeout>;
}

/** Serves port-forward streams until the client closes the connection. */
export async function serveSpdyPortForward(
  up: SpdyUpgrade,
  dialer: PodDialer,
  opts: PortForwardOptions,
): Promise<void> {
  const pairs = new Map<string, Pair>();
  const relays = new Set<Promise<void>>();
  const conns = new Set<PodConnection>();
  const enc = new TextEncoder();
  const onAbort = () => void up.close();
  opts.signal.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const s of up.streams) {
      const type = s.headers[STREAM_TYPE_HEADER] ?? "";
      let port: number;
      try {
        if (type !== "data" && type !== "error") throw new Error(`invalid stream type ${JSON.stringify(type)}`);
        port = parsePort(s.headers[PORT_HEADER] ?? "");
      } catch (err) {
        opts.log.debug("refused a port-forward stream", { error: errorMessage(err) });
        s.reset();
        continue;
      }
      // Clients older than request IDs open error then data with consecutive odd IDs: pair them by that.
      const requestId = s.headers[REQUEST_ID_HEADER] ?? String(type === "error" ? s.id : s.id - 2);
      let pair = pairs.get(requestId);
      if (!pair) {
        const p: Pair = {
          timer: setTimeout(() => {
            pairs.delete(requestId);
            void p.error?.write(enc.encode(`timed out waiting for the streams of request ${requestId}`))
              .catch(() => {}).finally(() => p.error?.closeWrite().catch(() => {}));
            p.data?.reset();
          }, opts.timeoutMs),
        };
        pair = p;
        pairs.set(requestId, p);
      }
      if (pair[type]) {
        s.reset();
        continue;
      }
      pair[type] = s;
      await s.reply().catch(() => {});
      if (pair.data && pair.error) {
        clearTimeout(pair.timer);
        pairs.delete(requestId);
        const { data, error } = pair;
        const relay = forward(data, error, port, dialer, conns).finally(() => relays.delete(relay));
        relays.add(relay);
      }
    }
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
    for (const p of pairs.values()) clearTimeout(p.timer);
    for (const c of conns) c.close();
    await Promise.allSettled([...relays]);
    await up.close();
  }
}

async function forward(
  data: SpdyStream,
  error: SpdyStream,
  port: number,
  dialer: PodDialer,
  conns: Set<PodConnection>,
): Promise<void> {
  let conn: PodConnection;
  try {
    conn = await dialer.connect(port);
  } catch (err) {
    await error.write(new TextEncoder().encode(errorMessage(err))).catch(() => {});
    await error.closeWrite().catch(() => {});
    await data.closeWrite().catch(() => {});
    return;
  }
  conns.add(conn);
  try {
    const toPod = pump(data.readable, { write: (d) => conn.write(d), close: () => conn.closeWrite() }, {
      closeSink: true,
    });
    await pump(conn.readable, streamSink(data), { closeSink: true });
    await toPod;
  } finally {
    conns.delete(conn);
    conn.close();
    await error.closeWrite().catch(() => {});
  }
}
