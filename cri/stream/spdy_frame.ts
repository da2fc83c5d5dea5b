/**
 * SPDY/3.1 framing (SPDY Protocol Draft 3.1, Sections 2.2 and 2.6): frame constants, the frame types as plain
 * values, {@link SpdyProtocolError}, and {@link encodeFrame}; `spdy_frame_parser.ts` turns bytes back into frames.
 * Pure: no I/O, no compression. The header blocks of SYN_STREAM, SYN_REPLY and HEADERS travel here still
 * compressed; `spdy_headers.ts` compresses them and `spdy_header_block.ts` gives them their name/value layout.
 * @module
 */
import { DavitError, InvalidArgument } from "../../lib/errors.ts";

/** The version field of every control frame: SPDY/3.1 is sent as 3 (Section 2.2.1). */
export const SPDY_VERSION = 3;
/** Every frame starts with an 8-byte header (Section 2.2). */
export const FRAME_HEADER_BYTES = 8;
/** The length field is 24 bits wide. */
export const MAX_FRAME_LENGTH = 0xff_ffff;
/** Stream IDs are 31 bits (Section 2.3.2). */
export const MAX_STREAM_ID = 0x7fff_ffff;
/** A flow control window never exceeds 2^31 - 1 (Section 2.6.8). */
export const MAX_WINDOW_BYTES = 0x7fff_ffff;
/** Initial stream and connection flow control windows (Section 2.6.8, "Initial Flow Control Window Size"). */
export const DEFAULT_WINDOW_BYTES = 65_536;
/** Default cap on a received DATA frame's payload. */
export const DEFAULT_MAX_DATA_BYTES = 1 << 20;
/** Default cap on a received control frame's payload; the spec requires at least 8192 (Section 2.2.1). */
export const DEFAULT_MAX_CONTROL_BYTES = 64 << 10;

/** Control frame types (Section 2.6). */
export const ControlType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** FLAG_FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS (Sections 2.2.2, 2.6.1). */
export const FLAG_FIN = 0x01;
/** FLAG_UNIDIRECTIONAL on SYN_STREAM (Section 2.6.1). */
export const FLAG_UNIDIRECTIONAL = 0x02;
/** FLAG_SETTINGS_CLEAR_SETTINGS on SETTINGS (Section 2.6.4). */
export const FLAG_SETTINGS_CLEAR = 0x01;

/** RST_STREAM status codes (Section 2.6.3). */
export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

/** GOAWAY status codes (Section 2.6.6). */
export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

/** SETTINGS IDs (Section 2.6.4). */
export const SettingId = {
  UPLOAD_BANDWIDTH: 1,
  DOWNLOAD_BANDWIDTH: 2,
  ROUND_TRIP_TIME: 3,
  MAX_CONCURRENT_STREAMS: 4,
  CURRENT_CWND: 5,
  DOWNLOAD_RETRANS_RATE: 6,
  INITIAL_WINDOW_SIZE: 7,
  CLIENT_CERTIFICATE_VECTOR_SIZE: 8,
} as const;

/** The name of an RST_STREAM status, for messages: `CANCEL`, or `status 42` for one the spec does not define. */
export function rstStatusName(status: number): string {
  const entry = Object.entries(RstStatus).find(([, v]) => v === status);
  return entry ? entry[0] : `status ${status}`;
}

/** What was wrong with the bytes a peer sent. */
export type SpdyProblem =
  | "version"
  | "frame-length"
  | "frame-too-large"
  | "stream-id"
  | "field"
  | "header-block"
  | "header-block-too-large"
  | "compression";

/**
 * A peer broke SPDY/3.1. `streamId` is set when the problem is confined to one stream (a stream error,
 * Section 2.4.2); without it the whole session is unusable (a session error, Section 2.4.1).
 */
export class SpdyProtocolError extends DavitError {
  readonly problem: SpdyProblem;
  readonly streamId: number | undefined;
  constructor(problem: SpdyProblem, message: string, options?: ErrorOptions & { streamId?: number }) {
    super("InvalidArgument", message, options);
    this.problem = problem;
    this.streamId = options?.streamId;
  }
}

/** DATA (Section 2.2.2). */
export interface DataFrame {
  type: "data";
  streamId: number;
  flags: number;
  data: Uint8Array;
}
/** SYN_STREAM (Section 2.6.1); `headerBlock` is compressed. */
export interface SynStreamFrame {
  type: "syn_stream";
  streamId: number;
  associatedStreamId: number;
  /** 0 (highest) to 7. */
  priority: number;
  slot: number;
  flags: number;
  headerBlock: Uint8Array;
}
/** SYN_REPLY (Section 2.6.2); `headerBlock` is compressed. */
export interface SynReplyFrame {
  type: "syn_reply";
  streamId: number;
  flags: number;
  headerBlock: Uint8Array;
}
/** RST_STREAM (Section 2.6.3). */
export interface RstStreamFrame {
  type: "rst_stream";
  streamId: number;
  status: number;
}
/** One SETTINGS ID/value pair: 8 bits of flags, a 24-bit ID, a 32-bit value. */
export interface SettingsEntry {
  flags: number;
  id: number;
  value: number;
}
/** SETTINGS (Section 2.6.4). */
export interface SettingsFrame {
  type: "settings";
  flags: number;
  entries: SettingsEntry[];
}
/** PING (Section 2.6.5). */
export interface PingFrame {
  type: "ping";
  id: number;
}
/** GOAWAY (Section 2.6.6). */
export interface GoAwayFrame {
  type: "goaway";
  lastGoodStreamId: number;
  status: number;
}
/** HEADERS (Section 2.6.7); `headerBlock` is compressed. */
export interface HeadersFrame {
  type: "headers";
  streamId: number;
  flags: number;
  headerBlock: Uint8Array;
}
/** WINDOW_UPDATE (Section 2.6.8); stream 0 is the connection's window. */
export interface WindowUpdateFrame {
  type: "window_update";
  streamId: number;
  delta: number;
}
/** A control frame of a type this module does not know (such as the deprecated CREDENTIAL); receivers ignore it. */
export interface UnknownControlFrame {
  type: "unknown";
  controlType: number;
  flags: number;
  payload: Uint8Array;
}

