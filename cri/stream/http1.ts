/**
 * The HTTP/1.1 edge of the streaming server: reading one request head off a raw connection (with caps on its size
 * and header count and a deadline against slow clients), writing plain answers and a 101 Switching Protocols head,
 * and handing the rest of the connection to the upgraded protocol (SPDY/3.1 or WebSocket). The client side reads
 * a response head the same way, for davit's own WebSocket client.
 *
 * Syntax from RFC 9112 (HTTP/1.1 message syntax) and RFC 9110 (field names are tokens, status codes).
 * @module
 */

/** A byte connection such as a `Deno.Conn` or `Deno.TlsConn`; `close` releases it at once when present. */
export interface Duplex {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  close?(): void;
}

/** A request that failed at the HTTP edge; `status` is the answer to write before closing (best effort). */
export class HttpError extends Error {
  readonly status: number;
  /** Extra response headers, e.g. `Sec-WebSocket-Version` with a 426. */
  readonly headers: Headers;
  constructor(status: number, message: string, options?: ErrorOptions & { headers?: HeadersInit }) {
    super(message, options);
    this.name = "HttpError";
    this.status = status;
    this.headers = new Headers(options?.headers);
  }
}

/** Limits on a head. */
export interface ReadHeadOptions {
  /** Largest head in bytes, request line and blank line included (default 16 KiB); more is a 431. */
  maxHeadBytes?: number;
  /** Most header fields (default 100); more is a 431. */
  maxHeaders?: number;
  /** The whole head must arrive within this many ms (default 10 000); later is a 408. */
  timeoutMs?: number;
  /** Aborting gives up reading with a 503. */
  signal?: AbortSignal;
}

/** A parsed request head. */
export interface RequestHead {
  method: string;
  /** The request-target as sent. */
  target: string;
  /** Path and query of the target, resolved against `http://localhost`. */
  url: URL;
  version: "HTTP/1.1" | "HTTP/1.0";
  headers: Headers;
  /** Bytes read past the head: the first bytes of the upgraded protocol. */
  rest: Uint8Array;
}

/** A parsed response head. */
export interface ResponseHead {
  status: number;
  reason: string;
  headers: Headers;
  rest: Uint8Array;
}

/** A request read off a connection, with the connection as it continues after the head. */
export interface IncomingRequest extends RequestHead {
  /** `readable` yields `rest`, then whatever else the peer sends; `writable` and `close` are the connection's. */
  conn: Duplex;
}

const DEFAULT_MAX_HEAD_BYTES = 16 * 1024;
const DEFAULT_MAX_HEADERS = 100;
const DEFAULT_TIMEOUT_MS = 10_000;

const CR = 0x0d;
const LF = 0x0a;

// RFC 9110 Section 5.6.2: token = 1*tchar.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 Section 5.5: field-value bytes are VCHAR, SP, HTAB and obs-text; no other control characters.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// RFC 9112 Section 3.2: request-target has no whitespace or control characters.
const TARGET = /^[\x21-\x7e]+$/;
const HTTP_VERSION = /^HTTP\/(\d)\.(\d)$/;

/** Reason phrases for the statuses davit writes. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  101: "Switching Protocols",
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/**
 * Reads one request head from `reader`. Throws {@link HttpError}: 400 for a malformed head or a connection closed
 * before it ended, 431 past the size or header caps, 505 for a version other than 1.0 and 1.1, 408 past the
 * deadline, 503 when `signal` aborts. On a deadline the reader may still have a read pending: close the connection.
 */
export async function readRequestHead(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  options: ReadHeadOptions = {},
): Promise<RequestHead> {
  const { head, rest } = await readHead(reader, options);
  const lines = head.split(/\r?\n/);
  const requestLine = lines[0] ?? "";
  const parts = requestLine.split(" ");
  const [method, target, version] = parts;
  if (parts.length !== 3 || method === undefined || target === undefined || version === undefined) {
    throw new HttpError(400, "Malformed request line");
  }
  if (!TOKEN.test(method)) throw new HttpError(400, "Malformed request method");
  checkVersion(version, 400);
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    throw new HttpError(505, `HTTP version ${JSON.stringify(version)} is not supported`);
  }
  if (!TARGET.test(target)) throw new HttpError(400, "Malformed request target");
  const headers = parseFields(lines.slice(1), options.maxHeaders ?? DEFAULT_MAX_HEADERS);
  // RFC 9112 Section 3.2: an HTTP/1.1 request without exactly one Host field is a 400.
  const host = headers.get("host");
  if (version === "HTTP/1.1" && (host === null || host.includes(","))) {
    throw new HttpError(400, "An HTTP/1.1 request needs exactly one Host header");
  }
  // RFC 9112 Section 6.1: both framing headers at once is a smuggling attempt.
  if (headers.has("transfer-encoding") && headers.has("content-length")) {
    throw new HttpError(400, "Transfer-Encoding and Content-Length together");
  }
  return { method, target, url: targetUrl(target), version, headers, rest };
}

