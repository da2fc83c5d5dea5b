/**
 * The binary framing of an attach connection (docs/monitor-protocol.md, "Attach"): once the monitor has answered
 * an `attach` request with its ok line, both directions of that connection carry frames
 * `[u8 kind][u32 big-endian payload length][payload]` until it closes. Pure encoding and decoding, shared by the
 * monitor (attach_conn.ts) and the daemon's client (attach_session.ts).
 *
 * | kind | name | direction | payload |
 * | --- | --- | --- | --- |
 * | 0 | STDIN | daemon -> monitor | bytes for the container's stdin |
 * | 1 | STDOUT | monitor -> daemon | bytes the container wrote to its stdout |
 * | 2 | STDERR | monitor -> daemon | bytes the container wrote to its stderr |
 * | 3 | EXIT | monitor -> daemon | the exit record as JSON; the last frame, the monitor then closes |
 * | 4 | STDIN_CLOSE | daemon -> monitor | empty: this session's stdin ended |
 * | 5 | RESIZE | daemon -> monitor | JSON `{"cols": n, "rows": n}` |
 * @module
 */
import { InvalidArgument, ResourceExhausted } from "../lib/errors.ts";
import type { ExitRecord } from "./exit_file.ts";

/** Frame kinds. */
export const FrameKind = {
  STDIN: 0,
  STDOUT: 1,
  STDERR: 2,
  EXIT: 3,
  STDIN_CLOSE: 4,
  RESIZE: 5,
} as const;
/** One of {@link FrameKind}'s values. */
export type FrameKind = typeof FrameKind[keyof typeof FrameKind];

/** Kinds the daemon sends (what the monitor accepts). */
export const DAEMON_FRAME_KINDS: readonly FrameKind[] = [FrameKind.STDIN, FrameKind.STDIN_CLOSE, FrameKind.RESIZE];
/** Kinds the monitor sends (what the client accepts). */
export const MONITOR_FRAME_KINDS: readonly FrameKind[] = [FrameKind.STDOUT, FrameKind.STDERR, FrameKind.EXIT];

/** Bytes of a frame header: the kind and the payload length. */
export const FRAME_HEADER_BYTES = 5;
/** The largest payload either side sends or accepts; longer data is cut into several frames. */
export const MAX_FRAME_PAYLOAD = 1024 * 1024;

/** One decoded frame; `payload` is a copy the receiver may keep. */
export interface Frame {
  kind: FrameKind;
  payload: Uint8Array;
}

/** A terminal size, in character cells (CRI's TerminalSize: width = cols, height = rows). */
export interface TerminalSize {
  cols: number;
  rows: number;
}

const EMPTY = new Uint8Array(0);

