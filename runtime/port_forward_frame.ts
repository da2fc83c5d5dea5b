/**
 * The framing between the daemon and its port-forward helper (docs/port-forward-helper.md): on the helper's stdin
 * and stdout, frames `[u8 type][u32 BE connection id][u32 BE payload length][payload]`. Pure encoding, decoding
 * and per-type validation, shared by the helper (port_forward_helper.ts) and the daemon's client
 * (port_forward.ts).
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

/** Frame types; the direction each may travel in is in {@link FROM_DAEMON} and {@link FROM_HELPER}. */
export const FrameType = {
  /** daemon -> helper: connect to a port; payload u16 BE port. */
  OPEN: 1,
  /** helper -> daemon: the connection is established; empty. */
  OPENED: 2,
  /** both: bytes of the connection's stream. */
  DATA: 3,
  /** both: the sender's direction of the stream ended (a TCP FIN); empty. */
  CLOSE_WRITE: 4,
  /** daemon -> helper: abort the connection; empty. */
  CLOSE: 5,
  /** helper -> daemon: why the connection failed, UTF-8. */
  ERROR: 6,
  /** helper -> daemon: the connection is gone and its id free again; empty. The last frame of an id. */
  CLOSED: 7,
  /** both: the receiver consumed this many more DATA bytes; payload u32 BE. */
  WINDOW: 8,
  /** helper -> daemon, id 0, first frame: the helper is in the namespace; payload u16 BE protocol version. */
  READY: 9,
} as const;
/** One of {@link FrameType}'s values. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/** The version a helper announces in READY. */
export const PROTOCOL_VERSION = 1;
/** Bytes of a frame header: type, connection id, payload length. */
export const FRAME_HEADER_BYTES = 9;
/** The largest payload either side sends or accepts. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;
/** DATA bytes a sender may have unacknowledged (not yet returned by WINDOW) per connection and direction. */
export const WINDOW_BYTES = 256 * 1024;
/** Connections one helper holds at once; an OPEN past it is answered with ERROR and CLOSED. */
export const MAX_CONNECTIONS = 1024;

/** Types the daemon sends (what the helper accepts). */
export const FROM_DAEMON: readonly FrameType[] = [
  FrameType.OPEN,
  FrameType.DATA,
  FrameType.CLOSE_WRITE,
  FrameType.CLOSE,
  FrameType.WINDOW,
];
/** Types the helper sends (what the daemon accepts). */
export const FROM_HELPER: readonly FrameType[] = [
  FrameType.OPENED,
  FrameType.DATA,
  FrameType.CLOSE_WRITE,
  FrameType.ERROR,
  FrameType.CLOSED,
  FrameType.WINDOW,
  FrameType.READY,
];

/** One decoded frame; `payload` may be kept by the receiver. */
export interface Frame {
  type: FrameType;
  id: number;
  payload: Uint8Array;
}

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k]));

/** The name of a frame type (`OPEN`), or `type <n>` for an unknown one. */
export function frameTypeName(type: number): string {
  return NAMES[type] ?? `type ${type}`;
}

const EMPTY = new Uint8Array(0);

