/**
 * The kubelet's CRI container log format, as pure functions: splitting a stream's bytes into records, rendering a
 * record, and parsing one back (for tests and tools).
 *
 * One record per line: `<timestamp> <stream> <tag> <content>\n`, where the timestamp is RFC 3339 with nanoseconds
 * in UTC (`2026-11-22T13:33:39.123456789Z`), the stream is `stdout` or `stderr`, and the tag is `F` for content
 * that ends a line of the container's output or `P` for a part to be joined with the next record of the stream.
 * The kubelet's reader (pkg/kubelet/kuberuntime/logs, parseCRILog) keeps the record's newline for `F` and drops
 * it for `P`, so `P` parts followed by an `F` reproduce the original line.
 *
 * Choices (documented in docs/monitor-protocol.md):
 * - A line longer than {@link MAX_LOG_LINE} bytes (16 KiB, containerd's default max_container_log_line_size) is
 *   cut into `P` records of exactly that size, the remainder going out as the final `F`. Cuts are by bytes: a
 *   UTF-8 sequence may straddle two parts, which the reader rejoins.
 * - An unterminated tail is held (up to the maximum) until its newline arrives, so the records do not depend on
 *   how reads chunked the output. At end of stream a held tail is flushed as `F`: a reader that joins `P`
 *   records (kubelet, fluent-bit) would otherwise wait forever for a line that cannot come. The cost is that a
 *   final line without a newline reads back with one.
 * @module
 */

/** The container stream a record came from. */
export type LogStream = "stdout" | "stderr";

/** `F`: ends a line; `P`: a part of a longer line, continued by the stream's next record. */
export type LogTag = "F" | "P";

/** One record's tag and content (without the record's newline). */
export interface LogPart {
  tag: LogTag;
  content: Uint8Array;
}

/** The default maximum content bytes per record. */
export const MAX_LOG_LINE = 16 * 1024;

/**
 * Bytes a record adds around its content: 30 for the timestamp, separators, a 6-byte stream name, the tag and the
 * newline (41), rounded up.
 */
export const RECORD_OVERHEAD = 64;

const NL = 0x0a;
const EMPTY = new Uint8Array(0);

/** What {@link frameLines} returns: the records to write and the tail to hold until more bytes come. */
export interface Framed {
  parts: LogPart[];
  rest: Uint8Array;
}

/**
 * Frames `chunk`, read after the held tail `pending`, into records. With `eof`, a remaining tail is flushed as
 * `F`. A line of exactly `maxLine` bytes is one `F`; a `P` is only cut when more than `maxLine` bytes are known to
 * belong to the line, so the result is the same however the input was split into chunks. `rest` is never longer
 * than `maxLine`.
 */
export function frameLines(pending: Uint8Array, chunk: Uint8Array, maxLine: number, eof = false): Framed {
  if (!Number.isInteger(maxLine) || maxLine < 1) throw new RangeError(`maxLine must be a positive integer: ${maxLine}`);
  let buf = chunk;
  if (pending.byteLength > 0) {
    buf = new Uint8Array(pending.byteLength + chunk.byteLength);
    buf.set(pending);
    buf.set(chunk, pending.byteLength);
  }
  const parts: LogPart[] = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(NL, start);
    if (nl < 0) break;
    while (nl - start > maxLine) {
      parts.push({ tag: "P", content: buf.subarray(start, start + maxLine) });
      start += maxLine;
    }
    parts.push({ tag: "F", content: buf.subarray(start, nl) });
    start = nl + 1;
  }
  while (buf.byteLength - start > maxLine) {
    parts.push({ tag: "P", content: buf.subarray(start, start + maxLine) });
    start += maxLine;
  }
  if (eof) {
    if (start < buf.byteLength) parts.push({ tag: "F", content: buf.subarray(start) });
    return { parts, rest: EMPTY };
  }
  // Copy the tail: it must not pin (or alias) the caller's read buffer.
  return { parts, rest: start < buf.byteLength ? buf.slice(start) : EMPTY };
}

