/**
 * A SPDY/3.1 session (SPDY Protocol Draft 3.1, Section 2) over a byte duplex such as a `Deno.Conn`: one reader
 * loop that parses frames and acts on them in order, one writer queue, one zlib context per direction, the
 * stream table, PING, GOAWAY, SETTINGS and flow control. Either role: a "server" accepts the peer's odd-numbered
 * streams (what the streaming server does for kubectl), a "client" opens them (what davit's tests do to act as
 * kubectl). Streams are {@link SpdyStream}s.
 *
 * Flow control, which follows what the peer does, is `spdy_flow.ts`'s.
 * @module
 */
import { DeadlineExceeded, ResourceExhausted, Unavailable } from "../../lib/errors.ts";
import { FlowControl } from "./spdy_flow.ts";
import {
  DEFAULT_MAX_CONTROL_BYTES,
  DEFAULT_MAX_DATA_BYTES,
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  GoAwayStatus,
  MAX_STREAM_ID,
  RstStatus,
  type SpdyFrame,
  SpdyProtocolError,
} from "./spdy_frame.ts";
import { SpdyFrameParser } from "./spdy_frame_parser.ts";
import {
  decodeHeaderBlock,
  DEFAULT_MAX_HEADER_BYTES,
  encodeHeaderBlock,
  type SpdyHeaderInput,
} from "./spdy_header_block.ts";
import { SpdyFrameWriter } from "./spdy_frame_writer.ts";
import { SpdyHeaderDecompressor } from "./spdy_headers.ts";
import { PingTracker } from "./spdy_ping.ts";
import { SpdyStream, type StreamHost } from "./spdy_stream.ts";

/**
 * The connection a session runs over; a `Deno.Conn` is one. The session owns it: it closes the writable and
 * cancels the readable when it ends. When there is `setNoDelay` (TCP), the session turns Nagle's algorithm off:
 * it writes frame by frame, and small frames held back for a delayed ACK would stall flow control and
 * interactive sessions for tens of milliseconds each. When there is `close`, the session uses it if queued
 * frames cannot be flushed within 2 seconds of the end, so that a peer that stopped reading cannot keep the
 * connection open.
 */
export interface SpdyDuplex {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  setNoDelay?: (noDelay?: boolean) => void;
  close?: () => void;
}

/** How a session behaves. */
export interface SpdySessionOptions {
  /** "server": the peer opens odd stream IDs. "client": this side does. */
  role: "server" | "client";
  /** Bytes already read from the connection (past an HTTP upgrade's head), parsed before anything else. */
  initialBytes?: Uint8Array;
  /** Called for each stream the peer opens; without it they are refused. A rejection resets the stream. */
  onStream?: (stream: SpdyStream) => void | Promise<void>;
  /** Largest DATA payload accepted; default 1 MiB. */
  maxFrameBytes?: number;
  /** Largest control frame accepted; default 64 KiB. */
  maxControlFrameBytes?: number;
  /** Largest header block, decompressed, either way; default 256 KiB. */
  maxHeaderBytes?: number;
  /** This side's receive window per stream: unread data a stream may hold; default 256 KiB. */
  initialWindowBytes?: number;
  /** False: announce no windows and ignore the peer's, like moby/spdystream (for tests that mimic kubectl). */
  flowControl?: boolean;
}

const DEFAULT_WINDOW = 256 << 10;
const SEND_FRAME_BYTES = 16 << 10;
const PING_TIMEOUT_MS = 30_000;
const OPEN_TIMEOUT_MS = 30_000;

/** A SPDY/3.1 session. Starts reading the connection at construction; see the module doc for flow control. */
export class SpdySession {
  /** Resolves when the connection has ended, for whatever reason, and is released. Never rejects. */
  readonly closed: Promise<void>;
  readonly #role: "server" | "client";
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #out: SpdyFrameWriter;
  readonly #parser: SpdyFrameParser;
  readonly #inflate: SpdyHeaderDecompressor;
  readonly #onStream: SpdySessionOptions["onStream"];
  readonly #maxHeaderBytes: number;
  readonly #streams = new Map<number, SpdyStream>();
  readonly #pings: PingTracker;
  readonly #host: StreamHost;
  readonly #flow: FlowControl;
  #nextId: number;
  #lastPeerId = 0;
  #goAwaySent = false;
  #peerGoneAway = false;
  #closing = false;
  #failure: Error | undefined;
  #lastRead = Date.now();
  #lastRst = "";
  #resolveClosed!: () => void;

