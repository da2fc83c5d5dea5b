/**
 * The `:authority` front of the CRI socket. Old grpc-go clients (kubelet and crictl up to 1.28) send the unix socket
 * path as HTTP/2 `:authority`, which the HTTP/2 server under Deno refuses with a PROTOCOL_ERROR GOAWAY before
 * grpc-js sees the call. The front listens on the public socket and relays bytes to grpc-js on a private one,
 * re-encoding every request header block on the way in so that `:authority` is valid. Server-to-client bytes pass
 * through untouched.
 *
 * {@link AuthorityRewriter} is the pure core for the client-to-server direction; {@link startAuthorityFront} is
 * the socket glue.
 * @module
 */
import { errorMessage, InvalidArgument, ResourceExhausted, Unavailable } from "../lib/errors.ts";
import { type Logger, logger } from "../lib/log.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  Flag,
  FRAME_HEADER_LENGTH,
  FrameType,
  headerBlockFramesLength,
  type HeaderFramingOptions,
  PREFACE,
  readFrameHeader,
  writeHeaderBlockFrames,
} from "./h2_frame.ts";
import { type HeaderField, HpackDecoder, HpackEncoder } from "./hpack.ts";

/** What replaces an invalid `:authority`: grpc-go's and grpc-js's own choice for unix socket targets. */
export const REPLACEMENT_AUTHORITY = "localhost";

