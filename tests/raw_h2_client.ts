/**
 * The project's own tiny HTTP/2 client for tests: unary gRPC calls over a unix socket with a chosen `:authority`,
 * sent the way grpc-go sends them (preface, SETTINGS, HEADERS with the gRPC pseudo-headers and headers, one DATA
 * frame with the 5-octet length prefix), so tests can reproduce what old kubelets and crictl put on the wire.
 * One call at a time per connection; several calls on one connection share the HPACK dynamic table.
 * @module
 */
import { type HeaderField, HpackDecoder, HpackEncoder, type HpackEncoderOptions } from "../cri/hpack.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  errorCodeName,
  Flag,
  FRAME_HEADER_LENGTH,
  FrameType,
  headerBlockFrames,
  PREFACE,
  readFrameHeader,
  Setting,
} from "../cri/h2_frame.ts";

/**
 * How header fields are encoded: `grpc-go` indexes every field and Huffman-encodes strings when shorter (as
 * golang.org/x/net/http2/hpack does), so a second call on a connection is mostly dynamic-table references;
 * `huffman` always Huffman-encodes without indexing; `plain` sends raw literals without indexing.
 */
export type RawH2Mode = "grpc-go" | "huffman" | "plain";

/** One unary call. */
export interface RawCallOptions {
  /** The `:authority` to send, e.g. `/run/davit/davit.sock`, `%2Frun%2Fdavit%2Fdavit.sock` or `localhost`. */
  authority: string;
  /** The method path, e.g. `/runtime.v1.RuntimeService/Version`. */
  path: string;
  /** The request message (framed with the gRPC length prefix here). */
  body: Uint8Array;
  /** Extra request headers (lower-case names). */
  headers?: HeaderField[];
  /** Gives up after this long (default 5 s). */
  timeoutMs?: number;
}

/** What came back. */
export interface RawCallResult {
  /** `:status` of the response headers. */
  httpStatus: number;
  /** `grpc-status` from the trailers (or a trailers-only response); undefined when absent. */
  grpcStatus: number | undefined;
  /** `grpc-message`, percent-decoded. */
  grpcMessage: string;
  /** The first response message without its length prefix (empty when none). */
  body: Uint8Array;
  headers: HeaderField[];
  trailers: HeaderField[];
}

interface Pending {
  streamId: number;
  headers?: HeaderField[];
  trailers?: HeaderField[];
  data: Uint8Array[];
  resolve: (r: RawCallResult) => void;
  reject: (e: Error) => void;
}

const GRPC_USER_AGENT = "grpc-go/1.58.3";

/** A raw HTTP/2 connection to a gRPC server on a unix socket. */
export class RawH2Client {
  readonly #conn: Deno.UnixConn;
  readonly #encoder: HpackEncoder;
  readonly #decoder = new HpackDecoder();
  readonly #reading: Promise<void>;
  #nextStreamId = 1;
  #maxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  #pending: Pending | undefined;
  #closedError: Error | undefined;
  #block: { streamId: number; flags: number; parts: Uint8Array[] } | undefined;
  #writing: Promise<void> = Promise.resolve();
  /** Encoded size of each request header block sent, in order (shows dynamic-table reuse in `grpc-go` mode). */
  readonly sentBlockSizes: number[] = [];

  private constructor(conn: Deno.UnixConn, mode: RawH2Mode) {
    this.#conn = conn;
    const opts: HpackEncoderOptions = mode === "grpc-go"
      ? { huffman: "auto", indexing: "incremental" }
      : { huffman: mode === "huffman" ? "always" : "never", indexing: "none" };
    this.#encoder = new HpackEncoder(opts);
    this.#reading = this.#readLoop();
  }

