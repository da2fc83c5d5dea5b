/**
 * Test helpers for the SPDY session tests: connected byte duplex pairs (in memory and over loopback TCP) and a
 * raw peer that speaks frames directly, for driving a session with exact, and malformed, input.
 * @module
 */
import { encodeFrame, type SpdyFrame } from "./spdy_frame.ts";
import { SpdyFrameParser } from "./spdy_frame_parser.ts";
import { decodeHeaderBlock, encodeHeaderBlock, type SpdyHeaderInput, type SpdyHeaders } from "./spdy_header_block.ts";
import { SpdyHeaderCompressor, SpdyHeaderDecompressor } from "./spdy_headers.ts";
import type { SpdyDuplex } from "./spdy_session.ts";

/** Two duplexes connected to each other in memory, each direction buffering up to 64 KiB like a socket. */
export function memoryPair(): Promise<[SpdyDuplex, SpdyDuplex]> {
  const pipe = () =>
    new TransformStream<Uint8Array, Uint8Array>(
      {},
      new ByteLengthQueuingStrategy({ highWaterMark: 32 << 10 }),
      new ByteLengthQueuingStrategy({ highWaterMark: 32 << 10 }),
    );
  const ab = pipe();
  const ba = pipe();
  return Promise.resolve([{ readable: ba.readable, writable: ab.writable }, {
    readable: ab.readable,
    writable: ba.writable,
  }]);
}

/** Two ends of a loopback TCP connection. */
export async function tcpPair(): Promise<[SpdyDuplex, SpdyDuplex]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  const [server, client] = await Promise.all([listener.accept(), Deno.connect({ hostname: "127.0.0.1", port })]);
  return [server, client];
}

/** Concatenates everything a readable yields. */
export async function readAll(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of readable) chunks.push(c);
  return concat(chunks);
}

/** Concatenates byte arrays. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** `n` bytes of a repeating, position-dependent pattern, so that reordering or loss shows. */
export function pattern(n: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed + (i >> 8)) & 0xff);
}

/** A peer that reads and writes frames itself, with its own header compression contexts. */
export class RawPeer {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #parser = new SpdyFrameParser({ maxDataBytes: 16 << 20 });
  readonly #deflate = new SpdyHeaderCompressor();
  readonly #inflate = new SpdyHeaderDecompressor();
  #pending: SpdyFrame[] = [];

  constructor(conn: SpdyDuplex) {
    this.#reader = conn.readable.getReader();
    this.#writer = conn.writable.getWriter();
  }

  /** The next frame, or undefined at the end of the connection. */
  async next(): Promise<SpdyFrame | undefined> {
    while (this.#pending.length === 0) {
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.#pending.push(...this.#parser.push(value));
    }
    return this.#pending.shift();
  }

  /** The next frame of `type`, skipping SETTINGS and WINDOW_UPDATE (and `skip`); throws on another. */
  async expect<T extends SpdyFrame["type"]>(
    type: T,
    skip: SpdyFrame["type"][] = [],
  ): Promise<Extract<SpdyFrame, { type: T }>> {
    for (;;) {
      const f = await this.next();
      if (f?.type === type) return f as Extract<SpdyFrame, { type: T }>;
      if (f && (f.type === "settings" || f.type === "window_update" || skip.includes(f.type))) continue;
      throw new Error(`expected a ${type} frame, got ${f ? JSON.stringify({ ...f, data: undefined }) : "the end"}`);
    }
  }

  /** Reads until the connection ends; returns the frames seen. */
  async rest(): Promise<SpdyFrame[]> {
    const frames: SpdyFrame[] = [];
    for (let f = await this.next(); f; f = await this.next()) frames.push(f);
    return frames;
  }

  /** Sends a frame. */
  send(frame: SpdyFrame): Promise<void> {
    return this.#writer.write(encodeFrame(frame));
  }

  /** Sends raw bytes. */
  raw(bytes: Uint8Array): Promise<void> {
    return this.#writer.write(bytes);
  }

  /** Compresses headers with this peer's context. */
  compress(headers: SpdyHeaderInput): Promise<Uint8Array> {
    return this.#deflate.compress(encodeHeaderBlock(headers));
  }

  /** Decompresses and decodes a header block received from the session. */
  async headers(block: Uint8Array): Promise<SpdyHeaders> {
    return decodeHeaderBlock(await this.#inflate.decompress(block));
  }

  /** Sends SYN_STREAM. */
  async synStream(streamId: number, headers: SpdyHeaderInput, flags = 0): Promise<void> {
    const headerBlock = await this.compress(headers);
    await this.send({ type: "syn_stream", streamId, associatedStreamId: 0, priority: 0, slot: 0, flags, headerBlock });
  }

  /** Closes both directions and releases the compression contexts. */
  async close(): Promise<void> {
    this.#deflate.close();
    this.#inflate.close();
    await this.#writer.close().catch(() => {});
    await this.#reader.cancel().catch(() => {});
  }
}
