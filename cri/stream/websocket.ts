/**
 * WebSocket (RFC 6455) over a byte connection the streaming server already owns: the opening handshake on both
 * sides, and {@link WebSocketConn}, which turns frames into whole messages, answers pings, and runs the close
 * handshake. {@link connectWebSocket} is the client davit's tests use against its own server.
 *
 * Server flow: `readRequest` (http1.ts) -> {@link upgradeWebSocket} -> read `ws.messages`, `ws.send`, `ws.close`.
 * @module
 */
import { Unavailable } from "../../lib/errors.ts";
import {
  continueReadable,
  type Duplex,
  HttpError,
  type IncomingRequest,
  readResponseHead,
  writeSwitchingProtocols,
} from "./http1.ts";
import { WebSocketConn, type WebSocketConnOptions } from "./websocket_conn.ts";

export { WebSocketConn, type WebSocketConnOptions } from "./websocket_conn.ts";
export { CloseCode, type CloseInfo, type WebSocketMessage } from "./websocket_frame.ts";

/** The GUID a server appends to the client's key (RFC 6455 Section 1.3). */
export const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)) (RFC 6455 Section 4.2.2). */
export async function acceptKey(secWebSocketKey: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(secWebSocketKey + WEBSOCKET_GUID));
  return base64(new Uint8Array(digest));
}