/** Encodes one frame. Throws RangeError for a payload past {@link MAX_FRAME_PAYLOAD} or an id outside u32. */
export function encodeFrame(type: FrameType, id: number, payload: Uint8Array = EMPTY): Uint8Array {
  if (payload.byteLength > MAX_FRAME_PAYLOAD) {
    throw new RangeError(`frame payload of ${payload.byteLength} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
  }
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`connection id ${id} is not a u32`);
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, type);
  view.setUint32(1, id);
  view.setUint32(5, payload.byteLength);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** Encodes OPEN for `port` (1-65535). */
export function encodeOpen(id: number, port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw new RangeError(`port ${port} is not in 1-65535`);
  const p = new Uint8Array(2);
  new DataView(p.buffer).setUint16(0, port);
  return encodeFrame(FrameType.OPEN, id, p);
}

/** Encodes WINDOW returning `bytes` (1 to {@link WINDOW_BYTES}) of credit. */
export function encodeWindow(id: number, bytes: number): Uint8Array {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > WINDOW_BYTES) {
    throw new RangeError(`window increment ${bytes} is not in 1-${WINDOW_BYTES}`);
  }
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, bytes);
  return encodeFrame(FrameType.WINDOW, id, p);
}

/** The longest ERROR message sent, in bytes; longer ones are cut (at a character boundary). */
export const MAX_ERROR_BYTES = 1024;

/** Encodes ERROR with `message` as UTF-8, cut to {@link MAX_ERROR_BYTES}. */
export function encodeError(id: number, message: string): Uint8Array {
  const buf = new Uint8Array(MAX_ERROR_BYTES);
  const { written } = new TextEncoder().encodeInto(message, buf);
  return encodeFrame(FrameType.ERROR, id, buf.subarray(0, written));
}

/** Encodes READY with {@link PROTOCOL_VERSION}. */
export function encodeReady(): Uint8Array {
  const p = new Uint8Array(2);
  new DataView(p.buffer).setUint16(0, PROTOCOL_VERSION);
  return encodeFrame(FrameType.READY, 0, p);
}

/** The u16 of an OPEN or READY payload, or the u32 of a WINDOW payload (already validated by the decoder). */
export function payloadNumber(frame: Frame): number {
  const view = new DataView(frame.payload.buffer, frame.payload.byteOffset, frame.payload.byteLength);
  return frame.payload.byteLength === 2 ? view.getUint16(0) : view.getUint32(0);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The message of an ERROR frame. Throws InvalidArgument when it is not UTF-8. */
export function errorText(frame: Frame): string {
  try {
    return utf8.decode(frame.payload);
  } catch {
    throw new InvalidArgument(`ERROR frame for connection ${frame.id} is not UTF-8`);
  }
}

/**
 * Checks a frame's payload and id against its type: what a frame carries is fixed, so anything else is a peer
 * that speaks another protocol. Throws InvalidArgument.
 */
export function checkFrame(frame: Frame): void {
  const { type, id, payload } = frame;
  const n = payload.byteLength;
  const bad = (what: string): never => {
    throw new InvalidArgument(`${frameTypeName(type)} frame for connection ${id}: ${what}`);
  };
  if (id === 0 && type !== FrameType.READY) bad("id 0 is reserved for READY");
  switch (type) {
    case FrameType.OPEN:
      if (n !== 2) bad(`payload of ${n} bytes, expected 2`);
      if (payloadNumber(frame) === 0) bad("port 0");
      break;
    case FrameType.READY:
      if (id !== 0) bad("id must be 0");
      if (n !== 2) bad(`payload of ${n} bytes, expected 2`);
      break;
    case FrameType.WINDOW: {
      if (n !== 4) bad(`payload of ${n} bytes, expected 4`);
      const inc = payloadNumber(frame);
      if (inc === 0 || inc > WINDOW_BYTES) bad(`increment ${inc} not in 1-${WINDOW_BYTES}`);
      break;
    }
    case FrameType.DATA:
      if (n === 0) bad("empty payload");
      break;
    case FrameType.ERROR:
      if (n === 0) bad("empty message");
      break;
    default:
      if (n !== 0) bad(`payload of ${n} bytes, expected none`);
  }
}

/**
 * Splits a byte stream into frames sent by one side (`accepted`: {@link FROM_DAEMON} or {@link FROM_HELPER}),
 * checking each with {@link checkFrame}. Throws InvalidArgument for an unexpected type, a length past
 * {@link MAX_FRAME_PAYLOAD} (as soon as the header is read: the stream cannot be resynchronized) or a bad
 * payload. Each payload is a copy of its own (a consumer may transfer its buffer); the pushed chunks are held
 * until consumed, not copied, so their buffers must not be reused (stream chunks never are).
 */
export class FrameDecoder {
  readonly #accepted: readonly number[];
  /** Unconsumed bytes in order, views of pushed chunks. */
  #parts: Uint8Array[] = [];
  #held = 0;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  readonly #headerView = new DataView(this.#header.buffer);

  constructor(accepted: readonly FrameType[]) {
    this.#accepted = accepted;
  }

  /** Bytes held toward an unfinished frame (non-zero at end of stream means the stream was cut). */
  get heldBytes(): number {
    return this.#held;
  }

  /** The frames `chunk` completes. */
  push(chunk: Uint8Array): Frame[] {
    if (chunk.byteLength > 0) {
      this.#parts.push(chunk);
      this.#held += chunk.byteLength;
    }
    const frames: Frame[] = [];
    while (this.#held >= FRAME_HEADER_BYTES) {
      this.#copyOut(this.#header, false);
      const type = this.#headerView.getUint8(0);
      const id = this.#headerView.getUint32(1);
      const length = this.#headerView.getUint32(5);
      if (!this.#accepted.includes(type)) {
        throw new InvalidArgument(`unexpected frame ${frameTypeName(type)} for connection ${id}`);
      }
      if (length > MAX_FRAME_PAYLOAD) {
        throw new InvalidArgument(`${frameTypeName(type)} frame of ${length} bytes exceeds ${MAX_FRAME_PAYLOAD}`);
      }
      if (this.#held < FRAME_HEADER_BYTES + length) break;
      this.#copyOut(this.#header, true);
      const payload = new Uint8Array(length);
      this.#copyOut(payload, true);
      const frame = { type: type as FrameType, id, payload };
      checkFrame(frame);
      frames.push(frame);
    }
    return frames;
  }

  /** Fills `out` from the held bytes (at least out.byteLength are held), consuming them when `consume`. */
  #copyOut(out: Uint8Array, consume: boolean): void {
    let filled = 0;
    let i = 0;
    while (filled < out.byteLength) {
      const part = this.#parts[i]!;
      const n = Math.min(part.byteLength, out.byteLength - filled);
      out.set(n === part.byteLength ? part : part.subarray(0, n), filled);
      filled += n;
      if (n === part.byteLength) i++;
      else if (consume) this.#parts[i] = part.subarray(n);
    }
    if (!consume) return;
    // One splice, not a shift per part: a frame may have come in many small chunks.
    this.#parts.splice(0, i);
    this.#held -= out.byteLength;
  }
}
