/**
 * One WebSocket connection after the opening handshake, for either side: whole messages in, messages out with
 * writes kept in order, automatic pongs, and the close handshake (RFC 6455 Section 7). The wire format is in
 * websocket_frame.ts; the handshake in websocket.ts.
 * @module
 */
import { Unavailable } from "../../lib/errors.ts";
import type { Duplex } from "./http1.ts";
import {
  CloseCode,
  type CloseInfo,
  decodeClosePayload,
  encodeClosePayload,
  encodeFrame,
  type Frame,
  FrameDecoder,
  MessageAssembler,
  Opcode,
  type WebSocketMessage,
  WebSocketProtocolError,
} from "./websocket_frame.ts";

/** Options for a {@link WebSocketConn}. */
export interface WebSocketConnOptions {
  /** `server` expects masked frames and sends unmasked ones; `client` the reverse. */
  role: "server" | "client";
  /** Largest message, all fragments together (default 16 MiB); a larger one closes the connection with 1009. */
  maxMessageBytes?: number;
  /** How long to wait for the peer's close reply, and for a client the server's end of TCP (default 5000 ms). */
  closeTimeoutMs?: number;
  /** Messages queued for a slow reader before the connection stops reading (default 16). */
  queuedMessages?: number;
  /** The clock for `lastActivity` (default `Date.now`). */
  now?: () => number;
}

/** Where the close handshake is. */
export type WebSocketState = "open" | "closing" | "closed";

const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * A WebSocket over `{ readable, writable, close? }`. It reads as long as `messages` is being consumed (or its
 * queue has room), and closes the connection (`close()` when given, else the streams) once the close handshake
 * is over, the peer broke the protocol, or the connection failed.
 *
 * `closed` resolves, never rejects, with: the code and reason of the peer's close frame, be it the peer's own
 * close or its reply to ours (RFC 6455 Section 7.1.5; 1005 when it had no code); the code this side failed the
 * connection with (1002, 1007, 1009) and why; or 1006 when the connection ended without a close frame or the peer
 * did not answer ours in time. This side answers a close by echoing its code and reason.
 */
export class WebSocketConn {
  /** Whole messages in arrival order; ends when the connection closes. Cancelling it drops later messages. */
  readonly messages: ReadableStream<WebSocketMessage>;
  /** Settles once the connection is closed. */
  readonly closed: Promise<CloseInfo>;

  readonly #conn: Duplex;
  readonly #role: "server" | "client";
  readonly #max: number;
  readonly #closeTimeoutMs: number;
  readonly #now: () => number;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #resolveClosed!: (info: CloseInfo) => void;
  #controller!: ReadableStreamDefaultController<WebSocketMessage>;
  #state: WebSocketState = "open";
  #discard = false;
  #lastActivity: number;
  #wake: (() => void) | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #peerClose: CloseInfo | undefined;

