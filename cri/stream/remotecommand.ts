/**
 * The facts of Kubernetes' remote command and port-forward protocols that both transports share (SPDY streams and
 * WebSocket channels): protocol names and their negotiation, stream types, the final Status written to the error
 * stream, terminal resize messages, and the WebSocket channel framing. Pure.
 *
 * Facts from Kubernetes' kubelet streaming server and client-go: SPDY clients list the versions they speak in
 * `X-Stream-Protocol-Version` headers; WebSocket clients list subprotocols in `Sec-WebSocket-Protocol`.
 * @module
 */

/** SPDY remote command versions davit speaks, most preferred first (v5 is v4 over SPDY). */
export const SPDY_REMOTECOMMAND_PROTOCOLS = [
  "v5.channel.k8s.io",
  "v4.channel.k8s.io",
  "v3.channel.k8s.io",
  "v2.channel.k8s.io",
  "channel.k8s.io",
] as const;

/** The SPDY port-forward protocol. */
export const SPDY_PORTFORWARD_PROTOCOL = "portforward.k8s.io";

/** WebSocket subprotocols for exec and attach, most preferred first. */
export const WS_REMOTECOMMAND_PROTOCOLS = [
  "v5.channel.k8s.io",
  "v4.channel.k8s.io",
  "v4.base64.channel.k8s.io",
  "channel.k8s.io",
  "base64.channel.k8s.io",
] as const;

/** WebSocket subprotocols for port-forward. */
export const WS_PORTFORWARD_PROTOCOLS = ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"] as const;

/** The header naming a SPDY client's protocol versions, and the server's choice. */
export const PROTOCOL_HEADER = "X-Stream-Protocol-Version";
/** Sent with a refused negotiation: what the server accepts. */
export const ACCEPTED_PROTOCOLS_HEADER = "X-Accepted-Stream-Protocol-Versions";

/** SPDY stream headers (lowercase, as SPDY/3 requires). */
export const STREAM_TYPE_HEADER = "streamtype";
export const PORT_HEADER = "port";
export const REQUEST_ID_HEADER = "requestid";

/** Stream types of exec/attach and port-forward. */
export type StreamType = "error" | "stdin" | "stdout" | "stderr" | "resize" | "data";

/** WebSocket channels of exec and attach. */
export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** The version rules a session follows, derived from the negotiated protocol. */
export interface ProtocolRules {
  /** Terminal resize is carried (v3 and later). */
  resize: boolean;
  /** The final status is a JSON Status object (v4 and later); before, a failure is plain text, success nothing. */
  jsonStatus: boolean;
  /** WebSocket only: messages are text with a digit channel and base64 data. */
  base64: boolean;
  /** WebSocket v5: the client may signal a closed channel with a message on channel 255. */
  closeSignal: boolean;
  /** SPDY v1: the error stream is reset rather than written on success (and stdin is closed at once). */
  legacyV1: boolean;
}

/** Rules for a negotiated remote command protocol ("" means a client that negotiated nothing: v1). */
export function protocolRules(protocol: string): ProtocolRules {
  const base64 = protocol.includes("base64");
  switch (protocol) {
    case "v5.channel.k8s.io":
      return { resize: true, jsonStatus: true, base64: false, closeSignal: true, legacyV1: false };
    case "v4.channel.k8s.io":
    case "v4.base64.channel.k8s.io":
      return { resize: true, jsonStatus: true, base64, closeSignal: false, legacyV1: false };
    case "v3.channel.k8s.io":
      return { resize: true, jsonStatus: false, base64: false, closeSignal: false, legacyV1: false };
    case "v2.channel.k8s.io":
      return { resize: false, jsonStatus: false, base64: false, closeSignal: false, legacyV1: false };
    default:
      // channel.k8s.io, base64.channel.k8s.io, or nothing negotiated. Over WebSocket these still carry resize.
      return { resize: false, jsonStatus: false, base64, closeSignal: false, legacyV1: true };
  }
}

/** The outcome of a negotiation: the chosen protocol, or why none was. */
export type Negotiation = { ok: true; protocol: string } | { ok: false; message: string };

/**
 * Chooses a protocol: the first of the server's list (its preference) that the client offered. A client that
 * offered nothing gets "" (the legacy protocol) when `allowNone`. Values may be repeated headers or comma lists.
 */
export function negotiate(offered: readonly string[], supported: readonly string[], allowNone = true): Negotiation {
  const client = offered.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
  if (client.length === 0) {
    return allowNone ? { ok: true, protocol: "" } : { ok: false, message: "the client offered no protocol" };
  }
  for (const p of supported) if (client.includes(p)) return { ok: true, protocol: p };
  return {
    ok: false,
    message: `unable to negotiate protocol: client supports [${client.join(" ")}], server accepts [${
      supported.join(" ")
    }]`,
  };
}

