/**
 * HTTP/2 framing facts (RFC 9113 Sections 3.4, 4.1, 6, 7) and small pure helpers to read and write frame headers
 * and to split a header block into HEADERS and CONTINUATION frames.
 * @module
 */

/** The client connection preface (RFC 9113 Section 3.4). */
export const PREFACE: Uint8Array = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Length of a frame header (Section 4.1). */
export const FRAME_HEADER_LENGTH = 9;

/** SETTINGS_MAX_FRAME_SIZE's initial value, which every peer accepts (Section 6.5.2). */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;

/** Frame types (Section 6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags (Section 6); ACK shares END_STREAM's bit on SETTINGS and PING. */
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

/** SETTINGS identifiers (Section 6.5.2). */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** Error code names by value (Section 7). */
export const ERROR_CODE_NAMES: readonly string[] = [
  "NO_ERROR",
  "PROTOCOL_ERROR",
  "INTERNAL_ERROR",
  "FLOW_CONTROL_ERROR",
  "SETTINGS_TIMEOUT",
  "STREAM_CLOSED",
  "FRAME_SIZE_ERROR",
  "REFUSED_STREAM",
  "CANCEL",
  "COMPRESSION_ERROR",
  "CONNECT_ERROR",
  "ENHANCE_YOUR_CALM",
  "INADEQUATE_SECURITY",
  "HTTP_1_1_REQUIRED",
];

/** The name of an HTTP/2 error code, or its number. */
export function errorCodeName(code: number): string {
  return ERROR_CODE_NAMES[code] ?? `0x${code.toString(16)}`;
}

/** A parsed frame header. */
export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

/** Reads the 9-octet frame header at `buf[pos]` (the reserved bit of the stream identifier is ignored). */
export function readFrameHeader(buf: Uint8Array, pos: number): FrameHeader {
  return {
    length: (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!,
    type: buf[pos + 3]!,
    flags: buf[pos + 4]!,
    streamId: ((buf[pos + 5]! & 0x7f) << 24 | buf[pos + 6]! << 16 | buf[pos + 7]! << 8 | buf[pos + 8]!) >>> 0,
  };
}

/** Writes a frame header into `out` at `pos`. */
export function writeFrameHeader(out: Uint8Array, pos: number, h: FrameHeader): void {
  out[pos] = (h.length >>> 16) & 0xff;
  out[pos + 1] = (h.length >>> 8) & 0xff;
  out[pos + 2] = h.length & 0xff;
  out[pos + 3] = h.type;
  out[pos + 4] = h.flags;
  out[pos + 5] = (h.streamId >>> 24) & 0x7f;
  out[pos + 6] = (h.streamId >>> 16) & 0xff;
  out[pos + 7] = (h.streamId >>> 8) & 0xff;
  out[pos + 8] = h.streamId & 0xff;
}

/** One whole frame: header and payload. */
export function encodeFrame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = new Uint8Array(),
): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_LENGTH + payload.length);
  writeFrameHeader(out, 0, { length: payload.length, type, flags, streamId });
  out.set(payload, FRAME_HEADER_LENGTH);
  return out;
}

/** How a header block is framed by {@link headerBlockFrames} and {@link writeHeaderBlockFrames}. */
export interface HeaderFramingOptions {
  /** May carry END_STREAM; END_HEADERS is set on the last frame by the framing itself. */
  flags?: number;
  /** The 5-octet stream dependency and weight (Section 6.2): sets PRIORITY and counts against the first frame. */
  priority?: Uint8Array;
  /** Largest frame payload (default 16384). */
  maxFrameSize?: number;
}

/** The octets {@link writeHeaderBlockFrames} writes for a block of `blockLength` octets. */
export function headerBlockFramesLength(blockLength: number, opts: HeaderFramingOptions = {}): number {
  const max = opts.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  const prio = opts.priority ? opts.priority.length : 0;
  const frames = 1 + Math.ceil(Math.max(0, blockLength - (max - prio)) / max);
  return frames * FRAME_HEADER_LENGTH + prio + blockLength;
}

/**
 * Writes a header block into `out` at `pos` as one HEADERS frame followed by as many CONTINUATION frames as the
 * frame size needs (Section 6.10); returns the position after them. `out` needs room for
 * {@link headerBlockFramesLength} octets.
 */
export function writeHeaderBlockFrames(
  out: Uint8Array,
  pos: number,
  streamId: number,
  block: Uint8Array,
  opts: HeaderFramingOptions = {},
): number {
  const max = opts.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  const priority = opts.priority;
  let taken = 0;
  for (let first = true; first || taken < block.length; first = false) {
    const prio = first && priority ? priority.length : 0;
    const n = Math.min(max - prio, block.length - taken);
    let flags = taken + n === block.length ? Flag.END_HEADERS : 0;
    if (first) flags |= ((opts.flags ?? 0) & Flag.END_STREAM) | (prio ? Flag.PRIORITY : 0);
    const type = first ? FrameType.HEADERS : FrameType.CONTINUATION;
    writeFrameHeader(out, pos, { length: n + prio, type, flags, streamId });
    pos += FRAME_HEADER_LENGTH;
    if (prio) {
      out.set(priority!, pos);
      pos += prio;
    }
    out.set(block.subarray(taken, taken + n), pos);
    pos += n;
    taken += n;
  }
  return pos;
}

/** A header block framed as by {@link writeHeaderBlockFrames}, in a new buffer. */
export function headerBlockFrames(streamId: number, block: Uint8Array, opts: HeaderFramingOptions = {}): Uint8Array {
  const out = new Uint8Array(headerBlockFramesLength(block.length, opts));
  writeHeaderBlockFrames(out, 0, streamId, block, opts);
  return out;
}
