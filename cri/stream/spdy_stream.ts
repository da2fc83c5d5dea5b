/**
 * One SPDY/3.1 stream (SPDY Protocol Draft 3.1, Section 2.3) as its user sees it: the peer's DATA as a
 * `ReadableStream` that is read on demand (so that flow control windows reopen only as the consumer reads),
 * `write` and `closeWrite` for our half, `reset` for RST_STREAM, and `closed`. The protocol decisions live in
 * `spdy_session.ts`, which drives the stream through the methods marked internal and provides a
 * {@link StreamHost} for sending.
 * @module
 */
import { DavitError, FailedPrecondition } from "../../lib/errors.ts";
import { FLAG_FIN, RstStatus, rstStatusName, type SpdyFrame } from "./spdy_frame.ts";
import { encodeHeaderBlock, type SpdyHeaderInput, type SpdyHeaders } from "./spdy_header_block.ts";

/** The stream was reset, by the peer (`byPeer`) or by this side, with an RST_STREAM `status`. */
export class SpdyStreamReset extends DavitError {
  readonly status: number;
  readonly byPeer: boolean;
  constructor(streamId: number, status: number, byPeer: boolean) {
    const who = byPeer ? "the peer" : "this side";
    super("Unavailable", `SPDY stream ${streamId} was reset by ${who} (${rstStatusName(status)})`);
    this.status = status;
    this.byPeer = byPeer;
  }
}

/** What a stream needs from its session. Internal to the SPDY modules. */
export interface StreamHost {
  /** Sends a frame without a header block. */
  send(frame: SpdyFrame): Promise<void>;
  /** Compresses an uncompressed header block and sends it in a SYN_REPLY or HEADERS frame. */
  sendHeaders(type: "syn_reply" | "headers", streamId: number, flags: number, block: Uint8Array): Promise<void>;
  /** Waits until `stream` may send some DATA; returns how many bytes (at most `want`), already deducted. */
  acquireSendWindow(stream: SpdyStream, want: number): Promise<number>;
  /** Tells the session that the consumer took `bytes` out of `stream`, which may reopen the peer's window. */
  consumed(stream: SpdyStream, bytes: number): void;
  /** The stream is finished (both halves closed, or reset): forget it. */
  forget(stream: SpdyStream): void;
  /** Why the session can no longer carry frames, once it cannot. */
  readonly failure: Error | undefined;
  /** Largest DATA payload to send in one frame. */
  readonly maxSendFrameBytes: number;
  /** Largest uncompressed header block to send. */
  readonly maxHeaderBytes: number;
}

/** How the session creates a stream. Internal. */
export interface StreamInit {
  id: number;
  /** True when this side sent the SYN_STREAM. */
  ours: boolean;
  headers: SpdyHeaders;
  priority: number;
  sendWindow: number;
  receiveWindow: number;
}

/** A SPDY/3.1 stream. Created by a session: from a peer's SYN_STREAM, or by `SpdySession.openStream`. */
export class SpdyStream {
  /** The stream ID: odd when the client opened it, even when the server did. */
  readonly id: number;
  /** Headers from the peer: its SYN_STREAM's, or its SYN_REPLY's for a stream this side opened; HEADERS add more. */
  readonly headers: SpdyHeaders;
  /** 0 (highest) to 7, as the SYN_STREAM gave it. */
  readonly priority: number;
  /** DATA from the peer. Closes after the peer's FIN; errors on a reset or when the session ends first. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Resolves once both halves are closed, the stream was reset, or the session ended. Never rejects. */
  readonly closed: Promise<void>;

  /** @internal True when this side sent the SYN_STREAM. */
  readonly ours: boolean;
  /** @internal A SYN_REPLY went (peer's stream) or came (ours). */
  replied = false;
  /** @internal This side sent FIN (or cannot send: a unidirectional stream from the peer). */
  localFin = false;
  /** @internal The peer sent FIN. */
  remoteFin = false;
  /** @internal Bytes this side may still send (the peer's window); negative after a shrinking SETTINGS. */
  sendWindow: number;
  /** @internal Bytes the peer may still send before a WINDOW_UPDATE from this side. */
  receiveWindow: number;
  /** @internal Bytes consumed and not yet returned to the peer by a WINDOW_UPDATE. */
  unacked = 0;