  constructor(conn: SpdyDuplex, opts: SpdySessionOptions) {
    this.#role = opts.role;
    this.#nextId = opts.role === "client" ? 1 : 2;
    this.#pings = new PingTracker(opts.role);
    this.#onStream = opts.onStream;
    this.#maxHeaderBytes = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.#flow = new FlowControl({
      window: opts.initialWindowBytes ?? DEFAULT_WINDOW,
      enabled: opts.flowControl !== false,
      send: (frame) => this.#send(frame).catch(() => {}),
    });
    this.#parser = new SpdyFrameParser({
      maxDataBytes: opts.maxFrameBytes ?? DEFAULT_MAX_DATA_BYTES,
      maxControlBytes: opts.maxControlFrameBytes ?? DEFAULT_MAX_CONTROL_BYTES,
    });
    this.#inflate = new SpdyHeaderDecompressor({ maxBytes: this.#maxHeaderBytes });
    try {
      conn.setNoDelay?.(true);
    } catch {
      // A connection already closed fails on its first read instead.
    }
    this.#reader = conn.readable.getReader();
    this.#out = new SpdyFrameWriter(conn.writable, {
      onFailure: (err) => this.#shutdown(err),
      hardClose: () => conn.close?.(),
    });
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#host = this.#makeHost();
    for (const frame of this.#flow.connectionHeader()) this.#send(frame).catch(() => {});
    // #run settles every error itself; the catch only keeps a bug from becoming an unhandled rejection.
    this.#run(opts.initialBytes).catch(() => {});
  }

  /** Milliseconds since the epoch of the last frame received or sent (for idle timeouts). */
  get lastActivity(): number {
    return Math.max(this.#lastRead, this.#out.lastWrite);
  }

  /**
   * Opens a stream with SYN_STREAM and resolves on the peer's SYN_REPLY. Rejects when the peer resets it, sent
   * GOAWAY, the session ends, or `timeoutMs` (default 30 s) passes first (the stream is then cancelled). Header
   * names must be lower case (see `encodeHeaderBlock`).
   */
  async openStream(
    headers: SpdyHeaderInput,
    opts: { fin?: boolean; timeoutMs?: number; priority?: number } = {},
  ): Promise<SpdyStream> {
    if (this.#failure) throw this.#failure;
    if (this.#closing || this.#goAwaySent || this.#peerGoneAway) {
      throw new Unavailable("Cannot open a SPDY stream: the session is going away");
    }
    if (this.#nextId > MAX_STREAM_ID) throw new ResourceExhausted("Cannot open a SPDY stream: stream IDs are used up");
    const block = encodeHeaderBlock(headers, { maxBytes: this.#maxHeaderBytes });
    const id = this.#nextId;
    this.#nextId += 2;
    const stream = new SpdyStream(this.#host, {
      id,
      ours: true,
      headers: {},
      priority: opts.priority ?? 0,
      sendWindow: this.#flow.peerInitialWindow,
      receiveWindow: this.#flow.window,
    });
    if (opts.fin) stream.localFin = true;
    this.#streams.set(id, stream);
    const timeoutMs = opts.timeoutMs ?? OPEN_TIMEOUT_MS;
    return await new Promise<SpdyStream>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new DeadlineExceeded(`SPDY stream ${id} got no SYN_REPLY within ${timeoutMs} ms`));
        stream.reset(RstStatus.CANCEL);
      }, timeoutMs);
      stream.awaitReply((s) => {
        clearTimeout(timer);
        resolve(s);
      }, (err) => {
        clearTimeout(timer);
        reject(err);
      });
      const flags = opts.fin ? FLAG_FIN : 0;
      this.#sendHeaders(
        (headerBlock) => ({
          type: "syn_stream",
          streamId: id,
          associatedStreamId: 0,
          priority: stream.priority,
          slot: 0,
          flags,
          headerBlock,
        }),
        block,
      ).catch((err) => stream.end(err));
    });
  }

  /** Sends a PING and resolves with the round trip in milliseconds; rejects on timeout or the session's end. */
  ping(opts: { timeoutMs?: number } = {}): Promise<number> {
    if (this.#failure) return Promise.reject(this.#failure);
    return this.#pings.start((id) => this.#send({ type: "ping", id }), opts.timeoutMs ?? PING_TIMEOUT_MS);
  }

  /** Sends GOAWAY (once) and accepts no more streams; open streams carry on. */
  goAway(status: number = GoAwayStatus.OK): Promise<void> {
    if (this.#goAwaySent || this.#failure) return Promise.resolve();
    this.#goAwaySent = true;
    return this.#send({ type: "goaway", lastGoodStreamId: this.#lastPeerId, status });
  }

  /** Says GOAWAY, ends every stream and releases the connection. Idempotent; resolves as {@link closed} does. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.goAway().catch(() => {});
      this.#shutdown(new Unavailable("SPDY session closed"));
    }
    return this.closed;
  }

  #makeHost(): StreamHost {
    // deno-lint-ignore no-this-alias
    const session = this;
    return {
      send: (frame) => this.#send(frame),
      sendHeaders: (type, streamId, flags, block) =>
        this.#sendHeaders((headerBlock) => ({ type, streamId, flags, headerBlock }), block),
      acquireSendWindow: (stream, want) => this.#flow.acquire(stream, want),
      consumed: (stream, bytes) => {
        if (!this.#failure) this.#flow.consumed(stream, bytes);
      },
      forget: (stream) => {
        if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
        this.#flow.wake();
      },
      get failure() {
        return session.#failure;
      },
      maxSendFrameBytes: SEND_FRAME_BYTES,
      maxHeaderBytes: this.#maxHeaderBytes,
    };
  }

  async #run(initialBytes: Uint8Array | undefined): Promise<void> {
    try {
      if (initialBytes && initialBytes.length > 0) await this.#feed(initialBytes);
      while (!this.#failure) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        await this.#feed(value);
      }
      this.#shutdown(new Unavailable("SPDY connection closed by the peer"));
    } catch (err) {
      if (err instanceof SpdyProtocolError) this.#sessionError(err);
      else this.#shutdown(new Unavailable("SPDY connection failed", { cause: err }));
    }
  }

  async #feed(bytes: Uint8Array): Promise<void> {
    this.#lastRead = Date.now();
    for (const frame of this.#parser.push(bytes)) {
      if (this.#failure) return;
      this.#flow.observe(frame);
      try {
        await this.#handle(frame);
      } catch (err) {
        if (!(err instanceof SpdyProtocolError) || err.streamId === undefined) throw err;
        this.#streamError(err.streamId, RstStatus.PROTOCOL_ERROR, err);
      }
    }
  }

  async #handle(frame: SpdyFrame): Promise<void> {
    switch (frame.type) {
      case "data":
        return await this.#onData(frame.streamId, frame.data, (frame.flags & FLAG_FIN) !== 0);
      case "syn_stream": {
        // Every header block goes through the shared zlib state, even one whose stream is refused (Section 2.4.1).
        const raw = await this.#inflate.decompress(frame.headerBlock);
        if (this.#goAwaySent) return; // Section 2.6.6: new streams are ignored after GOAWAY.
        const id = frame.streamId;
        if (id % 2 !== (this.#role === "server" ? 1 : 0) || id <= this.#lastPeerId) {
          throw new SpdyProtocolError("stream-id", `SPDY SYN_STREAM for stream ${id} after ${this.#lastPeerId}`);
        }
        this.#lastPeerId = id;
        const stream = new SpdyStream(this.#host, {
          id,
          ours: false,
          headers: decodeHeaderBlock(raw, { streamId: id }),
          priority: frame.priority,
          sendWindow: this.#flow.peerInitialWindow,
          receiveWindow: this.#flow.window,
        });
        this.#streams.set(id, stream);
        if (frame.flags & FLAG_UNIDIRECTIONAL) stream.localFin = true;
        if (frame.flags & FLAG_FIN) stream.receiveFin();
        if (!this.#onStream) return stream.reset(RstStatus.REFUSED_STREAM);
        try {
          const accepted = this.#onStream(stream);
          if (accepted instanceof Promise) accepted.catch(() => stream.reset(RstStatus.INTERNAL_ERROR));
        } catch {
          stream.reset(RstStatus.INTERNAL_ERROR);
        }
        return;
      }
      case "syn_reply":
      case "headers": {
        const raw = await this.#inflate.decompress(frame.headerBlock);
        const stream = this.#streams.get(frame.streamId);
        if (!stream) return this.#rst(frame.streamId, RstStatus.INVALID_STREAM);
        const headers = decodeHeaderBlock(raw, { streamId: frame.streamId });
        if (frame.type === "syn_reply") {
          if (!stream.ours) {
            throw new SpdyProtocolError("field", `SPDY SYN_REPLY on stream ${stream.id}, which the peer opened`, {
              streamId: stream.id,
            });
          }
          if (stream.replied) return this.#streamError(stream.id, RstStatus.STREAM_IN_USE);
          stream.receiveReply(headers);
        } else {
          if (stream.remoteFin) return this.#streamError(stream.id, RstStatus.STREAM_ALREADY_CLOSED);
          stream.addHeaders(headers);
        }
        if (frame.flags & FLAG_FIN) stream.receiveFin();
        return;
      }
      case "rst_stream":
        // Never answered with another RST_STREAM (Section 2.4.2).
        return this.#streams.get(frame.streamId)?.receiveReset(frame.status);
      case "settings":
        return this.#flow.settings(frame.entries, this.#streams.values());
      case "ping": {
        if (this.#pings.isOurs(frame.id)) return this.#pings.answer(frame.id);
        this.#send(frame).catch(() => {}); // a question: echoed as it came
        return;
      }
      case "goaway": {
        this.#peerGoneAway = true;
        // Streams past the last good ID were never processed (Section 2.6.6).
        for (const s of [...this.#streams.values()]) {
          if (s.ours && s.id > frame.lastGoodStreamId) {
            s.end(new Unavailable(`SPDY stream ${s.id} was refused: the peer sent GOAWAY`));
          }
        }
        return;
      }
      case "window_update": {
        if (frame.streamId === 0) return void this.#flow.windowUpdate(null, frame.delta);
        // A late update for a finished stream is harmless.
        const stream = this.#streams.get(frame.streamId);
        if (stream && !this.#flow.windowUpdate(stream, frame.delta)) {
          this.#streamError(stream.id, RstStatus.FLOW_CONTROL_ERROR);
        }
        return;
      }
      case "unknown":
        return; // Section 2.2.1 leaves room for new types; ignoring them is the safe reading.
    }
  }

  async #onData(id: number, data: Uint8Array, fin: boolean): Promise<void> {
    this.#flow.receiveOnConnection(data.length);
    const stream = this.#streams.get(id);
    if (!stream) return this.#rst(id, RstStatus.INVALID_STREAM);
    if (stream.ours && !stream.replied) {
      throw new SpdyProtocolError("field", `SPDY DATA on stream ${id} before its SYN_REPLY`, { streamId: id });
    }
    if (stream.remoteFin) return this.#streamError(id, RstStatus.STREAM_ALREADY_CLOSED);
    if (!this.#flow.receiveOnStream(stream, data.length)) return this.#streamError(id, RstStatus.FLOW_CONTROL_ERROR);
    stream.receiveData(data);
    if (fin) stream.receiveFin();
    await this.#flow.holdBack(stream);
  }

  // A stream error (Section 2.4.2): RST_STREAM to the peer, and the stream ends here.
  #streamError(id: number, status: number, cause?: Error): void {
    const stream = this.#streams.get(id);
    this.#rst(id, status);
    stream?.end(cause ?? new SpdyProtocolError("field", `SPDY stream ${id} failed: RST_STREAM ${status} sent`));
  }

  #rst(id: number, status: number): void {
    // A burst of frames for one dead stream gets one RST_STREAM (Section 2.4.2 allows coalescing).
    const key = `${id}/${status}`;
    if (key === this.#lastRst) return;
    this.#lastRst = key;
    this.#send({ type: "rst_stream", streamId: id, status }).catch(() => {});
  }

  // A session error (Section 2.4.1): GOAWAY with the last stream we accepted, then close.
  #sessionError(err: Error): void {
    if (!this.#goAwaySent && !this.#failure) {
      this.#goAwaySent = true;
      this.#send({ type: "goaway", lastGoodStreamId: this.#lastPeerId, status: GoAwayStatus.PROTOCOL_ERROR })
        .catch(() => {});
    }
    this.#shutdown(err);
  }

  #send(frame: SpdyFrame): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return this.#out.send(frame);
  }

  #sendHeaders(build: (headerBlock: Uint8Array) => SpdyFrame, block: Uint8Array): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return this.#out.sendHeaders(build, block);
  }

  #shutdown(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    for (const s of [...this.#streams.values()]) s.end(err, { keepData: true });
    this.#streams.clear();
    this.#pings.failAll(err);
    this.#flow.wake();
    this.#inflate.close();
    this.#release().catch(() => {}).finally(() => this.#resolveClosed());
  }

  async #release(): Promise<void> {
    await this.#out.close();
    await this.#reader.cancel().catch(() => {});
  }
}