  /** Connects and sends the connection preface and an empty SETTINGS frame. */
  static async connect(socketPath: string, opts: { mode?: RawH2Mode } = {}): Promise<RawH2Client> {
    const conn = await Deno.connect({ transport: "unix", path: socketPath });
    const client = new RawH2Client(conn, opts.mode ?? "grpc-go");
    try {
      await client.#write(concat([PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0)]));
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  /** Performs one unary call; rejects on RST_STREAM, GOAWAY, connection loss or timeout. */
  async call(opts: RawCallOptions): Promise<RawCallResult> {
    if (this.#closedError) throw this.#closedError;
    if (this.#pending) throw new Error("RawH2Client: one call at a time");
    const streamId = this.#nextStreamId;
    this.#nextStreamId += 2;
    const fields: HeaderField[] = [
      { name: ":method", value: "POST" },
      { name: ":scheme", value: "http" },
      { name: ":path", value: opts.path },
      { name: ":authority", value: opts.authority },
      { name: "content-type", value: "application/grpc" },
      { name: "user-agent", value: GRPC_USER_AGENT },
      { name: "te", value: "trailers" },
      ...(opts.headers ?? []),
    ];
    const block = this.#encoder.encode(fields);
    this.sentBlockSizes.push(block.length);
    const message = new Uint8Array(5 + opts.body.length);
    new DataView(message.buffer).setUint32(1, opts.body.length);
    message.set(opts.body, 5);
    const { promise, resolve, reject } = Promise.withResolvers<RawCallResult>();
    this.#pending = { streamId, data: [], resolve, reject };
    const timer = setTimeout(
      () => this.#fail(new Error(`RawH2Client: no answer within ${opts.timeoutMs ?? 5000} ms`)),
      opts.timeoutMs ?? 5000,
    );
    try {
      // A failed write is not reported here: the reader then sees the connection end, with the server's GOAWAY
      // (the interesting reason) when one came first.
      this.#write(concat([
        headerBlockFrames(streamId, block, { maxFrameSize: this.#maxFrameSize }),
        ...dataFrames(streamId, message, this.#maxFrameSize),
      ])).catch(() => {});
      return await promise;
    } finally {
      clearTimeout(timer);
      this.#pending = undefined;
    }
  }

  /** Writes raw octets on the connection (for tests that send malformed frames). */
  writeRaw(bytes: Uint8Array): Promise<void> {
    return this.#write(bytes);
  }

  /** Resolves with the error that ended the connection (GOAWAY, reset or close), once it ends. */
  async closed(): Promise<Error> {
    await this.#reading;
    return this.#closedError ?? new Error("connection closed");
  }

  /** Closes the connection and waits for the reader to stop. */
  async close(): Promise<void> {
    if (!this.#closedError) this.#closedError = new Error("RawH2Client: closed");
    try {
      this.#conn.close();
    } catch {
      // Already closed by the reader.
    }
    await this.#reading;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // Writes are chained so that the reader's acks never interleave with a call's frames.
  #write(bytes: Uint8Array): Promise<void> {
    const next = this.#writing.then(async () => {
      for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
    });
    this.#writing = next.catch(() => {});
    return next;
  }

  #fail(err: Error): void {
    this.#closedError ??= err;
    this.#pending?.reject(err);
    this.#pending = undefined;
  }

  async #readLoop(): Promise<void> {
    let buf: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        buf = concat([buf, chunk.subarray(0, n)]);
        let pos = 0;
        while (buf.length - pos >= FRAME_HEADER_LENGTH) {
          const h = readFrameHeader(buf, pos);
          if (buf.length - pos < FRAME_HEADER_LENGTH + h.length) break;
          const payload = buf.slice(pos + FRAME_HEADER_LENGTH, pos + FRAME_HEADER_LENGTH + h.length);
          pos += FRAME_HEADER_LENGTH + h.length;
          this.#onFrame(h.type, h.flags, h.streamId, payload);
        }
        buf = buf.slice(pos);
      }
      this.#fail(new Error("connection closed by the server"));
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
    } finally {
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  #onFrame(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    switch (type) {
      case FrameType.SETTINGS:
        if (flags & Flag.ACK) return;
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          const id = view.getUint16(i);
          const value = view.getUint32(i + 2);
          if (id === Setting.MAX_FRAME_SIZE) this.#maxFrameSize = value;
          // The encoder must announce a smaller table before using it again (RFC 7541 Section 4.2).
          if (id === Setting.HEADER_TABLE_SIZE && value < 4096) this.#encoder.setMaxTableSize(value);
        }
        this.#control(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0));
        return;
      case FrameType.PING:
        if (!(flags & Flag.ACK)) this.#control(encodeFrame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY: {
        const code = view.getUint32(4);
        const debug = new TextDecoder().decode(payload.subarray(8));
        this.#fail(new Error(`GOAWAY ${errorCodeName(code)}${debug ? `: ${debug}` : ""}`));
        return;
      }
      case FrameType.RST_STREAM:
        if (this.#pending?.streamId === streamId) {
          this.#pending.reject(new Error(`RST_STREAM ${errorCodeName(view.getUint32(0))}`));
          this.#pending = undefined;
        }
        return;
      case FrameType.DATA: {
        let data = payload;
        if (flags & Flag.PADDED) data = payload.subarray(1, payload.length - payload[0]!);
        if (this.#pending?.streamId === streamId) this.#pending.data.push(data);
        if (payload.length > 0) this.#windowUpdate(streamId, payload.length, flags);
        if (flags & Flag.END_STREAM) this.#finish(streamId);
        return;
      }
      case FrameType.HEADERS: {
        let start = 0;
        let end = payload.length;
        if (flags & Flag.PADDED) {
          start = 1;
          end -= payload[0]!;
        }
        if (flags & Flag.PRIORITY) start += 5;
        this.#block = { streamId, flags, parts: [payload.subarray(start, end)] };
        if (flags & Flag.END_HEADERS) this.#onHeaderBlock();
        return;
      }
      case FrameType.CONTINUATION:
        if (!this.#block) throw new Error("CONTINUATION without HEADERS");
        this.#block.parts.push(payload);
        if (flags & Flag.END_HEADERS) this.#onHeaderBlock();
        return;
    }
  }

  // Acks and window updates: a failed write shows up as the connection's end in the reader, which keeps going so
  // that a GOAWAY already received is the reported reason.
  #control(frame: Uint8Array): void {
    this.#write(frame).catch(() => {});
  }

  #windowUpdate(streamId: number, n: number, flags: number): void {
    const inc = new Uint8Array(4);
    new DataView(inc.buffer).setUint32(0, n);
    const frames = [encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, inc)];
    if (!(flags & Flag.END_STREAM)) frames.push(encodeFrame(FrameType.WINDOW_UPDATE, 0, streamId, inc));
    this.#control(concat(frames));
  }

  #onHeaderBlock(): void {
    const block = this.#block!;
    this.#block = undefined;
    // Every block is decoded, whatever its stream, to keep the dynamic table in step.
    const { fields } = this.#decoder.decode(concat(block.parts));
    const p = this.#pending;
    if (p?.streamId === block.streamId) {
      if (!p.headers) p.headers = fields;
      else p.trailers = fields;
    }
    if (block.flags & Flag.END_STREAM) this.#finish(block.streamId);
  }

  #finish(streamId: number): void {
    const p = this.#pending;
    if (!p || p.streamId !== streamId) return;
    this.#pending = undefined;
    const headers = p.headers ?? [];
    // A trailers-only response carries grpc-status in its only header block.
    const trailers = p.trailers ?? headers;
    const get = (list: HeaderField[], name: string) => list.find((f) => f.name === name)?.value;
    const status = get(trailers, "grpc-status");
    const all = concat(p.data);
    const len = all.length >= 5 ? new DataView(all.buffer, all.byteOffset).getUint32(1) : 0;
    p.resolve({
      httpStatus: Number(get(headers, ":status") ?? 0),
      grpcStatus: status === undefined ? undefined : Number(status),
      grpcMessage: percentDecode(get(trailers, "grpc-message") ?? ""),
      body: all.slice(5, 5 + len),
      headers,
      trailers: p.trailers ?? [],
    });
  }
}

/** Connects, performs one call and closes. */
export async function rawUnaryCall(
  socketPath: string,
  opts: RawCallOptions & { mode?: RawH2Mode },
): Promise<RawCallResult> {
  const client = await RawH2Client.connect(socketPath, opts.mode ? { mode: opts.mode } : {});
  try {
    return await client.call(opts);
  } finally {
    await client.close();
  }
}

function dataFrames(streamId: number, message: Uint8Array, max: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let off = 0; off < message.length || off === 0; off += max) {
    const part = message.subarray(off, off + max);
    const last = off + max >= message.length;
    frames.push(encodeFrame(FrameType.DATA, last ? Flag.END_STREAM : 0, streamId, part));
  }
  return frames;
}

function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