  readonly #host: StreamHost;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #readableDone = false;
  #canceled = false;
  #wake: (() => void)[] = [];
  #ended: Error | undefined;
  #finished = false;
  #resolveClosed!: () => void;
  #writes: Promise<unknown> = Promise.resolve();
  #closeWrite: Promise<void> | undefined;
  #reply: { resolve: (s: SpdyStream) => void; reject: (e: Error) => void } | undefined;

  constructor(host: StreamHost, init: StreamInit) {
    this.#host = host;
    this.id = init.id;
    this.ours = init.ours;
    this.headers = init.headers;
    this.priority = init.priority;
    this.sendWindow = init.sendWindow;
    this.receiveWindow = init.receiveWindow;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => this.#pull(),
      cancel: () => this.#cancel(),
    }, { highWaterMark: 0 });
  }

  /** Sends SYN_REPLY on a stream the peer opened (Section 2.6.2); with `fin`, also closes this side. */
  async reply(headers: SpdyHeaderInput = {}, opts: { fin?: boolean } = {}): Promise<void> {
    if (this.ours) throw new FailedPrecondition(`Cannot reply on SPDY stream ${this.id}: this side opened it`);
    if (this.replied) throw new FailedPrecondition(`Cannot reply on SPDY stream ${this.id}: it was replied to`);
    this.#throwIfEnded();
    const block = encodeHeaderBlock(headers, { maxBytes: this.#host.maxHeaderBytes });
    this.replied = true;
    if (opts.fin) this.localFin = true;
    await this.#host.sendHeaders("syn_reply", this.id, opts.fin ? FLAG_FIN : 0, block);
    if (opts.fin) this.#checkFinished();
  }

  /**
   * Sends `data` as DATA frames, within the peer's flow control windows (waiting for WINDOW_UPDATE when they are
   * shut). Writes go out in call order. Rejects once the stream was reset, this side closed it, or the session
   * ended; on a stream the peer opened, {@link reply} must come first.
   */
  write(data: Uint8Array): Promise<void> {
    const result = this.#writes.then(() => this.#send(data));
    this.#writes = result.catch(() => {});
    return result;
  }

  /** Closes this side with an empty DATA frame carrying FIN (a SYN_REPLY with FIN if none was sent). Idempotent. */
  closeWrite(): Promise<void> {
    this.#closeWrite ??= this.#writes.then(async () => {
      if (this.localFin || this.#ended || this.#host.failure) return;
      if (!this.ours && !this.replied) {
        await this.reply({}, { fin: true }).catch(() => {});
        return;
      }
      this.localFin = true;
      await this.#host.send({ type: "data", streamId: this.id, flags: FLAG_FIN, data: new Uint8Array() }).catch(
        () => {},
      );
      this.#checkFinished();
    });
    return this.#closeWrite;
  }

  /** Sends RST_STREAM (default CANCEL) and ends the stream here; a no-op once it is finished. */
  reset(status: number = RstStatus.CANCEL): void {
    if (this.#finished || this.#host.failure) return;
    this.#host.send({ type: "rst_stream", streamId: this.id, status }).catch(() => {});
    this.#end(new SpdyStreamReset(this.id, status, false));
  }

  async #send(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      this.#throwIfUnwritable();
      const n = await this.#host.acquireSendWindow(this, Math.min(data.length - at, this.#host.maxSendFrameBytes));
      this.#throwIfUnwritable();
      await this.#host.send({ type: "data", streamId: this.id, flags: 0, data: data.subarray(at, at + n) });
      at += n;
    }
  }

  /** @internal Why a write cannot proceed, if it cannot. */
  writeError(): Error | undefined {
    if (this.#ended) return this.#ended;
    if (this.#host.failure) return this.#host.failure;
    if (this.localFin) return new FailedPrecondition(`Cannot write to SPDY stream ${this.id}: this side closed it`);
    if (!this.ours && !this.replied) {
      return new FailedPrecondition(`Cannot write to SPDY stream ${this.id}: reply() must come first`);
    }
    return undefined;
  }

  #throwIfUnwritable(): void {
    const err = this.writeError();
    if (err) throw err;
  }

  #throwIfEnded(): void {
    const err = this.#ended ?? this.#host.failure;
    if (err) throw err;
  }

  /** @internal Bytes received and not yet read. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** @internal True once reset or ended with the session. */
  get terminated(): boolean {
    return this.#ended !== undefined;
  }

  /** @internal DATA payload from the peer. */
  receiveData(data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.#canceled || this.#readableDone) {
      // Nobody will read it: count it as read so that the peer's window reopens.
      this.#host.consumed(this, data.length);
      return;
    }
    this.#queue.push(data);
    this.#queued += data.length;
    this.#notify();
  }

  /** @internal The peer's FIN. */
  receiveFin(): void {
    this.remoteFin = true;
    this.#notify();
    this.#checkFinished();
  }

  /** @internal Headers from a SYN_REPLY (ours) or HEADERS frame. */
  addHeaders(headers: SpdyHeaders): void {
    for (const [name, value] of Object.entries(headers)) {
      Object.defineProperty(this.headers, name, { value, enumerable: true, writable: true, configurable: true });
    }
  }

  /** @internal The peer's SYN_REPLY on a stream this side opened. */
  receiveReply(headers: SpdyHeaders): void {
    this.replied = true;
    this.addHeaders(headers);
    this.#reply?.resolve(this);
    this.#reply = undefined;
  }

  /** @internal Settles `SpdySession.openStream`: resolves on SYN_REPLY, rejects when the stream ends first. */
  awaitReply(resolve: (s: SpdyStream) => void, reject: (e: Error) => void): void {
    this.#reply = { resolve, reject };
  }

  /** @internal The peer's RST_STREAM. */
  receiveReset(status: number): void {
    this.#end(new SpdyStreamReset(this.id, status, true));
  }

  /**
   * @internal Ends the stream with `err`: a reset, a stream error, or (with `keepData`) the session's end, after
   * which data the peer had finished sending stays readable.
   */
  end(err: Error, opts: { keepData?: boolean } = {}): void {
    this.#end(err, opts.keepData === true && this.remoteFin);
  }

  /** @internal Resolves once fewer than `limit` bytes wait to be read, or the stream ended. */
  async drained(limit: number): Promise<void> {
    while (this.#queued >= limit && !this.#canceled && !this.#readableDone) {
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  async #pull(): Promise<void> {
    for (;;) {
      if (this.#readableDone) return;
      const chunk = this.#queue.shift();
      if (chunk) {
        this.#queued -= chunk.length;
        this.#controller.enqueue(chunk);
        this.#host.consumed(this, chunk.length);
        if (this.#queue.length === 0 && this.remoteFin) this.#closeReadable();
        this.#notify();
        return;
      }
      if (this.remoteFin) {
        this.#closeReadable();
        return;
      }
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
  }

  #closeReadable(): void {
    if (this.#readableDone) return;
    this.#readableDone = true;
    this.#controller.close();
  }

  #cancel(): void {
    this.#canceled = true;
    this.#readableDone = true;
    const dropped = this.#queued;
    this.#queue = [];
    this.#queued = 0;
    if (dropped > 0) this.#host.consumed(this, dropped);
    this.#notify();
  }

  #end(err: Error, keepData = false): void {
    if (this.#finished) return;
    this.#ended = err;
    const reply = this.#reply;
    this.#reply = undefined;
    reply?.reject(err);
    if (!this.#readableDone && !keepData) {
      this.#readableDone = true;
      this.#queue = [];
      this.#queued = 0;
      this.#controller.error(err);
    }
    this.#notify();
    this.#finish();
  }

  #checkFinished(): void {
    if (this.localFin && this.remoteFin) this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#host.forget(this);
    this.#resolveClosed();
  }
}