/** A Kubernetes `metav1.Status`, as the error stream carries it. */
export interface K8sStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes: { reason: string; message: string }[] };
}

/** The status of a command that ended with exit code 0. */
export function successStatus(): K8sStatus {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success" };
}

/** The status of a command that ended with a non-zero exit code: reason NonZeroExitCode, the code as a cause. */
export function exitCodeStatus(exitCode: number): K8sStatus {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: `command terminated with non-zero exit code: exit status ${exitCode}`,
    reason: "NonZeroExitCode",
    details: { causes: [{ reason: "ExitCode", message: String(exitCode) }] },
  };
}

/** The status of a session that failed for another reason (the command could not run, the container is gone). */
export function errorStatus(message: string): K8sStatus {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason: "InternalError",
    code: 500,
  };
}

/** The bytes written to the error stream for `status`, or undefined when the protocol writes nothing. */
export function encodeStatus(rules: ProtocolRules, status: K8sStatus): Uint8Array | undefined {
  if (rules.jsonStatus) return new TextEncoder().encode(JSON.stringify(status));
  if (status.status === "Success") return undefined;
  return new TextEncoder().encode(status.message ?? "error");
}

/** A terminal size from a resize message. */
export interface TerminalSize {
  cols: number;
  rows: number;
}

/** Longest resize message kept while waiting for its end; a longer one is an error. */
const MAX_RESIZE_MESSAGE = 4096;

/**
 * Reads the resize stream: JSON objects `{"Width":w,"Height":h}` one after another (client-go writes them with a
 * JSON encoder, so they may arrive split or several per chunk). Objects are delimited by brace depth outside
 * strings. Sizes that are not whole numbers in 0..65535 are skipped.
 */
export class ResizeDecoder {
  #buf = "";
  readonly #dec = new TextDecoder();

  /** Feeds bytes; returns the sizes completed by them. Throws on a message longer than 4 KiB. */
  push(data: Uint8Array): TerminalSize[] {
    this.#buf += this.#dec.decode(data, { stream: true });
    const out: TerminalSize[] = [];
    for (;;) {
      const start = this.#buf.indexOf("{");
      if (start < 0) {
        this.#buf = "";
        return out;
      }
      const end = objectEnd(this.#buf, start);
      if (end < 0) {
        this.#buf = this.#buf.slice(start);
        if (this.#buf.length > MAX_RESIZE_MESSAGE) throw new Error("resize message longer than 4096 bytes");
        return out;
      }
      const text = this.#buf.slice(start, end + 1);
      this.#buf = this.#buf.slice(end + 1);
      const size = parseSize(text);
      if (size) out.push(size);
    }
  }
}

function objectEnd(s: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

function parseSize(text: string): TerminalSize | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const ok = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 65535;
  if (!ok(o.Width) || !ok(o.Height)) return undefined;
  return { cols: o.Width, rows: o.Height };
}

/** A decoded WebSocket channel message. */
export interface ChannelMessage {
  channel: number;
  data: Uint8Array;
}

/** Encodes `data` on `channel`: a binary message with a channel byte, or text with a digit and base64. */
export function encodeChannel(
  rules: Pick<ProtocolRules, "base64">,
  channel: number,
  data: Uint8Array,
): Uint8Array | string {
  if (rules.base64) return String.fromCharCode(48 + channel) + toBase64(data);
  const out = new Uint8Array(data.length + 1);
  out[0] = channel;
  out.set(data, 1);
  return out;
}

/** Decodes a client message; throws on an empty message or bad base64. */
export function decodeChannel(
  rules: Pick<ProtocolRules, "base64">,
  msg: { binary: boolean; data: Uint8Array },
): ChannelMessage {
  if (msg.data.length === 0) throw new Error("empty channel message");
  if (!rules.base64 || msg.binary) return { channel: msg.data[0]!, data: msg.data.subarray(1) };
  const text = new TextDecoder().decode(msg.data);
  return { channel: text.charCodeAt(0) - 48, data: fromBase64(text.slice(1)) };
}

function toBase64(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Parses a port for forwarding: a decimal 1..65535. Throws naming the value. */
export function parsePort(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text)) throw new Error(`unable to parse ${JSON.stringify(text)} as a port`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw new Error(`port ${JSON.stringify(text)} must be between 1 and 65535`);
  return n;
}