/** Holds one stream's unterminated tail between reads and frames each chunk with {@link frameLines}. */
export class LineFramer {
  readonly maxLine: number;
  #pending: Uint8Array = EMPTY;
  constructor(maxLine: number = MAX_LOG_LINE) {
    this.maxLine = maxLine;
  }
  /** The records completed by `chunk`. */
  push(chunk: Uint8Array): LogPart[] {
    const { parts, rest } = frameLines(this.#pending, chunk, this.maxLine);
    this.#pending = rest;
    return parts;
  }
  /** End of stream: the held tail, as a final `F` record (or nothing). */
  end(): LogPart[] {
    const { parts } = frameLines(this.#pending, EMPTY, this.maxLine, true);
    this.#pending = EMPTY;
    return parts;
  }
  /** Bytes held, waiting for their newline. */
  get pendingBytes(): number {
    return this.#pending.byteLength;
  }
}

/** Nanoseconds since the Unix epoch, from the high-resolution clock (monotonic within the process). */
export function nowNs(): bigint {
  const origin = performance.timeOrigin;
  const originUs = Math.floor(origin * 1000);
  const fracNs = Math.round((origin * 1000 - originUs) * 1000 + performance.now() * 1e6);
  return BigInt(originUs) * 1000n + BigInt(fracNs);
}

/** RFC 3339 in UTC with exactly nine fractional digits, e.g. `2026-11-22T13:33:39.123456789Z`. */
export function formatTimestamp(epochNs: bigint): string {
  const sec = epochNs / 1_000_000_000n;
  const nsec = epochNs % 1_000_000_000n;
  const iso = new Date(Number(sec) * 1000).toISOString(); // 2026-11-22T13:33:39.000Z
  return `${iso.slice(0, 19)}.${nsec.toString().padStart(9, "0")}Z`;
}

const encoder = new TextEncoder();

/** Renders records that share a timestamp and stream into the bytes of consecutive log lines. */
export function encodeRecords(timestamp: string, stream: LogStream, parts: readonly LogPart[]): Uint8Array {
  const heads = parts.map((p) => encoder.encode(`${timestamp} ${stream} ${p.tag} `));
  let size = 0;
  for (let i = 0; i < parts.length; i++) size += heads[i]!.byteLength + parts[i]!.content.byteLength + 1;
  const out = new Uint8Array(size);
  let off = 0;
  for (let i = 0; i < parts.length; i++) {
    const head = heads[i]!;
    const content = parts[i]!.content;
    out.set(head, off);
    off += head.byteLength;
    out.set(content, off);
    off += content.byteLength;
    out[off++] = NL;
  }
  return out;
}

/** A record read back from a CRI log file. */
export interface CriLogLine {
  timestamp: string;
  stream: LogStream;
  tag: LogTag;
  content: string;
}

const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Parses one line of a CRI log file (without its newline), the way the kubelet does: timestamp, stream, tag
 * (only its first `:`-separated field counts), then the content verbatim. Throws a TypeError naming the problem.
 */
export function parseCriLogLine(line: string): CriLogLine {
  const s1 = line.indexOf(" ");
  const s2 = s1 < 0 ? -1 : line.indexOf(" ", s1 + 1);
  const s3 = s2 < 0 ? -1 : line.indexOf(" ", s2 + 1);
  if (s3 < 0) throw new TypeError(`CRI log line has fewer than four fields: ${JSON.stringify(line.slice(0, 80))}`);
  const timestamp = line.slice(0, s1);
  if (!TIMESTAMP_RE.test(timestamp)) {
    throw new TypeError(`CRI log line has a bad timestamp: ${JSON.stringify(timestamp)}`);
  }
  const stream = line.slice(s1 + 1, s2);
  if (stream !== "stdout" && stream !== "stderr") {
    throw new TypeError(`CRI log line has a bad stream: ${JSON.stringify(stream)}`);
  }
  const tag = line.slice(s2 + 1, s3).split(":")[0];
  if (tag !== "F" && tag !== "P") throw new TypeError(`CRI log line has a bad tag: ${JSON.stringify(tag)}`);
  return { timestamp, stream, tag, content: line.slice(s3 + 1) };
}

/**
 * Parses a whole CRI log file and joins `P` parts with their stream's next record, giving each stream's lines as
 * the container wrote them (for tests: what `kubectl logs` would show).
 */
export function joinCriLog(text: string): { stream: LogStream; line: string }[] {
  const out: { stream: LogStream; line: string }[] = [];
  const partial: Record<LogStream, string> = { stdout: "", stderr: "" };
  for (const raw of text.split("\n")) {
    if (raw === "") continue;
    const rec = parseCriLogLine(raw);
    if (rec.tag === "P") {
      partial[rec.stream] += rec.content;
      continue;
    }
    out.push({ stream: rec.stream, line: partial[rec.stream] + rec.content });
    partial[rec.stream] = "";
  }
  return out;
}
