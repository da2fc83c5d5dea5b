/**
 * The streaming server: the HTTP endpoint behind the URLs that Exec, Attach and PortForward answer. Each URL holds a
 * single-use token bound to the one CRI request that made it; the client upgrades the connection to SPDY/3.1 or
 * WebSocket, and the session runs through the {@link StreamBackend}. Plain TCP or TLS; sessions idle longer than
 * the idle timeout are closed; stopping the server ends every session.
 * @module
 */
import { errorMessage } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { type Duplex, HttpError, type IncomingRequest, readRequest, writeResponse } from "./http1.ts";
import {
  negotiate,
  parsePort,
  SPDY_PORTFORWARD_PROTOCOL,
  SPDY_REMOTECOMMAND_PROTOCOLS,
  WS_PORTFORWARD_PROTOCOLS,
  WS_REMOTECOMMAND_PROTOCOLS,
} from "./remotecommand.ts";
import type { AttachTarget, ExecTarget, SessionIo, SessionOutcome, StreamBackend } from "./session.ts";
import { serveSpdyPortForward, serveSpdyRemoteCommand, upgradeSpdy } from "./spdy_serve.ts";
import { TokenStore } from "./tokens.ts";
import { upgradeWebSocket, type WebSocketConn } from "./websocket.ts";
import { openWsSession } from "./ws_remotecommand.ts";
import { serveWsPortForward } from "./ws_portforward.ts";

/** A request a token stands for. */
export type StreamRequest =
  | { kind: "exec"; target: ExecTarget }
  | { kind: "attach"; target: AttachTarget }
  | { kind: "portforward"; podId: string; ports: number[] };

/** Options of {@link StreamServer.start}. */
export interface StreamServerOptions {
  address: string;
  /** 0 for a free port. */
  port: number;
  /** PEM certificate chain and key: serve TLS. */
  tls?: { cert: string; key: string };
  backend: StreamBackend;
  log: Logger;
  /** How long a URL stays valid (default 1 minute). */
  tokenTtlMs?: number;
  /** Sessions without traffic for this long are closed; 0 never (default 4 hours). */
  idleTimeoutMs?: number;
  /** How long a SPDY client may take to open a session's streams (default 30 s). */
  streamCreationTimeoutMs?: number;
  /** Most sessions at once; more are answered 503 (default 256). */
  maxSessions?: number;
}

/** Something that traffic keeps alive. */
interface Live {
  lastActivity(): number;
  abort: AbortController;
}

/** The streaming server. */
export class StreamServer {
  readonly #o: StreamServerOptions;
  readonly #listener: Deno.Listener;
  readonly #tokens: TokenStore<StreamRequest>;
  readonly #live = new Set<Live>();
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #baseUrl: string;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #accepting: Promise<void>;
  #closed = false;

  private constructor(o: StreamServerOptions, listener: Deno.Listener) {
    this.#o = o;
    this.#listener = listener;
    this.#tokens = new TokenStore<StreamRequest>({ ttlMs: o.tokenTtlMs ?? 60_000 });
    const addr = listener.addr as Deno.NetAddr;
    const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
    this.#baseUrl = `${o.tls ? "https" : "http"}://${host}:${addr.port}`;
    this.#accepting = this.#accept();
    const idle = o.idleTimeoutMs ?? 4 * 3600_000;
    if (idle > 0) this.#idleTimer = setInterval(() => this.#reapIdle(idle), Math.min(idle, 5_000));
  }

  /** Listens and starts serving. */
  static start(o: StreamServerOptions): Promise<StreamServer> {
    const listener = o.tls
      ? Deno.listenTls({ hostname: o.address, port: o.port, cert: o.tls.cert, key: o.tls.key })
      : Deno.listen({ hostname: o.address, port: o.port });
    return Promise.resolve(new StreamServer(o, listener));
  }

  /** `http(s)://address:port`. */
  get baseUrl(): string {
    return this.#baseUrl;
  }

  /** The URL for an exec session. */
  exec(target: ExecTarget): string {
    return `${this.#baseUrl}/exec/${this.#tokens.put({ kind: "exec", target })}`;
  }

  /** The URL for an attach session. */
  attach(target: AttachTarget): string {
    return `${this.#baseUrl}/attach/${this.#tokens.put({ kind: "attach", target })}`;
  }

  /** The URL for a port-forward session. */
  portForward(req: { podId: string; ports: number[] }): string {
    return `${this.#baseUrl}/portforward/${this.#tokens.put({ kind: "portforward", ...req })}`;
  }