/** Any SPDY/3.1 frame. */
export type SpdyFrame =
  | DataFrame
  | SynStreamFrame
  | SynReplyFrame
  | RstStreamFrame
  | SettingsFrame
  | PingFrame
  | GoAwayFrame
  | HeadersFrame
  | WindowUpdateFrame
  | UnknownControlFrame;

function checkRange(what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgument(`Cannot encode a SPDY frame: ${what} ${value} is outside ${min}..${max}`);
  }
}

function frameBytes(first: number, second: number, flags: number, payloadLength: number): [Uint8Array, DataView] {
  checkRange("payload length", payloadLength, 0, MAX_FRAME_LENGTH);
  const out = new Uint8Array(FRAME_HEADER_BYTES + payloadLength);
  const view = new DataView(out.buffer);
  view.setUint16(0, first);
  view.setUint16(2, second);
  view.setUint32(4, payloadLength);
  view.setUint8(4, flags);
  return [out, view];
}

function control(type: number, flags: number, payloadLength: number): [Uint8Array, DataView] {
  return frameBytes(0x8000 | SPDY_VERSION, type, flags, payloadLength);
}

/** Serialises one frame. Throws {@link InvalidArgument} for a field out of its range. */
export function encodeFrame(frame: SpdyFrame): Uint8Array {
  if (frame.type !== "settings" && frame.type !== "ping" && frame.type !== "goaway" && frame.type !== "unknown") {
    checkRange("stream ID", frame.streamId, frame.type === "window_update" ? 0 : 1, MAX_STREAM_ID);
  }
  if ("flags" in frame) checkRange("flags", frame.flags, 0, 0xff);
  switch (frame.type) {
    case "data": {
      const [out] = frameBytes(frame.streamId >>> 16, frame.streamId & 0xffff, frame.flags, frame.data.length);
      out.set(frame.data, FRAME_HEADER_BYTES);
      return out;
    }
    case "syn_stream": {
      checkRange("associated stream ID", frame.associatedStreamId, 0, MAX_STREAM_ID);
      checkRange("priority", frame.priority, 0, 7);
      checkRange("slot", frame.slot, 0, 0xff);
      const [out, view] = control(ControlType.SYN_STREAM, frame.flags, 10 + frame.headerBlock.length);
      view.setUint32(8, frame.streamId);
      view.setUint32(12, frame.associatedStreamId);
      view.setUint8(16, frame.priority << 5);
      view.setUint8(17, frame.slot);
      out.set(frame.headerBlock, 18);
      return out;
    }
    case "syn_reply":
    case "headers": {
      const type = frame.type === "syn_reply" ? ControlType.SYN_REPLY : ControlType.HEADERS;
      const [out, view] = control(type, frame.flags, 4 + frame.headerBlock.length);
      view.setUint32(8, frame.streamId);
      out.set(frame.headerBlock, 12);
      return out;
    }
    case "rst_stream": {
      // Status 0 is invalid (Section 2.6.3), and Go's framer drops the connection on it.
      checkRange("RST_STREAM status", frame.status, 1, 0xffff_ffff);
      const [out, view] = control(ControlType.RST_STREAM, 0, 8);
      view.setUint32(8, frame.streamId);
      view.setUint32(12, frame.status);
      return out;
    }
    case "settings": {
      const [out, view] = control(ControlType.SETTINGS, frame.flags, 4 + 8 * frame.entries.length);
      view.setUint32(8, frame.entries.length);
      frame.entries.forEach((e, i) => {
        checkRange("setting flags", e.flags, 0, 0xff);
        checkRange("setting ID", e.id, 0, 0xff_ffff);
        checkRange("setting value", e.value, 0, 0xffff_ffff);
        view.setUint32(12 + 8 * i, e.id);
        view.setUint8(12 + 8 * i, e.flags);
        view.setUint32(16 + 8 * i, e.value);
      });
      return out;
    }
    case "ping": {
      checkRange("PING ID", frame.id, 1, 0xffff_ffff);
      const [out, view] = control(ControlType.PING, 0, 4);
      view.setUint32(8, frame.id);
      return out;
    }
    case "goaway": {
      checkRange("last good stream ID", frame.lastGoodStreamId, 0, MAX_STREAM_ID);
      checkRange("GOAWAY status", frame.status, 0, 0xffff_ffff);
      const [out, view] = control(ControlType.GOAWAY, 0, 8);
      view.setUint32(8, frame.lastGoodStreamId);
      view.setUint32(12, frame.status);
      return out;
    }
    case "window_update": {
      checkRange("window delta", frame.delta, 1, MAX_WINDOW_BYTES);
      const [out, view] = control(ControlType.WINDOW_UPDATE, 0, 8);
      view.setUint32(8, frame.streamId);
      view.setUint32(12, frame.delta);
      return out;
    }
    case "unknown": {
      checkRange("control frame type", frame.controlType, 0, 0xffff);
      const [out] = control(frame.controlType, frame.flags, frame.payload.length);
      out.set(frame.payload, FRAME_HEADER_BYTES);
      return out;
    }
  }
}
