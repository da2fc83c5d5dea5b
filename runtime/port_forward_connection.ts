/**
 * One connection of a port-forward session on the daemon's side (docs/port-forward-helper.md): what the reader of
 * its stream has not taken yet, and how much the helper's window still allows to be sent. Driven by
 * port_forward.ts, which owns the helper process and dispatches its frames here.
 * @module
 */
import { FailedPrecondition, InvalidArgument, Unavailable } from "../lib/errors.ts";
import {
  encodeFrame,
  encodeWindow,
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_FRAME_PAYLOAD,
  WINDOW_BYTES,
} from "./port_forward_frame.ts";

/** One TCP connection to a port in the pod. */
export interface PortConnection {
  /** The port in the pod. */
  readonly port: number;
  /**
   * What the pod sends: ends at the pod's EOF (or after {@link close}), errors when the connection fails (reset,
   * helper gone) with the helper's message. Cancelling it closes the connection.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /** Sends bytes; resolves once the helper may take more (its window), rejects once the connection is gone. */
  write(data: Uint8Array): Promise<void>;
  /** Ends the direction toward the pod (a TCP FIN, after earlier writes); reading goes on. */
  closeWrite(): Promise<void>;
  /** Drops the connection at once (pending writes reject, unread data is discarded). */
  close(): void;
}

/** Resolves waiters when notified. */
class Wakeup {
  #waiters: (() => void)[] = [];
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/**
 * The {@link PortConnection} of one connection id: its receive queue and send credit. The forwarder feeds it the
 * helper's frames through the `on*` methods, which throw InvalidArgument for a protocol violation.
 */
export class Connection implements PortConnection {
  readonly port: number;
  readonly id: number;
  readonly readable: ReadableStream<Uint8Array>;
  readonly #send: (frame: Uint8Array) => Promise<void>;
  readonly #opened: PromiseWithResolvers<PortConnection> = Promise.withResolvers();
  #isOpen = false;
  /** DATA received and not yet handed to a reader. */
  #chunks: Uint8Array[] = [];
  #unread = 0;
  #eof = false;
  #error: Error | undefined;
  /** close() was called. */
  #closed = false;
  /** CLOSED arrived: the id is free. */
  #gone = false;
  #writeEnded = false;
  #credit = WINDOW_BYTES;
  #sending: Promise<void> = Promise.resolve();
  readonly #wake = new Wakeup();

  /** `send` writes one frame to the helper (frames go out in call order). */
  constructor(opts: { id: number; port: number; send: (frame: Uint8Array) => Promise<void> }) {
    this.#send = opts.send;
    this.id = opts.id;
    this.port = opts.port;
    this.#opened.promise.catch(() => {});
    // highWaterMark 0: a chunk leaves the queue (and its WINDOW goes back) only when a reader asks for it.
    this.readable = new ReadableStream<Uint8Array>({
      pull: (controller) => this.#pull(controller),
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
  }

  /** Settles when OPENED (resolved) or ERROR/CLOSED (rejected) arrives first. */
  get opened(): Promise<PortConnection> {
    return this.#opened.promise;
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      if (this.#closed) return controller.close();
      const chunk = this.#chunks.shift();
      if (chunk !== undefined) {
        this.#unread -= chunk.byteLength;
        controller.enqueue(chunk);
        if (!this.#gone) this.#send(encodeWindow(this.id, chunk.byteLength)).catch(() => {});
        return;
      }
      if (this.#error) return controller.error(this.#error);
      if (this.#eof || this.#gone) return controller.close();
      await this.#wake.wait();
    }
  }

  write(data: Uint8Array): Promise<void> {
    // Framed at once: the frames are the copy that lets the caller reuse `data`, and no other is made.
    const frames: Uint8Array[] = [];
    for (let off = 0; off < data.byteLength; off += MAX_FRAME_PAYLOAD) {
      frames.push(encodeFrame(FrameType.DATA, this.id, data.subarray(off, off + MAX_FRAME_PAYLOAD)));
    }
    const p = this.#sending.then(() => this.#sendData(frames));
    this.#sending = p.catch(() => {});
    return p;
  }

  /** Sends DATA frames, each once the helper's window has room for all of it. */
  async #sendData(frames: Uint8Array[]): Promise<void> {
    for (const frame of frames) {
      const n = frame.byteLength - FRAME_HEADER_BYTES;
      for (;;) {
        this.#checkWritable();
        if (this.#credit >= n) break;
        await this.#wake.wait();
      }
      this.#credit -= n;
      await this.#send(frame);
    }
  }

  closeWrite(): Promise<void> {
    const p = this.#sending.then(() => {
      if (this.#writeEnded) return;
      this.#checkWritable();
      this.#writeEnded = true;
      return this.#send(encodeFrame(FrameType.CLOSE_WRITE, this.id));
    });
    this.#sending = p.catch(() => {});
    return p;
  }

  #checkWritable(): void {
    if (this.#error) throw this.#error;
    if (this.#closed || this.#gone) throw new FailedPrecondition(`connection to port ${this.port} is closed`);
    if (this.#writeEnded) throw new FailedPrecondition(`connection to port ${this.port}: write side already closed`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#chunks = [];
    if (!this.#gone) this.#send(encodeFrame(FrameType.CLOSE, this.id)).catch(() => {});
    this.#wake.notify();
  }

  onOpened(): void {
    if (this.#isOpen) throw new InvalidArgument(`OPENED for connection ${this.id} twice`);
    this.#isOpen = true;
    this.#opened.resolve(this);
  }

  onData(payload: Uint8Array): void {
    if (!this.#isOpen || this.#eof) throw new InvalidArgument(`DATA for connection ${this.id} out of order`);
    this.#unread += payload.byteLength;
    if (this.#unread > WINDOW_BYTES) {
      throw new InvalidArgument(`DATA for connection ${this.id} exceeds its window of ${WINDOW_BYTES} bytes`);
    }
    if (this.#closed) return;
    this.#chunks.push(payload);
    this.#wake.notify();
  }

  onCloseWrite(): void {
    if (!this.#isOpen || this.#eof) throw new InvalidArgument(`CLOSE_WRITE for connection ${this.id} out of order`);
    this.#eof = true;
    this.#wake.notify();
  }

  onWindow(bytes: number): void {
    this.#credit += bytes;
    if (this.#credit > WINDOW_BYTES) throw new InvalidArgument(`WINDOW for connection ${this.id} returns too much`);
    this.#wake.notify();
  }

  /** ERROR from the helper, or the forwarder failing as a whole. */
  fail(err: Error): void {
    this.#error ??= err;
    this.#opened.reject(this.#error);
    this.#wake.notify();
  }

  onClosed(): void {
    this.#gone = true;
    if (!this.#isOpen) this.fail(new Unavailable(`connection to port ${this.port} closed before it opened`));
    // Both directions ended cleanly, or close() asked for it; anything else lost data the reader must hear of.
    if (!this.#closed && !this.#eof) this.fail(new Unavailable(`connection to port ${this.port} was closed`));
    this.#wake.notify();
  }
}
