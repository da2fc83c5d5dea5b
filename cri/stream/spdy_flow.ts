/**
 * SPDY/3.1 flow control (SPDY Protocol Draft 3.1, Section 2.6.8) for one session: the windows this side sends
 * within (per stream and for the connection, grown by the peer's WINDOW_UPDATE and moved by its SETTINGS), the
 * windows it grants, and the WINDOW_UPDATEs that reopen them.
 *
 * What the peer does decides the mode. A SPDY/3.1 peer opens with SETTINGS or WINDOW_UPDATE (the connection
 * header); then both directions keep windows. Go's moby/spdystream (kubectl, the kubelet) sends neither, never
 * sends WINDOW_UPDATE and ignores ours; with a peer whose first frame is anything else, windows are ignored when
 * sending and replaced by TCP back-pressure when receiving: the session stops reading the connection while a
 * stream holds a window's worth of unread data.
 * @module
 */
import {
  DEFAULT_WINDOW_BYTES,
  MAX_WINDOW_BYTES,
  SettingId,
  type SettingsEntry,
  type SpdyFrame,
  SpdyProtocolError,
} from "./spdy_frame.ts";
import type { SpdyStream } from "./spdy_stream.ts";

/** The connection window this side grants, at least; SPDY/3.1 starts it at 64 KiB. */
const CONNECTION_WINDOW = 1 << 20;

/** The windows of one session. */
export class FlowControl {
  /** The window this side grants each stream: the most unread data a stream may hold. */
  readonly window: number;
  readonly #connectionWindow: number;
  readonly #send: (frame: SpdyFrame) => void;
  #mode: "unknown" | "windows" | "back-pressure";
  #peerInitialWindow = DEFAULT_WINDOW_BYTES;
  #sendWindow = DEFAULT_WINDOW_BYTES;
  #receiveWindow: number;
  #receiveUnacked = 0;
  #waiters: (() => void)[] = [];

  /** `enabled: false` never announces windows and treats every peer as one without flow control. */
  constructor(opts: { window: number; enabled: boolean; send: (frame: SpdyFrame) => void }) {
    if (!Number.isInteger(opts.window) || opts.window < 1024 || opts.window > MAX_WINDOW_BYTES) {
      throw new RangeError(`SPDY initial window of ${opts.window} bytes is outside 1024..${MAX_WINDOW_BYTES}`);
    }
    this.window = opts.window;
    this.#connectionWindow = Math.max(opts.window, CONNECTION_WINDOW);
    this.#receiveWindow = this.#connectionWindow;
    this.#send = opts.send;
    this.#mode = opts.enabled ? "unknown" : "back-pressure";
  }

  /** The peer's window for new streams: a new stream's send window. */
  get peerInitialWindow(): number {
    return this.#peerInitialWindow;
  }