/** Reads one response head from `reader` (the client side). Throws like {@link readRequestHead}. */
export async function readResponseHead(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  options: ReadHeadOptions = {},
): Promise<ResponseHead> {
  const { head, rest } = await readHead(reader, options);
  const lines = head.split(/\r?\n/);
  // RFC 9112 Section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
  const m = /^(\S+) (\d{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/.exec(lines[0] ?? "");
  if (!m || m[1] === undefined || m[2] === undefined) throw new HttpError(400, "Malformed status line");
  checkVersion(m[1], 400);
  const headers = parseFields(lines.slice(1), options.maxHeaders ?? DEFAULT_MAX_HEADERS);
  return { status: Number(m[2]), reason: m[3] ?? "", headers, rest };
}

/**
 * Reads a request head off `conn` and returns it with the connection as it continues: the SPDY or WebSocket layer
 * takes `request.conn`. On failure the reader is released, so the caller can still answer and close.
 */
export async function readRequest(conn: Duplex, options: ReadHeadOptions = {}): Promise<IncomingRequest> {
  const reader = conn.readable.getReader();
  let head: RequestHead;
  try {
    head = await readRequestHead(reader, options);
  } catch (err) {
    reader.releaseLock();
    throw err;
  }
  const continued: Duplex = { readable: continueReadable(head.rest, reader), writable: conn.writable };
  if (conn.close) continued.close = conn.close.bind(conn);
  return { ...head, conn: continued };
}

/**
 * A stream that yields `first` (when not empty), then what `reader` yields. It reads only when asked (no read
 * ahead), and cancelling it cancels the reader.
 */
export function continueReadable(
  first: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  let pending: Uint8Array | undefined = first.length > 0 ? first : undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pending) {
        controller.enqueue(pending);
        pending = undefined;
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Writer or stream: a stream gets a writer for the call and is released after. */
export type ByteWriter = WritableStreamDefaultWriter<Uint8Array> | WritableStream<Uint8Array>;

/**
 * Writes a plain response with `Content-Length` and `Connection: close`; a string body is sent as UTF-8 text
 * (`text/plain` unless `headers` says otherwise). Does not close the connection.
 */
export async function writeResponse(
  writer: ByteWriter,
  status: number,
  opts: { headers?: HeadersInit; body?: Uint8Array | string } = {},
): Promise<void> {
  const { headers = {}, body = new Uint8Array() } = opts;
  const h = new Headers(headers);
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  if (typeof body === "string" && !h.has("content-type")) h.set("content-type", "text/plain; charset=utf-8");
  h.set("content-length", String(bytes.length));
  h.set("connection", "close");
  const head = encodeResponseHead(status, h);
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  await writeAll(writer, out);
}

/** Writes a `101 Switching Protocols` head with `Connection: Upgrade`; `headers` must name the `Upgrade`. */
export async function writeSwitchingProtocols(writer: ByteWriter, headers: HeadersInit): Promise<void> {
  const h = new Headers(headers);
  if (!h.has("upgrade")) throw new TypeError("A 101 response needs an Upgrade header");
  h.set("connection", "Upgrade");
  await writeAll(writer, encodeResponseHead(101, h));
}

/** Encodes a status line and header fields (RFC 9112 Section 4), ending with the blank line. */
export function encodeResponseHead(status: number, headers: Headers): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`Invalid status ${status}`);
  let text = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Unknown"}\r\n`;
  // Headers already refuses CR, LF and NUL in values and non-token names, so nothing can split the head.
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
  return latin1Bytes(text + "\r\n");
}

async function writeAll(target: ByteWriter, bytes: Uint8Array): Promise<void> {
  if (target instanceof WritableStream) {
    const writer = target.getWriter();
    try {
      await writer.write(bytes);
    } finally {
      writer.releaseLock();
    }
  } else {
    await target.write(bytes);
  }
}

function checkVersion(version: string, status: number): void {
  if (!HTTP_VERSION.test(version)) throw new HttpError(status, `Malformed HTTP version ${JSON.stringify(version)}`);
}

// RFC 9112 Section 3.2.1 origin-form, or 3.2.2 absolute-form (of which only the path and query count here).
function targetUrl(target: string): URL {
  let pathAndQuery = target;
  if (!target.startsWith("/")) {
    if (!/^https?:\/\//i.test(target)) throw new HttpError(400, "Request target must be a path or an http URL");
    try {
      const abs = new URL(target);
      pathAndQuery = abs.pathname + abs.search;
    } catch (err) {
      throw new HttpError(400, "Malformed request target", { cause: err });
    }
  }
  try {
    return new URL(pathAndQuery, "http://localhost");
  } catch (err) {
    throw new HttpError(400, "Malformed request target", { cause: err });
  }
}

function parseFields(lines: string[], maxHeaders: number): Headers {
  const headers = new Headers();
  let count = 0;
  for (const line of lines) {
    // RFC 9112 Section 5.2: obsolete line folding may be rejected with a 400.
    if (line.startsWith(" ") || line.startsWith("\t")) throw new HttpError(400, "Folded header lines");
    if (++count > maxHeaders) throw new HttpError(431, `More than ${maxHeaders} header fields`);
    const colon = line.indexOf(":");
    // RFC 9112 Section 5.1: no whitespace between the field name and the colon.
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw new HttpError(400, "Malformed header field name");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (!FIELD_VALUE.test(value)) throw new HttpError(400, `Malformed value of header ${JSON.stringify(name)}`);
    headers.append(name, value);
  }
  return headers;
}

// Reads until the blank line ending a head; returns the head as latin-1 text without that blank line and the
// bytes after it. Leading empty lines are skipped (RFC 9112 Section 2.2); bare LF ends lines too.
async function readHead(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  options: ReadHeadOptions,
): Promise<{ head: string; rest: Uint8Array }> {
  const maxBytes = options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let buf: Uint8Array = new Uint8Array(0);
  let scanned = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HttpError(408, `No complete request head within ${timeoutMs} ms`)), timeoutMs);
    onAbort = () => reject(new HttpError(503, "The server is stopping"));
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
  stop.catch(() => {});
  try {
    while (true) {
      const read = reader.read();
      // A read left pending by a deadline settles when the connection closes; nobody awaits it then.
      read.catch(() => {});
      const { done, value } = await Promise.race([read, stop]);
      if (done) throw new HttpError(400, "Connection closed before the request head was complete");
      buf = append(buf, value);
      // Skip empty lines before the start line.
      let start = 0;
      while (start < buf.length && (buf[start] === CR || buf[start] === LF)) start++;
      if (start > 0) {
        buf = buf.slice(start);
        scanned = 0;
      }
      const end = findHeadEnd(buf, scanned);
      if (end < 0) {
        if (buf.length > maxBytes) throw new HttpError(431, `Request head larger than ${maxBytes} bytes`);
        scanned = Math.max(0, buf.length - 3);
        continue;
      }
      if (end > maxBytes) throw new HttpError(431, `Request head larger than ${maxBytes} bytes`);
      return { head: latin1Text(buf.subarray(0, end)).replace(/\r?\n\r?\n$/, ""), rest: buf.slice(end) };
    }
  } finally {
    clearTimeout(timer);
    if (onAbort) options.signal?.removeEventListener("abort", onAbort);
  }
}

// Index just past the first empty line (LF, optional CR, LF), or -1.
function findHeadEnd(buf: Uint8Array, from: number): number {
  for (let i = from; i < buf.length; i++) {
    if (buf[i] !== LF) continue;
    let j = i + 1;
    if (buf[j] === CR) j++;
    if (buf[j] === LF) return j + 1;
  }
  return -1;
}

function append(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// Field values may hold obs-text bytes; latin-1 keeps each byte as one code unit, which Headers accepts.
function latin1Text(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}
