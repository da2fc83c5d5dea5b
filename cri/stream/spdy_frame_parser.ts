/**
 * The incremental SPDY/3.1 frame parser (SPDY Protocol Draft 3.1, Sections 2.2 and 2.6): it takes bytes as they
 * come off a socket and hands out whole frames, checking each frame header (version, type-specific length, size
 * limit) as soon as its 8 bytes are in, so that nothing malformed or oversized is ever buffered. Pure.
 * @module
 */
import {
  ControlType,
  DEFAULT_MAX_CONTROL_BYTES,
  DEFAULT_MAX_DATA_BYTES,
  FRAME_HEADER_BYTES,
  MAX_FRAME_LENGTH,
  MAX_STREAM_ID,
  type SettingsEntry,
  SPDY_VERSION,
  type SpdyFrame,
  SpdyProtocolError,
} from "./spdy_frame.ts";

/** Limits a {@link SpdyFrameParser} enforces on the payload length a frame header announces. */
export interface FrameLimits {
  /** Largest DATA payload accepted; default {@link DEFAULT_MAX_DATA_BYTES}. */
  maxDataBytes?: number;
  /** Largest control frame payload accepted; default {@link DEFAULT_MAX_CONTROL_BYTES}. */
  maxControlBytes?: number;
}

// Exact payload lengths of the fixed-size control frames, and minimums of the others (Section 2.6).
const FIXED_LENGTH: Record<number, number> = {
  [ControlType.RST_STREAM]: 8,
  [ControlType.PING]: 4,
  [ControlType.GOAWAY]: 8,
  [ControlType.WINDOW_UPDATE]: 8,
};
const MIN_LENGTH: Record<number, number> = {
  [ControlType.SYN_STREAM]: 10,
  [ControlType.SYN_REPLY]: 4,
  [ControlType.SETTINGS]: 4,
  [ControlType.HEADERS]: 4,
};
const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ControlType).map(([k, v]) => [v, k]));

/**
 * Turns a byte stream into frames. Feed it whatever arrives with {@link push}; it returns the frames completed so
 * far and keeps the rest. A frame header is checked as soon as its 8 bytes are in, so an oversized or malformed
 * frame is refused before its payload is buffered. After it has thrown, the parser refuses all further input.
 */
export class SpdyFrameParser {
  readonly #maxData: number;
  readonly #maxControl: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #failure: SpdyProtocolError | undefined;

  constructor(limits: FrameLimits = {}) {
    this.#maxData = limits.maxDataBytes ?? DEFAULT_MAX_DATA_BYTES;
    this.#maxControl = limits.maxControlBytes ?? DEFAULT_MAX_CONTROL_BYTES;
  }

  /** Bytes held that do not yet make a whole frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Adds bytes; returns every frame they complete. Throws {@link SpdyProtocolError} on malformed input. */
  push(bytes: Uint8Array): SpdyFrame[] {
    if (this.#failure) throw this.#failure;
    if (bytes.length > 0) {
      this.#chunks.push(bytes);
      this.#buffered += bytes.length;
    }
    const frames: SpdyFrame[] = [];
    try {
      while (this.#buffered >= FRAME_HEADER_BYTES) {
        const header = new DataView(this.#peek(FRAME_HEADER_BYTES).buffer);
        const length = header.getUint32(4) & MAX_FRAME_LENGTH;
        this.#checkHeader(header, length);
        if (this.#buffered < FRAME_HEADER_BYTES + length) break;
        const bytes = this.#take(FRAME_HEADER_BYTES + length);
        frames.push(decodeFrame(bytes, length));
      }
    } catch (err) {
      this.#failure = err as SpdyProtocolError;
      this.#chunks = [];
      this.#buffered = 0;
      throw err;
    }
    return frames;
  }

  #checkHeader(header: DataView, length: number): void {
    const first = header.getUint16(0);
    if ((first & 0x8000) === 0) {
      if (length > this.#maxData) {
        throw new SpdyProtocolError(
          "frame-too-large",
          `SPDY DATA frame of ${length} bytes exceeds the limit of ${this.#maxData}`,
        );
      }
      return;
    }
    const version = first & 0x7fff;
    if (version !== SPDY_VERSION) {
      throw new SpdyProtocolError("version", `SPDY control frame has version ${version}, expected ${SPDY_VERSION}`);
    }
    const type = header.getUint16(2);
    const name = TYPE_NAMES[type] ?? `control frame type ${type}`;
    if (length > this.#maxControl) {
      throw new SpdyProtocolError(
        "frame-too-large",
        `SPDY ${name} frame of ${length} bytes exceeds the limit of ${this.#maxControl}`,
      );
    }
    const fixed = FIXED_LENGTH[type];
    const min = MIN_LENGTH[type];
    if ((fixed !== undefined && length !== fixed) || (min !== undefined && length < min)) {
      const wanted = fixed !== undefined ? `${fixed}` : `at least ${min}`;
      throw new SpdyProtocolError("frame-length", `SPDY ${name} frame has length ${length}, expected ${wanted}`);
    }
  }

  // The first `n` buffered bytes, without consuming them (copies only when they span chunks).
  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first.slice(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.#chunks) {
      const part = c.subarray(0, n - at);
      out.set(part, at);
      at += part.length;
      if (at === n) break;
    }
    return out;
  }

  #take(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const c = this.#chunks[0]!;
        const part = c.subarray(0, n - at);
        out.set(part, at);
        at += part.length;
        if (part.length === c.length) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(part.length);
      }
    }
    this.#buffered -= n;
    return out;
  }
}

