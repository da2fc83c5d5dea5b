/**
 * A blob download that yields exactly the blob's bytes although connections drop: a transient failure (reset,
 * 429/5xx, a body cut short) is retried with backoff (honouring Retry-After), resuming with `Range: bytes=<n>-`
 * when the server serves ranges and otherwise starting over and skipping what was already delivered. No byte for
 * `progressTimeoutMs` fails the download with DeadlineExceeded. The size and digest are checked as bytes pass, and
 * the stream errors instead of closing when they do not match. Network access is the caller's `open` function.
 * @module
 */
import { DavitError, DeadlineExceeded, InvalidArgument, Unavailable } from "../lib/errors.ts";
import { DigestVerifier } from "./digest.ts";
import { type BackoffPolicy, retryDelay, TransientError, transportErrorText } from "./registry_protocol.ts";

/** One answer to a blob GET. */
export interface BlobResponse {
  body: ReadableStream<Uint8Array>;
  /** The blob offset the body starts at: 0 for a 200, the range start for a 206. */
  offset: number;
  /** The blob's total size, when the server said. */
  size?: number;
  /** The server serves byte ranges (it answered 206, or sent `Accept-Ranges: bytes`). */
  resumable: boolean;
}

/** What a retry looked like, for logging. */
export interface BlobRetry {
  attempt: number;
  received: number;
  delayMs: number;
  error: unknown;
}

/** Options of {@link ResumableBlob}. */
export interface ResumableBlobOptions {
  digest: string;
  size: number;
  /** Where the blob comes from, for messages (the registry host). */
  source: string;
  /** Opens the blob at `offset`, sending a Range request only when `range` is true. */
  open: (at: { offset: number; range: boolean; signal: AbortSignal }) => Promise<BlobResponse>;
  signal?: AbortSignal | undefined;
  /** Fail when no byte arrives for this long (ms); 0 (the default) never. */
  progressTimeoutMs?: number;
  /** Consecutive failed attempts tolerated (default 5); an attempt that delivers bytes resets the count. */
  maxRetries?: number;
  backoff?: BackoffPolicy;
  /** Check the digest (size is always checked); default true. */
  verify?: boolean;
  /** Called with the number of bytes of each chunk delivered. */
  onProgress?: (bytes: number) => void;
  onRetry?: (retry: BlobRetry) => void;
}

/** The default wait between attempts: 250 ms doubling to 10 s; Retry-After honoured up to 60 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 10_000, maxRetryAfterMs: 60_000 };

/** One download; read {@link ResumableBlob.stream}, optionally after {@link ResumableBlob.connect}. */
export class ResumableBlob {
  /** The blob's bytes, exactly once each. */
  readonly stream: ReadableStream<Uint8Array>;
  readonly #o: ResumableBlobOptions;
  readonly #verifier: DigestVerifier | undefined;
  readonly #maxRetries: number;
  #received = 0;
  #skip = 0;
  #resumable = false;
  #failures = 0;
  #last = performance.now();
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #attempt: AbortController | undefined;
  #closed = false;

