/**
 * Pure facts of the HTTP conversation with a registry that the client relies on: `Retry-After` (RFC 9110 section
 * 10.2.3), the `Content-Range` of a 206 (RFC 9110 section 14.4), the error body of the distribution spec ("Error
 * Codes"), which answers are worth retrying and how long to wait, Docker Hub's API host, and reading Deno's fetch
 * errors (a `TypeError("fetch failed")` whose cause says what went wrong).
 * @module
 */
import { Unavailable } from "../lib/errors.ts";

/**
 * An Unavailable that a retry may cure: a 429 or 5xx answer, a connection reset, a body cut short. Carries the
 * server's `Retry-After` when it sent one.
 */
export class TransientError extends Unavailable {
  /** How long the server asked to wait (ms), when it said. */
  readonly retryAfterMs: number | undefined;
  /** True when the server refused the byte range asked for: the next attempt should not send one. */
  readonly rangeRefused: boolean;
  /** The HTTP status that made it transient; undefined for transport failures. */
  readonly status: number | undefined;
  constructor(
    message: string,
    opts: ErrorOptions & { retryAfterMs?: number | undefined; rangeRefused?: boolean; status?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.retryAfterMs = opts.retryAfterMs;
    this.rangeRefused = opts.rangeRefused ?? false;
    this.status = opts.status;
  }
}

/** Statuses worth retrying: timeouts, rate limits and server-side failures. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status === 500 || status === 502 ||
    status === 503 || status === 504;
}

/** True for the redirect statuses fetch would follow. */
export function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

/** Parses `Retry-After` (delay-seconds or an HTTP-date) into milliseconds from `nowMs`; undefined when absent or bad. */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date always names a weekday and a GMT time; Date.parse alone accepts far too much.
  if (!/^[A-Za-z]{3},? .*GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** Waits between attempts: exponential from `baseMs`, capped at `maxMs`. */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** The longest `Retry-After` honoured (longer ones are cut to this). */
  maxRetryAfterMs: number;
}

/** The wait before retry number `attempt` (1-based): the server's Retry-After when given, else exponential. */
export function retryDelay(attempt: number, retryAfterMs: number | undefined, policy: BackoffPolicy): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
}

/** A parsed `Content-Range: bytes start-end/total`. */
export interface ContentRange {
  start: number;
  end: number;
  /** Undefined when the server wrote `*`. */
  total?: number;
}

/** Parses a 206's `Content-Range`; undefined when absent or not a byte range. */
export function parseContentRange(value: string | null | undefined): ContentRange | undefined {
  const m = /^\s*bytes\s+([0-9]+)-([0-9]+)\/([0-9]+|\*)\s*$/i.exec(value ?? "");
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  const out: ContentRange = { start, end };
  if (m[3] !== "*") {
    const total = Number(m[3]);
    if (!Number.isSafeInteger(total) || total <= end) return undefined;
    out.total = total;
  }
  return out;
}

/** True when `Accept-Ranges` says byte ranges are served. */
export function acceptsByteRanges(value: string | null | undefined): boolean {
  return (value ?? "").split(",").some((v) => v.trim().toLowerCase() === "bytes");
}

/**
 * A one-line summary of an error body: the distribution spec's `{"errors":[{"code","message"}]}` as
 * `CODE: message; ...`, otherwise the text with whitespace collapsed; at most `limit` characters.
 */
export function registryErrorSummary(body: string, limit = 300): string {
  let out: string | undefined;
  try {
    const doc = JSON.parse(body) as { errors?: unknown };
    if (Array.isArray(doc.errors)) {
      out = doc.errors
        .map((e: Record<string, unknown>) =>
          [typeof e.code === "string" ? e.code : "", typeof e.message === "string" ? e.message : ""]
            .filter((s) => s !== "").join(": ")
        )
        .filter((s) => s !== "").join("; ");
    }
  } catch {
    // not JSON: use the text
  }
  out ??= body.replace(/\s+/g, " ").trim();
  return out.length > limit ? out.slice(0, limit - 3) + "..." : out;
}

/** The host serving a registry's API: Docker Hub's name `docker.io` is served by `registry-1.docker.io`. */
export function apiHost(registry: string): string {
  return registry === "docker.io" ? "registry-1.docker.io" : registry;
}

/** What kind of transport failure a fetch error is. */
export type TransportFailure = "refused" | "tls" | "reset" | "dns" | "other";

/**
 * The telling part of a fetch error: Deno throws `TypeError("fetch failed")` whose cause reads `error sending
 * request for url (...): client error (Connect): tcp connect error: Connection refused (os error 111)`. The URL and
 * the layering prefixes are dropped (the caller names the request itself).
 */
export function transportErrorText(err: unknown): string {
  const messages: string[] = [];
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    messages.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  const telling = messages.filter((m) => m !== "" && m !== "fetch failed").pop() ?? messages[0] ?? "unknown error";
  return telling
    .replace(/^error sending request for url \([^)]*\):\s*/, "")
    .replace(/^client error \([A-Za-z]+\):\s*/, "");
}

/** Classifies a transport error text from {@link transportErrorText}. */
export function transportFailure(text: string): TransportFailure {
  if (/connection refused/i.test(text)) return "refused";
  if (/certificate|tls|handshake|corrupt message|InvalidContentType|alert/i.test(text)) return "tls";
  if (/dns error|failed to lookup|name or service not known|no address/i.test(text)) return "dns";
  if (/reset|broken pipe|closed|eof|error reading a body|connection error|unexpected end/i.test(text)) return "reset";
  return "other";
}