/** Encodes one frame (header and payload in one buffer). Throws RangeError past {@link MAX_FRAME_PAYLOAD}. */
export function encodeFrame(kind: FrameKind, payload: Uint8Array = EMPTY): Uint8Array {
  if (payload.byteLength > MAX_FRAME_PAYLOAD) {
    throw new RangeError(`frame payload of ${payload.byteLength} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, payload.byteLength);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Encodes `data` as frames of `kind`, cut at {@link MAX_FRAME_PAYLOAD} (none for empty data). */
export function encodeDataFrames(kind: FrameKind, data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < data.byteLength; off += MAX_FRAME_PAYLOAD) {
    out.push(encodeFrame(kind, data.subarray(off, off + MAX_FRAME_PAYLOAD)));
  }
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a RESIZE frame. */
export function encodeResize(size: TerminalSize): Uint8Array {
  return encodeFrame(FrameKind.RESIZE, encoder.encode(JSON.stringify({ cols: size.cols, rows: size.rows })));
}

/** Encodes an EXIT frame. */
export function encodeExit(rec: ExitRecord): Uint8Array {
  return encodeFrame(FrameKind.EXIT, encoder.encode(JSON.stringify(rec)));
}

function parseObject(payload: Uint8Array, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(decoder.decode(payload));
  } catch {
    throw new InvalidArgument(`${what} frame payload is not valid JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new InvalidArgument(`${what} frame payload is not a JSON object`);
  }
  return v as Record<string, unknown>;
}

/** Parses a RESIZE payload: `cols` and `rows` integers in [0, 65535], nothing else. Throws InvalidArgument. */
export function parseResize(payload: Uint8Array): TerminalSize {
  const o = parseObject(payload, "RESIZE");
  for (const key of Object.keys(o)) {
    if (key !== "cols" && key !== "rows") throw new InvalidArgument(`RESIZE: unknown field ${JSON.stringify(key)}`);
  }
  const dim = (key: "cols" | "rows"): number => {
    const v = o[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff) {
      throw new InvalidArgument(`RESIZE: "${key}" must be an integer in [0, 65535], got ${JSON.stringify(v)}`);
    }
    return v;
  };
  return { cols: dim("cols"), rows: dim("rows") };
}

/** Parses an EXIT payload (the exit record the monitor wrote to its exit file). Throws InvalidArgument. */
export function parseExit(payload: Uint8Array): ExitRecord {
  const o = parseObject(payload, "EXIT");
  if (
    typeof o.container_id !== "string" || typeof o.exit_code !== "number" || typeof o.finished_at !== "string" ||
    typeof o.reason !== "string" || typeof o.oom_killed !== "boolean"
  ) {
    throw new InvalidArgument("EXIT frame payload is not an exit record");
  }
  return o as unknown as ExitRecord;
}

/**
 * Splits a byte stream into frames. Throws InvalidArgument for a kind not in `kinds` and ResourceExhausted for a
 * length past `maxPayload`, as soon as the header is read: the stream cannot be resynchronized, so the
 * connection ends.
 */
export class FrameDecoder {
  readonly #kinds: readonly FrameKind[];
  readonly #max: number;
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  /** The header of the frame being collected. */
  #kind: FrameKind | undefined;
  #length = 0;

  constructor(kinds: readonly FrameKind[], maxPayload: number = MAX_FRAME_PAYLOAD) {
    this.#kinds = kinds;
    this.#max = maxPayload;
  }

  /** Bytes held toward an unfinished frame. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** The frames `chunk` completes; `chunk` itself is not kept (the caller may reuse its buffer). */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    if (chunk.byteLength > 0) {
      this.#held.push(chunk.slice());
      this.#heldBytes += chunk.byteLength;
    }
    for (;;) {
      if (this.#kind === undefined) {
        if (this.#heldBytes < FRAME_HEADER_BYTES) break;
        const header = this.#take(FRAME_HEADER_BYTES);
        const kind = header[0]!;
        const length = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES).getUint32(1);
        if (!(this.#kinds as readonly number[]).includes(kind)) {
          throw new InvalidArgument(`unexpected frame kind ${kind}`);
        }
        if (length > this.#max) throw new ResourceExhausted(`frame of ${length} bytes exceeds ${this.#max}`);
        this.#kind = kind as FrameKind;
        this.#length = length;
      }
      if (this.#heldBytes < this.#length) break;
      frames.push({ kind: this.#kind, payload: this.#take(this.#length) });
      this.#kind = undefined;
    }
    return frames;
  }

  /** Removes the first `n` bytes held (n <= heldBytes), as a buffer of their own. */
  #take(n: number): Uint8Array {
    this.#heldBytes -= n;
    const first = this.#held[0];
    if (n === 0) return new Uint8Array(0);
    if (first !== undefined && first.byteLength >= n) {
      // Within one held chunk: a view. Held chunks are private copies, and the rest of this one stays held.
      if (first.byteLength === n) this.#held.shift();
      else this.#held[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let off = 0;
    let used = 0;
    while (off < n) {
      const c = this.#held[used]!;
      const want = n - off;
      if (c.byteLength <= want) {
        out.set(c, off);
        off += c.byteLength;
        used++;
      } else {
        out.set(c.subarray(0, want), off);
        this.#held[used] = c.subarray(want);
        off = n;
      }
    }
    this.#held.splice(0, used);
    return out;
  }
}
