/**
 * The WebSocket wire format (RFC 6455 Section 5): encoding frames, an incremental frame decoder that enforces the
 * rules of one side (servers require masked frames, clients refuse them), reassembly of fragmented messages with a
 * size cap, and close frame payloads. Pure: no I/O, no timers.
 * @module
 */

/** Frame opcodes (RFC 6455 Section 5.2). */
export const Opcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** Close status codes davit sends or names (RFC 6455 Section 7.4.1). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  /** Reported, never sent: the close frame had no code. */
  noStatus: 1005,
  /** Reported, never sent: the connection ended without a close frame. */
  abnormal: 1006,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
} as const;

/** A peer broke the protocol; `code` is the close code to fail the connection with. */
export class WebSocketProtocolError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = "WebSocketProtocolError";
    this.code = code;
  }
}

/** One frame, unmasked. */
export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** One whole message. */
export interface WebSocketMessage {
  binary: boolean;
  data: Uint8Array;
}

/** A close frame's content. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** Largest control frame payload (RFC 6455 Section 5.5). */
export const MAX_CONTROL_PAYLOAD = 125;

/** True for close, ping and pong. */
export function isControl(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/**
 * Encodes one frame; with `mask` (4 bytes, what a client must send) the payload is masked with it. Uses the
 * shortest length form (RFC 6455 Section 5.2).
 */
export function encodeFrame(frame: Frame, mask?: Uint8Array): Uint8Array {
  const len = frame.payload.length;
  if (isControl(frame.opcode) && (len > MAX_CONTROL_PAYLOAD || !frame.fin)) {
    throw new RangeError(`A control frame must be final and carry at most ${MAX_CONTROL_PAYLOAD} bytes`);
  }
  if (mask !== undefined && mask.length !== 4) throw new RangeError("A masking key is 4 bytes");
  const lenBytes = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const headLen = 2 + lenBytes + (mask ? 4 : 0);
  const out = new Uint8Array(headLen + len);
  out[0] = (frame.fin ? 0x80 : 0) | (frame.opcode & 0x0f);
  out[1] = (mask ? 0x80 : 0) | (lenBytes === 0 ? len : lenBytes === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (lenBytes === 2) view.setUint16(2, len);
  else if (lenBytes === 8) view.setBigUint64(2, BigInt(len));
  if (mask) {
    out.set(mask, 2 + lenBytes);
    for (let i = 0; i < len; i++) out[headLen + i] = frame.payload[i]! ^ mask[i & 3]!;
  } else {
    out.set(frame.payload, headLen);
  }
  return out;
}

/** Options for a {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** `server` decodes client frames (which must be masked); `client` decodes server frames (which must not be). */
  role: "server" | "client";
  /** Largest payload of one frame; a longer one fails with 1009 before its payload is buffered. */
  maxPayloadBytes: number;
}

/** Decodes frames from bytes as they arrive. `next` throws {@link WebSocketProtocolError} on a broken frame. */
export class FrameDecoder {
  readonly #role: "server" | "client";
  readonly #max: number;
  #buf: Uint8Array = new Uint8Array(0);

  constructor(options: FrameDecoderOptions) {
    this.#role = options.role;
    this.#max = options.maxPayloadBytes;
  }

  /** Adds received bytes. */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#buf.length === 0) {
      this.#buf = bytes;
      return;
    }
    const out = new Uint8Array(this.#buf.length + bytes.length);
    out.set(this.#buf);
    out.set(bytes, this.#buf.length);
    this.#buf = out;
  }

  /** How many bytes wait for the rest of their frame. */
  get buffered(): number {
    return this.#buf.length;
  }

  /** The next whole frame, or undefined until more bytes arrive. */
  next(): Frame | undefined {
    const buf = this.#buf;
    if (buf.length < 2) return undefined;
    const b0 = buf[0]!;
    const b1 = buf[1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    // No extension is negotiated, so the RSV bits must be 0 (Section 5.2).
    if (b0 & 0x70) throw new WebSocketProtocolError(CloseCode.protocolError, "Reserved bits set");
    if (opcode > 0xa || (opcode > 0x2 && opcode < 0x8)) {
      throw new WebSocketProtocolError(CloseCode.protocolError, `Unknown opcode ${opcode}`);
    }
    const masked = (b1 & 0x80) !== 0;
    // Section 5.1: a server closes on an unmasked frame, a client on a masked one.
    if (masked !== (this.#role === "server")) {
      throw new WebSocketProtocolError(
        CloseCode.protocolError,
        masked ? "Masked frame from the server" : "Unmasked frame from the client",
      );
    }
    const len7 = b1 & 0x7f;
    if (isControl(opcode) && (!fin || len7 > MAX_CONTROL_PAYLOAD)) {
      throw new WebSocketProtocolError(
        CloseCode.protocolError,
        fin ? "Control frame longer than 125 bytes" : "Fragmented control frame",
      );
    }
    let pos = 2;
    let len = len7;
    if (len7 === 126) {
      if (buf.length < 4) return undefined;
      len = (buf[2]! << 8) | buf[3]!;
      pos = 4;
      if (len < 126) throw new WebSocketProtocolError(CloseCode.protocolError, "Length not in its shortest form");
    } else if (len7 === 127) {
      if (buf.length < 10) return undefined;
      const big = new DataView(buf.buffer, buf.byteOffset + 2, 8).getBigUint64(0);
      if (big >> 63n) throw new WebSocketProtocolError(CloseCode.protocolError, "Length with the top bit set");
      if (big < 0x10000n) throw new WebSocketProtocolError(CloseCode.protocolError, "Length not in its shortest form");
      if (big > BigInt(this.#max)) {
        throw new WebSocketProtocolError(CloseCode.messageTooBig, `Frame of ${big} bytes exceeds ${this.#max}`);
      }
      len = Number(big);
      pos = 10;
    }
    if (len > this.#max) {
      throw new WebSocketProtocolError(CloseCode.messageTooBig, `Frame of ${len} bytes exceeds ${this.#max}`);
    }
    const keyPos = pos;
    if (masked) pos += 4;
    if (buf.length < pos + len) return undefined;
    const payload = buf.slice(pos, pos + len);
    if (masked) {
      for (let i = 0; i < len; i++) payload[i]! ^= buf[keyPos + (i & 3)]!;
    }
    this.#buf = buf.subarray(pos + len);
    if (this.#buf.length === 0) this.#buf = new Uint8Array(0);
    return { fin, opcode, payload };
  }
}

/**
 * Joins data frames into messages (RFC 6455 Section 5.4) and checks text is UTF-8 (Section 8.1). `add` takes
 * each data frame in order and returns the message it completes, if any.
 */
export class MessageAssembler {
  readonly #max: number;
  #parts: Uint8Array[] = [];
  #size = 0;
  #opcode = 0;

  /** `maxMessageBytes` caps a whole message; past it, `add` throws 1009. */
  constructor(maxMessageBytes: number) {
    this.#max = maxMessageBytes;
  }

  /** Takes the next data frame; throws {@link WebSocketProtocolError} on a broken sequence. */
  add(frame: Frame): WebSocketMessage | undefined {
    if (frame.opcode === Opcode.continuation) {
      if (this.#opcode === 0) throw new WebSocketProtocolError(CloseCode.protocolError, "Continuation of nothing");
    } else if (this.#opcode !== 0) {
      throw new WebSocketProtocolError(CloseCode.protocolError, "New message before the last one ended");
    } else {
      this.#opcode = frame.opcode;
    }
    this.#size += frame.payload.length;
    if (this.#size > this.#max) {
      throw new WebSocketProtocolError(CloseCode.messageTooBig, `Message larger than ${this.#max} bytes`);
    }
    this.#parts.push(frame.payload);
    if (!frame.fin) return undefined;
    const data = this.#parts.length === 1 ? this.#parts[0]! : concat(this.#parts, this.#size);
    const binary = this.#opcode === Opcode.binary;
    this.#parts = [];
    this.#size = 0;
    this.#opcode = 0;
    if (!binary && !isUtf8(data)) throw new WebSocketProtocolError(CloseCode.invalidPayload, "Text is not UTF-8");
    return { binary, data };
  }
}

/** A close frame payload: the code (2 bytes, network order) and a UTF-8 reason (Section 5.5.1). */
export function encodeClosePayload(code: number, reason = ""): Uint8Array {
  if (!isSendableCloseCode(code)) throw new RangeError(`Close code ${code} may not be sent`);
  const text = new TextEncoder().encode(reason);
  if (text.length > MAX_CONTROL_PAYLOAD - 2) throw new RangeError("Close reason longer than 123 bytes");
  const out = new Uint8Array(2 + text.length);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}

/** Reads a close frame payload; an empty one means 1005. Throws 1002 for a bad code, 1007 for a non-UTF-8 reason. */
export function decodeClosePayload(payload: Uint8Array): CloseInfo {
  if (payload.length === 0) return { code: CloseCode.noStatus, reason: "" };
  if (payload.length === 1) throw new WebSocketProtocolError(CloseCode.protocolError, "Close payload of 1 byte");
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isSendableCloseCode(code)) throw new WebSocketProtocolError(CloseCode.protocolError, `Close code ${code}`);
  const reasonBytes = payload.subarray(2);
  if (!isUtf8(reasonBytes)) throw new WebSocketProtocolError(CloseCode.invalidPayload, "Close reason is not UTF-8");
  return { code, reason: new TextDecoder().decode(reasonBytes) };
}

/**
 * Codes a close frame may carry (Section 7.4): the defined ones except 1004-1006 and 1015, the later IANA
 * registrations 1012-1014, and 3000-4999 for libraries and applications.
 */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function isUtf8(bytes: Uint8Array): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