  constructor(conn: Duplex, options: WebSocketConnOptions) {
    this.#conn = conn;
    this.#role = options.role;
    this.#max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.#now = options.now ?? Date.now;
    this.#lastActivity = this.#now();
    this.#reader = conn.readable.getReader();
    this.#writer = conn.writable.getWriter();
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.messages = new ReadableStream<WebSocketMessage>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#wakeReader(),
      cancel: () => {
        this.#discard = true;
        this.#wakeReader();
      },
    }, { highWaterMark: options.queuedMessages ?? 16 });
    this.#readLoop().catch(() => this.#teardown({ code: CloseCode.abnormal, reason: "" }));
  }

  /** When a frame was last received or sent (ms, by the `now` clock). */
  get lastActivity(): number {
    return this.#lastActivity;
  }

  /** `closing` once this side sent a close frame and waits for the reply. */
  get state(): WebSocketState {
    return this.#state;
  }

  /** Sends a text message (a string) or a binary one. Rejects with {@link Unavailable} once closing or closed. */
  async send(data: Uint8Array | string): Promise<void> {
    if (this.#state !== "open") throw new Unavailable(`Cannot send on a WebSocket that is ${this.#state}`);
    const text = typeof data === "string";
    const payload = text ? new TextEncoder().encode(data) : data;
    await this.#write({ fin: true, opcode: text ? Opcode.text : Opcode.binary, payload });
  }

  /** Sends a ping (at most 125 bytes of payload); the peer's pong only refreshes `lastActivity`. */
  async ping(payload: Uint8Array = new Uint8Array()): Promise<void> {
    if (this.#state !== "open") throw new Unavailable(`Cannot ping a WebSocket that is ${this.#state}`);
    await this.#write({ fin: true, opcode: Opcode.ping, payload });
  }

  /**
   * Starts the close handshake (RFC 6455 Section 7.1.2) and returns `closed`. Messages arriving meanwhile are
   * dropped; without a reply within the close timeout the connection is dropped with 1006. Throws RangeError for
   * a code a close frame may not carry or a reason over 123 bytes.
   */
  close(code: number = CloseCode.normal, reason = ""): Promise<CloseInfo> {
    if (this.#state !== "open") return this.closed;
    const payload = encodeClosePayload(code, reason);
    this.#state = "closing";
    this.#closeTimer = setTimeout(() => this.#teardown({ code: CloseCode.abnormal, reason: "" }), this.#closeTimeoutMs);
    this.#write({ fin: true, opcode: Opcode.close, payload }).catch(() => {});
    // The reply must be read even when nobody reads `messages`.
    this.#wakeReader();
    return this.closed;
  }

  /** Drops the connection without a close handshake; `closed` reports 1006. */
  abort(): void {
    this.#teardown({ code: CloseCode.abnormal, reason: "" });
  }

  /** Closes with 1000 (or the handshake already under way) and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder({ role: this.#role, maxPayloadBytes: this.#max });
    const assembler = new MessageAssembler(this.#max);
    try {
      while (this.#state !== "closed") {
        await this.#demand();
        const { done, value } = await this.#reader.read();
        if (done) break;
        this.#lastActivity = this.#now();
        // After the close handshake a client only waits for the server to end TCP (Section 7.1.1).
        if (this.#peerClose) continue;
        decoder.push(value);
        for (let frame = decoder.next(); frame; frame = decoder.next()) {
          await this.#onFrame(frame, assembler);
          if (this.#peerClose) break;
        }
      }
    } catch (err) {
      if (err instanceof WebSocketProtocolError) {
        await this.#fail(err.code, err.message);
        return;
      }
      // The connection failed under us: reported as 1006 below.
    }
    this.#teardown(this.#peerClose ?? { code: CloseCode.abnormal, reason: "" });
  }

  async #onFrame(frame: Frame, assembler: MessageAssembler): Promise<void> {
    switch (frame.opcode) {
      case Opcode.ping:
        if (this.#state === "open") {
          this.#write({ fin: true, opcode: Opcode.pong, payload: frame.payload }).catch(() => {});
        }
        return;
      case Opcode.pong:
        return;
      case Opcode.close:
        await this.#onClose(decodeClosePayload(frame.payload));
        return;
      default: {
        const message = assembler.add(frame);
        if (message && this.#state === "open" && !this.#discard) this.#controller.enqueue(message);
      }
    }
  }

  // Section 5.5.1: answer a close with a close (echoing its code and reason) unless this side sent one first; then the
  // server ends TCP, and the client waits for the server to do so.
  async #onClose(info: CloseInfo): Promise<void> {
    this.#peerClose = info;
    if (this.#state === "open") {
      this.#state = "closing";
      const payload = info.code === CloseCode.noStatus ? new Uint8Array() : encodeClosePayload(info.code, info.reason);
      await this.#writeBounded({ fin: true, opcode: Opcode.close, payload });
    }
    this.#endMessages();
    if (this.#role === "server") {
      this.#teardown(info);
    } else {
      clearTimeout(this.#closeTimer);
      this.#closeTimer = setTimeout(() => this.#teardown(info), this.#closeTimeoutMs);
    }
  }

  // Section 7.1.7: fail the connection: a close frame with the reason if possible, then end TCP.
  async #fail(code: number, reason: string): Promise<void> {
    const info = { code, reason: reason.slice(0, 100) };
    if (this.#state === "open") {
      this.#state = "closing";
      await this.#writeBounded({ fin: true, opcode: Opcode.close, payload: encodeClosePayload(code, info.reason) });
    }
    this.#teardown(info);
  }

  #write(frame: Frame): Promise<void> {
    this.#lastActivity = this.#now();
    const mask = this.#role === "client" ? crypto.getRandomValues(new Uint8Array(4)) : undefined;
    // One write per frame, and the writer queues writes in call order, so frames never interleave.
    return this.#writer.write(encodeFrame(frame, mask)).catch((err) => {
      this.#teardown({ code: CloseCode.abnormal, reason: "" });
      throw new Unavailable("Cannot write to the WebSocket: the connection is gone", { cause: err });
    });
  }

  // A close frame on the way out must not wait forever on a peer that stopped reading.
  async #writeBounded(frame: Frame): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, this.#closeTimeoutMs));
    try {
      await Promise.race([this.#write(frame).catch(() => {}), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // Waits until `messages` has room, unless messages are being dropped anyway.
  async #demand(): Promise<void> {
    while (this.#state === "open" && !this.#discard && (this.#controller.desiredSize ?? 1) <= 0) {
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #endMessages(): void {
    try {
      this.#controller.close();
    } catch {
      // Already closed or cancelled.
    }
  }

  #teardown(info: CloseInfo): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    clearTimeout(this.#closeTimer);
    this.#endMessages();
    this.#wakeReader();
    if (this.#conn.close) {
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    } else {
      this.#writer.close().catch(() => {});
      this.#reader.cancel().catch(() => {});
    }
    this.#resolveClosed(info);
  }
}