  constructor(opts: ResumableBlobOptions) {
    this.#o = opts;
    this.#maxRetries = opts.maxRetries ?? 5;
    this.#verifier = opts.verify === false
      ? undefined
      : new DigestVerifier({ digest: opts.digest, size: opts.size, what: "blob" });
    this.stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const chunk = await this.#next();
          if (chunk === undefined) controller.close();
          else controller.enqueue(chunk);
        } catch (err) {
          this.#close();
          throw err;
        }
      },
      cancel: (reason) => this.#close(reason),
    }, { highWaterMark: 0 });
  }

  /** Bytes delivered so far. */
  get received(): number {
    return this.#received;
  }

  /** Makes the first request (retrying transient failures), so refusals surface before anything is read. */
  async connect(): Promise<void> {
    try {
      await this.#ensureReader();
    } catch (err) {
      this.#close();
      throw err;
    }
  }

  #stalled(): DeadlineExceeded {
    const secs = (this.#o.progressTimeoutMs ?? 0) / 1000;
    return new DeadlineExceeded(`pull of ${this.#o.digest} from ${this.#o.source} made no progress for ${secs}s`);
  }

  /** Waits for `p` unless the no-progress deadline passes or the caller aborts first (then the attempt is cut). */
  #guard<T>(p: Promise<T>): Promise<T> {
    const ms = this.#o.progressTimeoutMs ?? 0;
    const signal = this.#o.signal;
    if (ms <= 0 && !signal) return p;
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const stop = (err: unknown) => {
        done();
        this.#attempt?.abort(err);
        reject(err);
      };
      const onAbort = () => stop(signal!.reason);
      if (signal?.aborted) return stop(signal.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (ms > 0) timer = setTimeout(() => stop(this.#stalled()), Math.max(0, this.#last + ms - performance.now()));
      p.then((v) => (done(), resolve(v)), (e) => (done(), reject(e)));
    });
  }

  async #connectOnce(): Promise<void> {
    const ctl = new AbortController();
    this.#attempt = ctl;
    const signal = this.#o.signal ? AbortSignal.any([this.#o.signal, ctl.signal]) : ctl.signal;
    const range = this.#received > 0 && this.#resumable;
    const res = await this.#guard(this.#o.open({ offset: range ? this.#received : 0, range, signal }));
    const where = `pull of ${this.#o.digest} from ${this.#o.source}`;
    if (res.offset > this.#received || res.offset < 0) {
      await res.body.cancel().catch(() => {});
      this.#resumable = false;
      throw new TransientError(`${where}: the answer starts at byte ${res.offset}, not ${this.#received}`, {
        rangeRefused: true,
      });
    }
    if (res.size !== undefined && res.size !== this.#o.size) {
      await res.body.cancel().catch(() => {});
      throw new InvalidArgument(`${where}: the registry says ${res.size} bytes, the descriptor ${this.#o.size}`);
    }
    this.#resumable = res.resumable;
    this.#skip = this.#received - res.offset;
    this.#reader = res.body.getReader();
  }

  async #ensureReader(): Promise<void> {
    while (!this.#reader) {
      if (this.#closed) throw new Unavailable(`pull of ${this.#o.digest} from ${this.#o.source} was closed`);
      try {
        await this.#connectOnce();
      } catch (err) {
        await this.#retryOrThrow(err);
      }
    }
  }

  #retryable(err: unknown): boolean {
    if (this.#o.signal?.aborted || this.#closed) return false;
    if (err instanceof TransientError) return true;
    // fetch's body errors ("error reading a body from connection") are TypeErrors.
    return err instanceof TypeError;
  }

  /** Waits before the next attempt when `err` may be cured by one; otherwise throws the final error. */
  async #retryOrThrow(err: unknown): Promise<void> {
    this.#dropReader(err);
    if (!this.#retryable(err)) throw err;
    if (this.#failures >= this.#maxRetries) {
      const why = err instanceof DavitError ? err.message : transportErrorText(err);
      throw new Unavailable(
        `pull of ${this.#o.digest} from ${this.#o.source} failed ${
          this.#failures + 1
        } times in a row at byte ${this.#received}: ${why}`,
        { cause: err },
      );
    }
    this.#failures++;
    if (err instanceof TransientError && err.rangeRefused) this.#resumable = false;
    const delayMs = retryDelay(
      this.#failures,
      err instanceof TransientError ? err.retryAfterMs : undefined,
      this.#o.backoff ?? DEFAULT_BACKOFF,
    );
    this.#o.onRetry?.({ attempt: this.#failures, received: this.#received, delayMs, error: err });
    await this.#sleep(delayMs);
    // Our own wait is not the server's lack of progress.
    this.#last = performance.now();
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#o.signal;
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(id);
        reject(signal!.reason);
      };
      const id = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The next chunk to deliver, or undefined at a verified end. */
  async #next(): Promise<Uint8Array | undefined> {
    for (;;) {
      await this.#ensureReader();
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await this.#guard(this.#reader!.read());
        if (r.done && this.#received < this.#o.size) {
          throw new TransientError(
            `pull of ${this.#o.digest} from ${this.#o.source}: the body ended at byte ${this.#received} of ${this.#o.size}`,
          );
        }
      } catch (err) {
        // Every byte arrived and only the end of the exchange failed: nothing to fetch again.
        if (this.#received === this.#o.size && this.#retryable(err)) return this.#finish();
        await this.#retryOrThrow(err);
        continue;
      }
      if (r.done) return this.#finish();
      let chunk = r.value;
      if (this.#skip > 0) {
        // Starting over without ranges: these bytes were delivered already.
        const n = Math.min(this.#skip, chunk.length);
        this.#skip -= n;
        chunk = chunk.subarray(n);
      }
      if (chunk.length === 0) continue;
      if (this.#verifier) this.#verified(() => this.#verifier!.update(chunk));
      else if (this.#received + chunk.length > this.#o.size) {
        throw new InvalidArgument(
          `pull of ${this.#o.digest} from ${this.#o.source}: more than the descriptor's ${this.#o.size} bytes`,
        );
      }
      this.#received += chunk.length;
      this.#last = performance.now();
      this.#failures = 0;
      this.#o.onProgress?.(chunk.length);
      return chunk;
    }
  }

  #finish(): undefined {
    this.#dropReader();
    if (this.#verifier) this.#verified(() => this.#verifier!.finish());
    this.#close();
    return undefined;
  }

  /** Runs a verifier step, naming the pull in its InvalidArgument. */
  #verified(step: () => unknown): void {
    try {
      step();
    } catch (err) {
      if (!(err instanceof InvalidArgument)) throw err;
      throw new InvalidArgument(`pull of ${this.#o.digest} from ${this.#o.source}: ${err.message}`, { cause: err });
    }
  }

  #dropReader(reason?: unknown): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.cancel(reason).catch(() => {});
  }

  #close(reason?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#dropReader(reason);
    this.#attempt?.abort(reason);
  }
}