  /** The frames that open the connection: this side's window for new streams, and the larger connection window. */
  connectionHeader(): SpdyFrame[] {
    if (this.#mode === "back-pressure") return [];
    const frames: SpdyFrame[] = [{
      type: "settings",
      flags: 0,
      entries: [{ flags: 0, id: SettingId.INITIAL_WINDOW_SIZE, value: this.window }],
    }];
    const delta = this.#connectionWindow - DEFAULT_WINDOW_BYTES;
    if (delta > 0) frames.push({ type: "window_update", streamId: 0, delta });
    return frames;
  }

  /** Sees each frame from the peer; the first decides the mode. */
  observe(frame: SpdyFrame): void {
    if (this.#mode !== "unknown") return;
    this.#mode = frame.type === "settings" || frame.type === "window_update" ? "windows" : "back-pressure";
    this.wake();
  }

  /**
   * Counts a DATA payload against the connection window, which every DATA frame uses, even one in error; reopens
   * it as data arrives (stream windows bound what is buffered). Throws {@link SpdyProtocolError} on an overrun.
   */
  receiveOnConnection(bytes: number): void {
    if (this.#mode !== "windows") return;
    this.#receiveWindow -= bytes;
    if (this.#receiveWindow < 0) throw new SpdyProtocolError("field", "SPDY peer overran the connection window");
    this.#receiveUnacked += bytes;
    if (this.#receiveUnacked < this.#connectionWindow / 2) return;
    const delta = this.#receiveUnacked;
    this.#receiveUnacked = 0;
    this.#receiveWindow += delta;
    this.#send({ type: "window_update", streamId: 0, delta });
  }

  /** Counts a DATA payload against `stream`'s window; false when it overran it (a FLOW_CONTROL_ERROR). */
  receiveOnStream(stream: SpdyStream, bytes: number): boolean {
    if (this.#mode !== "windows") return true;
    stream.receiveWindow -= bytes;
    return stream.receiveWindow >= 0;
  }

  /** With a peer that ignores windows, waits while `stream` holds a window's worth of unread data. */
  async holdBack(stream: SpdyStream): Promise<void> {
    if (this.#mode === "back-pressure" && stream.queuedBytes >= this.window) await stream.drained(this.window);
  }

  /**
   * The consumer read `bytes` of `stream`: once half a window is read, a WINDOW_UPDATE returns it, so unread
   * data never exceeds one window.
   */
  consumed(stream: SpdyStream, bytes: number): void {
    if (this.#mode !== "windows" || stream.remoteFin || stream.terminated) return;
    stream.unacked += bytes;
    if (stream.unacked < this.window / 2) return;
    const delta = stream.unacked;
    stream.unacked = 0;
    stream.receiveWindow += delta;
    this.#send({ type: "window_update", streamId: stream.id, delta });
  }

  /** Applies the peer's SETTINGS: INITIAL_WINDOW_SIZE moves every open stream's window by the change. */
  settings(entries: SettingsEntry[], streams: Iterable<SpdyStream>): void {
    if (this.#mode === "back-pressure") return;
    // Only the first value of an ID counts (Section 2.6.4).
    const entry = entries.find((e) => e.id === SettingId.INITIAL_WINDOW_SIZE);
    if (!entry) return;
    if (entry.value > MAX_WINDOW_BYTES) {
      throw new SpdyProtocolError("field", `SPDY SETTINGS initial window ${entry.value} exceeds 2^31-1`);
    }
    // Windows may go below zero; sending waits until updates bring them back (Section 2.6.8).
    const delta = entry.value - this.#peerInitialWindow;
    this.#peerInitialWindow = entry.value;
    for (const s of streams) s.sendWindow += delta;
    this.wake();
  }

  /**
   * Applies a WINDOW_UPDATE to `stream`, or to the connection when `stream` is null. Returns false when a
   * stream's window passed 2^31-1 (a FLOW_CONTROL_ERROR); throws {@link SpdyProtocolError} for the connection's.
   */
  windowUpdate(stream: SpdyStream | null, delta: number): boolean {
    if (this.#mode === "back-pressure") return true;
    if (stream === null) {
      this.#sendWindow += delta;
      if (this.#sendWindow > MAX_WINDOW_BYTES) {
        throw new SpdyProtocolError("field", "SPDY WINDOW_UPDATE grows the connection window past 2^31-1");
      }
    } else {
      stream.sendWindow += delta;
      if (stream.sendWindow > MAX_WINDOW_BYTES) return false;
    }
    this.wake();
    return true;
  }

  /**
   * Waits until `stream` may send, then takes up to `want` bytes from its window and the connection's. Throws
   * the stream's write error once it cannot write any more.
   */
  async acquire(stream: SpdyStream, want: number): Promise<number> {
    for (;;) {
      const err = stream.writeError();
      if (err) throw err;
      if (this.#mode === "back-pressure") return want;
      const n = Math.min(want, stream.sendWindow, this.#sendWindow);
      if (n > 0) {
        stream.sendWindow -= n;
        this.#sendWindow -= n;
        return n;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Lets waiting writers look again (windows grew, or a stream or the session ended). */
  wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