function nonZeroStream(id: number, name: string): number {
  if (id === 0) throw new SpdyProtocolError("stream-id", `SPDY ${name} frame names stream 0`);
  return id;
}

// Decodes one whole frame whose header has already been checked.
function decodeFrame(bytes: Uint8Array, length: number): SpdyFrame {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = view.getUint8(4);
  const payload = bytes.subarray(FRAME_HEADER_BYTES);
  if ((view.getUint8(0) & 0x80) === 0) {
    const streamId = nonZeroStream(view.getUint32(0) & MAX_STREAM_ID, "DATA");
    return { type: "data", streamId, flags, data: payload };
  }
  const type = view.getUint16(2);
  const u31 = (at: number) => view.getUint32(at) & MAX_STREAM_ID;
  switch (type) {
    case ControlType.SYN_STREAM:
      return {
        type: "syn_stream",
        streamId: nonZeroStream(u31(8), "SYN_STREAM"),
        associatedStreamId: u31(12),
        priority: view.getUint8(16) >> 5,
        slot: view.getUint8(17),
        flags,
        headerBlock: bytes.subarray(18),
      };
    case ControlType.SYN_REPLY:
      return {
        type: "syn_reply",
        streamId: nonZeroStream(u31(8), "SYN_REPLY"),
        flags,
        headerBlock: bytes.subarray(12),
      };
    case ControlType.HEADERS:
      return { type: "headers", streamId: nonZeroStream(u31(8), "HEADERS"), flags, headerBlock: bytes.subarray(12) };
    case ControlType.RST_STREAM: {
      const status = view.getUint32(12);
      if (status === 0) throw new SpdyProtocolError("field", "SPDY RST_STREAM frame has status 0");
      return { type: "rst_stream", streamId: nonZeroStream(u31(8), "RST_STREAM"), status };
    }
    case ControlType.SETTINGS: {
      const count = view.getUint32(8);
      if (length !== 4 + 8 * count) {
        throw new SpdyProtocolError(
          "frame-length",
          `SPDY SETTINGS frame has length ${length} for ${count} entries, expected ${4 + 8 * count}`,
        );
      }
      const entries: SettingsEntry[] = [];
      for (let i = 0; i < count; i++) {
        const at = 12 + 8 * i;
        entries.push({ flags: view.getUint8(at), id: view.getUint32(at) & 0xff_ffff, value: view.getUint32(at + 4) });
      }
      return { type: "settings", flags, entries };
    }
    case ControlType.PING:
      return { type: "ping", id: view.getUint32(8) };
    case ControlType.GOAWAY:
      return { type: "goaway", lastGoodStreamId: u31(8), status: view.getUint32(12) };
    case ControlType.WINDOW_UPDATE: {
      const delta = u31(12);
      // The legal range is 1 to 2^31 - 1 (Section 2.6.8).
      if (delta === 0) throw new SpdyProtocolError("field", "SPDY WINDOW_UPDATE frame has a delta of 0");
      return { type: "window_update", streamId: u31(8), delta };
    }
    default:
      return { type: "unknown", controlType: type, flags, payload };
  }
}