/** The items of a comma-separated header value (RFC 9110 Section 5.6.1), trimmed, empty ones dropped. */
export function headerList(value: string | null): string[] {
  if (value === null) return [];
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** What a valid client handshake offers. */
export interface UpgradeOffer {
  /** `Sec-WebSocket-Key`. */
  key: string;
  /** `Sec-WebSocket-Protocol` items, in the client's order. */
  protocols: string[];
}

// Section 4.1: the key is 16 random bytes in base64, which is always 22 characters and "==".
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * Checks a request is a WebSocket opening handshake (RFC 6455 Section 4.2.1). Throws {@link HttpError}: 405 for
 * a method other than GET, 426 with `Sec-WebSocket-Version: 13` for another version (Section 4.4), 400 otherwise.
 */
export function validateUpgrade(request: { method: string; version?: string; headers: Headers }): UpgradeOffer {
  const h = request.headers;
  if (request.method !== "GET") {
    throw new HttpError(405, "A WebSocket handshake is a GET request", { headers: { allow: "GET" } });
  }
  if (request.version !== undefined && request.version !== "HTTP/1.1") {
    throw new HttpError(400, "A WebSocket handshake needs HTTP/1.1");
  }
  if (!headerList(h.get("upgrade")).some((v) => v.toLowerCase() === "websocket")) {
    throw new HttpError(400, 'A WebSocket handshake needs "Upgrade: websocket"');
  }
  if (!headerList(h.get("connection")).some((v) => v.toLowerCase() === "upgrade")) {
    throw new HttpError(400, 'A WebSocket handshake needs "Connection: Upgrade"');
  }
  const version = h.get("sec-websocket-version");
  if (version === null) throw new HttpError(400, "Sec-WebSocket-Version is missing");
  if (version.trim() !== "13") {
    throw new HttpError(426, `WebSocket version ${JSON.stringify(version)} is not supported, only 13`, {
      headers: { "sec-websocket-version": "13" },
    });
  }
  const key = (h.get("sec-websocket-key") ?? "").trim();
  if (!KEY.test(key)) throw new HttpError(400, "Sec-WebSocket-Key is missing or not 16 bytes in base64");
  return { key, protocols: headerList(h.get("sec-websocket-protocol")) };
}

/** The first of `supported` (server preference order) that the client `offered`; undefined when none. */
export function chooseProtocol(offered: readonly string[], supported: readonly string[]): string | undefined {
  return supported.find((p) => offered.includes(p));
}

/** Options for {@link upgradeWebSocket}. */
export interface UpgradeOptions extends Omit<WebSocketConnOptions, "role"> {
  /** Subprotocols the server speaks, most preferred first. */
  protocols: readonly string[];
  /**
   * Refuse (400) a client that offers none of `protocols` (default true when `protocols` is not empty); when
   * false, such a client gets a WebSocket without a subprotocol and `protocol` is "".
   */
  requireProtocol?: boolean;
}

/**
 * Answers a WebSocket handshake with 101 and returns the connection. Throws {@link HttpError} (nothing written)
 * when the handshake is invalid or no subprotocol fits: the caller answers with `writeResponse` and closes.
 */
export async function upgradeWebSocket(
  request: IncomingRequest,
  options: UpgradeOptions,
): Promise<{ ws: WebSocketConn; protocol: string }> {
  const offer = validateUpgrade(request);
  const protocol = chooseProtocol(offer.protocols, options.protocols);
  if (protocol === undefined && (options.requireProtocol ?? options.protocols.length > 0)) {
    const offered = offer.protocols.length > 0 ? offer.protocols.join(", ") : "none";
    throw new HttpError(400, `No supported WebSocket subprotocol offered (offered: ${offered})`);
  }
  const headers = new Headers({ upgrade: "websocket", "sec-websocket-accept": await acceptKey(offer.key) });
  if (protocol !== undefined) headers.set("sec-websocket-protocol", protocol);
  await writeSwitchingProtocols(request.conn.writable, headers);
  const { protocols: _, requireProtocol: __, ...connOptions } = options;
  return { ws: new WebSocketConn(request.conn, { ...connOptions, role: "server" }), protocol: protocol ?? "" };
}

/** A server answered the handshake with something other than 101. */
export class WebSocketRefused extends Error {
  readonly status: number;
  readonly headers: Headers;
  /** The response body as text (at most 64 KiB). */
  readonly body: string;
  constructor(status: number, headers: Headers, body: string) {
    super(`WebSocket handshake refused with status ${status}: ${body.slice(0, 200)}`);
    this.name = "WebSocketRefused";
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
}

/** Options for {@link connectWebSocket}. */
export interface ConnectWebSocketOptions extends Omit<WebSocketConnOptions, "role"> {
  /** Subprotocols to offer, in order. */
  protocols: string[];
  /** Extra request headers. */
  headers?: HeadersInit;
  /** TLS for a `ws:`/`http:` URL too, or trust settings for `wss:`/`https:`. */
  tls?: boolean | { caCerts?: string[] };
  /** Connecting and the handshake must finish within this many ms (default 10 000). */
  timeoutMs?: number;
}

/** A client connection after a 101. */
export interface ConnectedWebSocket {
  ws: WebSocketConn;
  /** The server's chosen subprotocol, "" when it chose none. */
  protocol: string;
  status: number;
  headers: Headers;
}

const MAX_REFUSAL_BODY = 64 * 1024;

/**
 * Opens a WebSocket to `url` (ws, wss, http or https) over `Deno.connect` or `Deno.connectTls`. Throws
 * {@link WebSocketRefused} for an answer other than 101, and an Error for a broken 101 (wrong accept key, a
 * subprotocol not offered).
 */
export async function connectWebSocket(url: string, options: ConnectWebSocketOptions): Promise<ConnectedWebSocket> {
  const u = new URL(url);
  const secure = u.protocol === "wss:" || u.protocol === "https:" ||
    (options.tls !== undefined && options.tls !== false);
  if (!["ws:", "wss:", "http:", "https:"].includes(u.protocol)) throw new TypeError(`Not a WebSocket URL: ${url}`);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const hostname = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(u.port || (secure ? 443 : 80));
  const caCerts = typeof options.tls === "object" ? options.tls.caCerts : undefined;
  const conn = await withDeadline<Deno.Conn>(
    secure ? Deno.connectTls({ hostname, port, ...(caCerts ? { caCerts } : {}) }) : Deno.connect({ hostname, port }),
    timeoutMs,
    (late) => late.close(),
  );
  try {
    const keyBytes = crypto.getRandomValues(new Uint8Array(16));
    const key = base64(keyBytes);
    const headers = new Headers(options.headers);
    headers.set("host", u.host);
    headers.set("upgrade", "websocket");
    headers.set("connection", "Upgrade");
    headers.set("sec-websocket-key", key);
    headers.set("sec-websocket-version", "13");
    if (options.protocols.length > 0) headers.set("sec-websocket-protocol", options.protocols.join(", "));
    let head = `GET ${u.pathname}${u.search} HTTP/1.1\r\n`;
    for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
    const writer = conn.writable.getWriter();
    await writer.write(new TextEncoder().encode(head + "\r\n"));
    writer.releaseLock();

    const reader = conn.readable.getReader();
    const res = await readResponseHead(reader, { timeoutMs });
    if (res.status !== 101) {
      const body = await readBody(res.rest, reader, Number(res.headers.get("content-length") ?? NaN));
      throw new WebSocketRefused(res.status, res.headers, body);
    }
    if (!headerList(res.headers.get("upgrade")).some((v) => v.toLowerCase() === "websocket")) {
      throw new Error('The 101 answer lacks "Upgrade: websocket"');
    }
    if (res.headers.get("sec-websocket-accept") !== await acceptKey(key)) {
      throw new Error("The 101 answer has a wrong Sec-WebSocket-Accept");
    }
    const protocol = res.headers.get("sec-websocket-protocol") ?? "";
    if (protocol !== "" && !options.protocols.includes(protocol)) {
      throw new Error(`The server chose subprotocol ${JSON.stringify(protocol)}, which was not offered`);
    }
    const duplex: Duplex = {
      readable: continueReadable(res.rest, reader),
      writable: conn.writable,
      close: () => conn.close(),
    };
    const { protocols: _, headers: __, tls: ___, timeoutMs: ____, ...connOptions } = options;
    return {
      ws: new WebSocketConn(duplex, { ...connOptions, role: "client" }),
      protocol,
      status: 101,
      headers: res.headers,
    };
  } catch (err) {
    try {
      conn.close();
    } catch {
      // Already closed by a failed read.
    }
    throw err;
  }
}

// Reads a refusal's body: Content-Length bytes, or up to the end of the connection; capped either way.
async function readBody(
  first: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  length: number,
): Promise<string> {
  const want = Math.min(Number.isFinite(length) ? length : MAX_REFUSAL_BODY, MAX_REFUSAL_BODY);
  const parts = [first];
  let got = first.length;
  while (got < want) {
    const { done, value } = await reader.read().catch(() => ({ done: true as const, value: undefined }));
    if (done) break;
    parts.push(value);
    got += value.length;
  }
  const all = new Uint8Array(got);
  let pos = 0;
  for (const p of parts) {
    all.set(p, pos);
    pos += p.length;
  }
  return new TextDecoder().decode(all.subarray(0, want));
}

// Waits for `p` at most `ms`; a result arriving later is handed to `late` (to close it).
async function withDeadline<T>(p: Promise<T>, ms: number, late: (value: T) => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Unavailable(`Connecting took longer than ${ms} ms`));
    }, ms);
  });
  p.then((v) => timedOut && late(v), () => {});
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}