// RFC 3986 Section 3.2 authority without userinfo (RFC 9113 Section 8.3.1 forbids it for http):
// host (IP-literal, or reg-name of unreserved, pct-encoded and sub-delims) and an optional port.
const AUTHORITY = /^(?:\[[0-9A-Za-z._~!$&'()*+,;=:-]+\]|(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})+)(?::[0-9]*)?$/;

/** True when `value` is a valid HTTP/2 `:authority`: `host[:port]` per RFC 3986, without userinfo. */
export function isValidAuthority(value: string): boolean {
  return AUTHORITY.test(value);
}

/** Options for {@link AuthorityRewriter}. */
export interface AuthorityRewriterOptions {
  /** Bound on one header block's encoded size across HEADERS and CONTINUATION frames (default 1 MiB). */
  maxHeaderBlockBytes?: number;
  /** Bound on one decoded header list, counted as in SETTINGS_MAX_HEADER_LIST_SIZE (default 1 MiB). */
  maxHeaderListSize?: number;
  /** Bound on the client's dynamic table size updates (default 65536). */
  maxTableSize?: number;
  /** Largest frame payload written to the server (default 16384, which every server accepts). */
  maxFrameSize?: number;
}

// Buffers above this size are dropped after use, so one huge header block does not pin memory for the connection.
const KEEP_BUFFER = 64 * 1024;

/**
 * Rewrites the client-to-server byte stream of one HTTP/2 connection. Every frame passes through unchanged except
 * header blocks (HEADERS and its CONTINUATIONs): each is decoded with a decoder that mirrors the client's encoder,
 * its `:authority` replaced by {@link REPLACEMENT_AUTHORITY} when invalid, and re-encoded with static-table
 * references and literals without indexing only, so the server's dynamic table stays empty whatever the client
 * indexed. Padding is dropped, priority kept, never-indexed fields stay never-indexed, and the client's table size
 * updates are forwarded (they are always valid for the server, which may require one after lowering its
 * SETTINGS_HEADER_TABLE_SIZE, RFC 7541 Section 4.2). Protocol violations and oversized blocks throw
 * (InvalidArgument, ResourceExhausted): the connection must then be closed.
 */
export class AuthorityRewriter {
  readonly #decoder: HpackDecoder;
  readonly #encoder = new HpackEncoder({ huffman: "never", indexing: "none" });
  readonly #maxBlock: number;
  readonly #maxFrame: number;
  #prefaceSeen = 0;
  #header = new Uint8Array(FRAME_HEADER_LENGTH);
  #headerFill = 0;
  // Octets of a pass-through frame's payload still to come.
  #skip = 0;
  // The HEADERS or CONTINUATION payload being collected (`#payloadLength` < 0: none).
  #frame = new Uint8Array(1024);
  #payloadLength = -1;
  #payloadFill = 0;
  #payloadType = 0;
  #payloadFlags = 0;
  // The header block being collected (`#blockStream` 0: none; HEADERS never uses stream 0).
  #block = new Uint8Array(1024);
  #blockLength = 0;
  #blockStream = 0;
  #blockEndStream = false;
  #priority = new Uint8Array(5);
  #hasPriority = false;
  // Rewritten frames of the current push(): returned views point into it, so it is only reset by the next push.
  #out = new Uint8Array(1024);
  #outPos = 0;
  /** Header blocks re-encoded so far. */
  headerBlocks = 0;
  /** `:authority` values replaced so far. */
  authoritiesReplaced = 0;

  constructor(opts: AuthorityRewriterOptions = {}) {
    this.#decoder = new HpackDecoder({
      maxTableSize: opts.maxTableSize ?? 65_536,
      maxHeaderListSize: opts.maxHeaderListSize ?? 1 << 20,
    });
    this.#maxBlock = opts.maxHeaderBlockBytes ?? 1 << 20;
    this.#maxFrame = opts.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  }

  /**
   * Consumes the next octets from the client and returns what to send to the server, in order. The returned arrays
   * are views of `chunk` or of the rewriter's buffers: write them before reusing `chunk` and before the next push.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.#out.length > KEEP_BUFFER) this.#out = new Uint8Array(1024);
    this.#outPos = 0;
    let i = 0;
    while (this.#prefaceSeen < PREFACE.length && i < chunk.length) {
      if (chunk[i] !== PREFACE[this.#prefaceSeen]) throw new InvalidArgument("h2 front: bad HTTP/2 client preface");
      i++;
      this.#prefaceSeen++;
    }
    let passStart = 0; // start of the pending pass-through run in `chunk`
    while (i < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - i);
        this.#skip -= n;
        i += n;
        continue;
      }
      if (this.#payloadLength >= 0) {
        const n = Math.min(this.#payloadLength - this.#payloadFill, chunk.length - i);
        this.#frame.set(chunk.subarray(i, i + n), this.#payloadFill);
        this.#payloadFill += n;
        i += n;
        passStart = i;
        if (this.#payloadFill === this.#payloadLength) this.#onPayload(out);
        continue;
      }
      // A frame header, possibly split across chunks.
      let headerBytes: Uint8Array;
      const headerStart = i;
      if (this.#headerFill > 0 || chunk.length - i < FRAME_HEADER_LENGTH) {
        if (this.#headerFill === 0 && passStart < i) out.push(chunk.subarray(passStart, i));
        const n = Math.min(FRAME_HEADER_LENGTH - this.#headerFill, chunk.length - i);
        this.#header.set(chunk.subarray(i, i + n), this.#headerFill);
        this.#headerFill += n;
        i += n;
        passStart = i;
        if (this.#headerFill < FRAME_HEADER_LENGTH) continue;
        this.#headerFill = 0;
        headerBytes = this.#header;
      } else {
        headerBytes = chunk;
        i += FRAME_HEADER_LENGTH;
      }
      const h = readFrameHeader(headerBytes, headerBytes === chunk ? headerStart : 0);
      if (h.type === FrameType.HEADERS || h.type === FrameType.CONTINUATION) {
        if (headerBytes === chunk && passStart < headerStart) out.push(chunk.subarray(passStart, headerStart));
        passStart = i;
        this.#startPayload(h.type, h.flags, h.streamId, h.length);
        if (h.length === 0) this.#onPayload(out);
        continue;
      }
      if (this.#blockStream !== 0) {
        throw new InvalidArgument(
          `h2 front: frame of type ${h.type} inside the header block of stream ${this.#blockStream}`,
        );
      }
      // RFC 9113 Section 8.4: a client cannot push; PUSH_PROMISE would also carry a header block.
      if (h.type === FrameType.PUSH_PROMISE) throw new InvalidArgument("h2 front: PUSH_PROMISE from a client");
      if (headerBytes !== chunk) out.push(this.#header.slice());
      this.#skip = h.length;
    }
    if (this.#payloadLength < 0 && this.#headerFill === 0 && passStart < chunk.length) {
      out.push(chunk.subarray(passStart));
    }
    return out;
  }

  #startPayload(type: number, flags: number, streamId: number, length: number): void {
    if (type === FrameType.HEADERS) {
      if (this.#blockStream !== 0) {
        throw new InvalidArgument(`h2 front: HEADERS inside the header block of stream ${this.#blockStream}`);
      }
      if (streamId === 0) throw new InvalidArgument("h2 front: HEADERS on stream 0");
      this.#blockStream = streamId;
      this.#blockEndStream = (flags & Flag.END_STREAM) !== 0;
      this.#blockLength = 0;
      this.#hasPriority = false;
    } else if (this.#blockStream === 0 || this.#blockStream !== streamId) {
      throw new InvalidArgument(`h2 front: CONTINUATION on stream ${streamId} outside a header block`);
    }
    // The frame is refused before it is buffered; its padding and priority octets count too.
    if (this.#blockLength + length > this.#maxBlock) {
      throw new ResourceExhausted(`h2 front: header block of stream ${streamId} exceeds ${this.#maxBlock} octets`);
    }
    if (this.#frame.length < length) this.#frame = new Uint8Array(Math.max(length, this.#frame.length * 2));
    this.#payloadLength = length;
    this.#payloadFill = 0;
    this.#payloadType = type;
    this.#payloadFlags = flags;
  }

  #onPayload(out: Uint8Array[]): void {
    const payload = this.#frame.subarray(0, this.#payloadLength);
    const flags = this.#payloadFlags;
    this.#payloadLength = -1;
    let start = 0;
    let end = payload.length;
    if (this.#payloadType === FrameType.HEADERS) {
      // RFC 9113 Section 6.2: [pad length] [dependency and weight] fragment [padding].
      if (flags & Flag.PADDED) {
        if (payload.length < 1) throw new InvalidArgument("h2 front: PADDED HEADERS without a pad length");
        start = 1;
        end -= payload[0]!;
      }
      if (flags & Flag.PRIORITY) {
        if (end - start < 5) throw new InvalidArgument("h2 front: HEADERS too short for its priority");
        this.#priority.set(payload.subarray(start, start + 5));
        this.#hasPriority = true;
        start += 5;
      }
      if (end < start) throw new InvalidArgument("h2 front: HEADERS padding exceeds the frame");
    }
    const n = end - start;
    if (this.#block.length < this.#blockLength + n) {
      const grown = new Uint8Array(Math.max(this.#blockLength + n, this.#block.length * 2));
      grown.set(this.#block.subarray(0, this.#blockLength));
      this.#block = grown;
    }
    this.#block.set(payload.subarray(start, end), this.#blockLength);
    this.#blockLength += n;
    if (flags & Flag.END_HEADERS) out.push(this.#rewrite());
  }

  #rewrite(): Uint8Array {
    const streamId = this.#blockStream;
    this.#blockStream = 0;
    const { fields, tableSizeUpdates } = this.#decoder.decode(this.#block.subarray(0, this.#blockLength));
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k]!;
      if (f.name !== ":authority" || isValidAuthority(f.value)) continue;
      const fixed: HeaderField = { name: ":authority", value: REPLACEMENT_AUTHORITY };
      if (f.neverIndex) fixed.neverIndex = true;
      fields[k] = fixed;
      this.authoritiesReplaced++;
    }
    this.headerBlocks++;
    const block = this.#encoder.encodeView(fields, tableSizeUpdates);
    const framing: HeaderFramingOptions = {
      flags: this.#blockEndStream ? Flag.END_STREAM : 0,
      maxFrameSize: this.#maxFrame,
    };
    if (this.#hasPriority) framing.priority = this.#priority;
    const need = this.#outPos + headerBlockFramesLength(block.length, framing);
    // Views returned earlier in this push keep the old buffer alive, so it is replaced, never overwritten.
    if (this.#out.length < need) this.#out = new Uint8Array(Math.max(need, this.#out.length * 2));
    const start = this.#outPos;
    this.#outPos = writeHeaderBlockFrames(this.#out, start, streamId, block, framing);
    if (this.#frame.length > KEEP_BUFFER) this.#frame = new Uint8Array(1024);
    if (this.#block.length > KEEP_BUFFER) this.#block = new Uint8Array(1024);
    return this.#out.subarray(start, this.#outPos);
  }
}

/** Options for {@link startAuthorityFront}. */
export interface AuthorityFrontOptions {
  /** The socket clients connect to; must not exist yet (see `claimSocketPath`). Removed by `close()`. */
  publicPath: string;
  /** The socket grpc-js listens on. */
  backendPath: string;
  /** Closes the front when aborted. */
  signal?: AbortSignal;
  log?: Logger;
  /** Limits for each connection's rewriter. */
  rewriter?: AuthorityRewriterOptions;
  /** How long connecting to the backend may take (default 5 s). */
  connectTimeoutMs?: number;
}

/** Counters of a running front. */
export interface AuthorityFrontStats {
  /** Client connections accepted. */
  connections: number;
  /** Client connections open now. */
  active: number;
  /** Header blocks re-encoded. */
  headerBlocks: number;
  /** `:authority` values replaced. */
  authoritiesReplaced: number;
  /** Connections closed because the client broke the protocol or a limit. */
  protocolErrors: number;
}

/** A running front. */
export interface AuthorityFront extends AsyncDisposable {
  readonly publicPath: string;
  stats(): AuthorityFrontStats;
  /** Stops accepting new connections and removes the public socket; open connections carry on. */
  stopAccepting(): Promise<void>;
  /** Stops accepting, closes every connection pair, waits for them and removes the public socket. */
  close(): Promise<void>;
}

const READ_BUFFER = 64 * 1024;

/**
 * Listens on `publicPath` and relays each connection to `backendPath` through an {@link AuthorityRewriter}. A client
 * that breaks HTTP/2 or a limit loses its connection (both sockets closed); nothing else is affected.
 */
export function startAuthorityFront(opts: AuthorityFrontOptions): Promise<AuthorityFront> {
  const log = opts.log ?? logger("authority-front");
  let listener: Deno.UnixListener;
  try {
    listener = Deno.listen({ transport: "unix", path: opts.publicPath });
  } catch (err) {
    return Promise.reject(new Unavailable(`Cannot listen on ${opts.publicPath}: ${errorMessage(err)}`, { cause: err }));
  }
  const counters = { connections: 0, active: 0, headerBlocks: 0, authoritiesReplaced: 0, protocolErrors: 0 };
  const open = new Set<Deno.Conn>();
  const pairs = new Set<Promise<void>>();
  let closing: Promise<void> | undefined;

  const closeConn = (c: Deno.Conn) => {
    open.delete(c);
    try {
      c.close();
    } catch {
      // Already closed.
    }
  };

  const relay = async (client: Deno.UnixConn) => {
    let backend: Deno.UnixConn;
    try {
      backend = await connectWithTimeout(opts.backendPath, opts.connectTimeoutMs ?? 5000);
    } catch (err) {
      log.warn("cannot reach the gRPC backend; dropping the client", { backend: opts.backendPath, error: err });
      closeConn(client);
      return;
    }
    if (closing) {
      backend.close();
      closeConn(client);
      return;
    }
    open.add(backend);
    const rewriter = new AuthorityRewriter(opts.rewriter);
    const closeBoth = () => {
      closeConn(client);
      closeConn(backend);
    };
    const up = async () => {
      const buf = new Uint8Array(READ_BUFFER);
      for (;;) {
        const n = await client.read(buf);
        if (n === null) return await backend.closeWrite();
        let chunks: Uint8Array[];
        const before = rewriter.headerBlocks;
        const replacedBefore = rewriter.authoritiesReplaced;
        try {
          chunks = rewriter.push(buf.subarray(0, n));
        } catch (err) {
          counters.protocolErrors++;
          log.warn("closing a CRI client connection that broke HTTP/2", { error: errorMessage(err) });
          return closeBoth();
        } finally {
          counters.headerBlocks += rewriter.headerBlocks - before;
          counters.authoritiesReplaced += rewriter.authoritiesReplaced - replacedBefore;
        }
        for (const c of chunks) await writeAll(backend, c);
      }
    };
    const down = async () => {
      const buf = new Uint8Array(READ_BUFFER);
      for (;;) {
        const n = await backend.read(buf);
        if (n === null) return await client.closeWrite();
        await writeAll(client, buf.subarray(0, n));
      }
    };
    // A failed read or write in either direction (a peer gone, or close()) ends the pair.
    const ended = [up(), down()].map((p) => p.catch(closeBoth));
    await Promise.all(ended);
    closeBoth();
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        counters.connections++;
        counters.active++;
        open.add(conn);
        const p = relay(conn)
          .catch((err) => log.error("relay failed", { error: err }))
          .finally(() => counters.active--);
        pairs.add(p);
        void p.finally(() => pairs.delete(p));
      }
    } catch (err) {
      if (!closing) log.error("accepting CRI connections failed", { error: err });
    }
  })();

  let stopping: Promise<void> | undefined;
  const stopAccepting = () => {
    stopping ??= (async () => {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
      await accepting;
      await Deno.remove(opts.publicPath).catch(() => {});
    })();
    return stopping;
  };

  const close = () => {
    closing ??= (async () => {
      opts.signal?.removeEventListener("abort", onAbort);
      await stopAccepting();
      for (const c of [...open]) closeConn(c);
      while (pairs.size > 0) await Promise.all([...pairs]);
    })();
    return closing;
  };
  const onAbort = () => void close();
  if (opts.signal?.aborted) void close();
  else opts.signal?.addEventListener("abort", onAbort, { once: true });

  log.debug("relaying CRI connections", { socket: opts.publicPath, backend: opts.backendPath });
  return Promise.resolve({
    publicPath: opts.publicPath,
    stats: () => ({ ...counters }),
    stopAccepting,
    close,
    [Symbol.asyncDispose]: close,
  });
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

async function connectWithTimeout(path: string, ms: number): Promise<Deno.UnixConn> {
  const connecting = Deno.connect({ transport: "unix", path });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Unavailable(`connecting to ${path} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([connecting, timeout]);
  } catch (err) {
    // A connection that completes after the timeout is closed, not leaked.
    connecting.then((c) => c.close(), () => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