  /** Stops listening, ends every session and waits for them (bounded). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#idleTimer);
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    await this.#accepting;
    for (const l of this.#live) l.abort.abort();
    for (const c of this.#conns) closeQuietly(c);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.allSettled([...this.#tasks]), new Promise((r) => timer = setTimeout(r, 5_000))]);
    clearTimeout(timer);
    this.#tokens.clear();
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // closed
      }
      this.#track(this.#handle(conn));
    }
  }

  #track(p: Promise<void>): void {
    const t = p.catch((err) => this.#o.log.warn("streaming connection failed", { error: errorMessage(err) }))
      .finally(() => this.#tasks.delete(t));
    this.#tasks.add(t);
  }

  #reapIdle(idleMs: number): void {
    const now = Date.now();
    for (const l of this.#live) {
      if (now - l.lastActivity() > idleMs) {
        this.#o.log.info("closing an idle streaming session", { idle_ms: now - l.lastActivity() });
        l.abort.abort();
      }
    }
  }

  async #handle(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    try {
      let req: IncomingRequest;
      try {
        req = await readRequest(conn as Duplex);
      } catch (err) {
        if (err instanceof HttpError) await answer(conn, err);
        return;
      }
      try {
        await this.#route(req);
      } catch (err) {
        if (err instanceof HttpError) await answer(conn, err);
        else throw err;
      }
    } finally {
      this.#conns.delete(conn);
      closeQuietly(conn);
    }
  }

  async #route(req: IncomingRequest): Promise<void> {
    const m = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]{1,128})$/.exec(req.url.pathname);
    if (!m) throw new HttpError(404, "not found");
    if (req.method !== "GET" && req.method !== "POST") {
      throw new HttpError(405, `method ${req.method} is not allowed`, { headers: { allow: "GET, POST" } });
    }
    // Taken whatever happens next: a token is good for one attempt.
    const cached = this.#tokens.take(m[2]!);
    if (!cached || cached.kind !== m[1]) throw new HttpError(404, "unknown or expired streaming token");
    if (this.#live.size >= (this.#o.maxSessions ?? 256)) throw new HttpError(503, "too many streaming sessions");
    const upgrade = (req.headers.get("upgrade") ?? "").toLowerCase();
    const abort = new AbortController();
    let activity: () => number = () => Date.now();
    const live: Live = { lastActivity: () => activity(), abort };
    this.#live.add(live);
    try {
      if (upgrade === "websocket") {
        const supported = cached.kind === "portforward" ? WS_PORTFORWARD_PROTOCOLS : WS_REMOTECOMMAND_PROTOCOLS;
        const { ws, protocol } = await upgradeWebSocket(req, { protocols: supported, requireProtocol: false });
        activity = () => ws.lastActivity;
        abort.signal.addEventListener("abort", () => void ws.close(1001, "session closed").catch(() => {}), {
          once: true,
        });
        await this.#serveWs(ws, protocol, cached, req.url, abort.signal);
      } else if (upgrade === "spdy/3.1") {
        const offered = req.headers.get("x-stream-protocol-version");
        const supported = cached.kind === "portforward" ? [SPDY_PORTFORWARD_PROTOCOL] : SPDY_REMOTECOMMAND_PROTOCOLS;
        const chosen = negotiate(offered ? [offered] : [], supported, cached.kind !== "portforward");
        if (!chosen.ok) {
          throw new HttpError(403, `unable to upgrade: ${chosen.message}`, {
            headers: supported.map((p) => ["x-accepted-stream-protocol-versions", p] as [string, string]),
          });
        }
        const session = await upgradeSpdy(req, chosen.protocol);
        activity = () => session.lastActivity;
        abort.signal.addEventListener("abort", () => void session.close(), { once: true });
        const timeoutMs = this.#o.streamCreationTimeoutMs ?? 30_000;
        if (cached.kind === "portforward") {
          const dialer = await this.#o.backend.portForward(cached.podId, abort.signal);
          try {
            await serveSpdyPortForward(session, dialer, { timeoutMs, signal: abort.signal, log: this.#o.log });
          } finally {
            await dialer.close();
          }
        } else {
          await serveSpdyRemoteCommand(session, chosen.protocol, cached.target, {
            timeoutMs,
            signal: abort.signal,
            run: (io) => this.#run(cached, io),
          });
        }
      } else {
        throw new HttpError(400, "expected a connection upgrade to SPDY/3.1 or websocket");
      }
    } finally {
      abort.abort();
      this.#live.delete(live);
    }
  }

  async #serveWs(
    ws: WebSocketConn,
    protocol: string,
    req: StreamRequest,
    url: URL,
    signal: AbortSignal,
  ): Promise<void> {
    if (req.kind === "portforward") {
      // The CRI request's ports; a client may name them in the query instead (`?port=80&port=443`).
      let ports = req.ports;
      if (ports.length === 0) {
        try {
          ports = url.searchParams.getAll("port").flatMap((v) => v.split(",")).map(parsePort);
        } catch (err) {
          await ws.close(1008, errorMessage(err).slice(0, 120));
          return;
        }
      }
      const dialer = await this.#o.backend.portForward(req.podId, signal);
      try {
        await serveWsPortForward(ws, protocol, ports, dialer, signal);
      } finally {
        await dialer.close();
      }
      return;
    }
    const session = await openWsSession(ws, protocol, req.target, signal);
    await session.finish(await this.#run(req, session.io));
  }

  async #run(req: StreamRequest, io: SessionIo): Promise<SessionOutcome> {
    try {
      if (req.kind === "exec") return await this.#o.backend.exec(req.target, io);
      if (req.kind === "attach") return await this.#o.backend.attach(req.target, io);
      return { kind: "error", message: "not an exec or attach request" };
    } catch (err) {
      return { kind: "error", message: errorMessage(err) };
    }
  }
}

async function answer(conn: Deno.Conn, err: HttpError): Promise<void> {
  await writeResponse(conn.writable, err.status, { headers: err.headers, body: err.message + "\n" }).catch(() => {});
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
