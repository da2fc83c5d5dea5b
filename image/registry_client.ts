/**
 * The registry side of a pull (distribution spec v1.1 "Pulling manifests", "Pulling blobs"): manifests by tag or
 * digest (size-capped at 4 MiB, digest verified when asked for by digest, computed otherwise), manifest HEADs,
 * single blob GETs with Range, and blob streams that survive dropped connections (see {@link ResumableBlob}).
 * Implements the puller's {@link RegistryAccess}; HTTP, TLS and auth are {@link RegistryHttp}'s.
 * @module
 */
import type { Logger } from "../lib/log.ts";
import { logger } from "../lib/log.ts";
import { errorMessage, InvalidArgument } from "../lib/errors.ts";
import type { Credentials } from "./auth.ts";
import { type BlobResponse, DEFAULT_BACKOFF, ResumableBlob } from "./blob_stream.ts";
import { digestOf, isDigest, parseDigest } from "./digest.ts";
import { bareMediaType, type Descriptor, MANIFEST_MAX_BYTES } from "./manifest.ts";
import type { FetchedManifest, RegistryAccess } from "./pull.ts";
import { type Endpoint, RegistryHttp, type RegistryHttpOptions } from "./registry_http.ts";
import {
  acceptsByteRanges,
  apiHost,
  type BackoffPolicy,
  parseContentRange,
  retryDelay,
  TransientError,
} from "./registry_protocol.ts";
import { readCapped } from "./transport.ts";

/** Where a request goes: a registry, a repository in it, and whether plain HTTP is allowed. A PullSource fits. */
export interface RegistryTarget {
  reference: { registry: string; repository: string };
  insecure: boolean;
}

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions extends RegistryHttpOptions {
  /** A blob download with no byte for this long fails with DeadlineExceeded (ms; 0, the default: never). */
  progressTimeoutMs?: number;
  /** Consecutive failed attempts tolerated per blob (default 5). */
  maxRetries?: number;
  /** Retries of a manifest request answered 429 or 5xx (default 2). */
  manifestRetries?: number;
  /** Waits between attempts (default 250 ms doubling to 10 s, Retry-After up to 60 s). */
  backoff?: Partial<BackoffPolicy>;
  log?: Logger;
}

/** Per-call options of blob streams; unset ones come from the client's options. */
export interface BlobStreamOptions {
  credentials?: Credentials;
  signal?: AbortSignal;
  /** Called with the byte count of each chunk delivered. */
  onProgress?: (bytes: number) => void;
  progressTimeoutMs?: number;
  maxRetries?: number;
  /** Check the digest while streaming (default true; the size is always checked). */
  verify?: boolean;
}

/** What a manifest HEAD says. */
export interface ManifestHead {
  /** `Docker-Content-Digest`, when sent. */
  digest?: string;
  mediaType: string;
  size?: number;
}

function endpointOf(target: RegistryTarget): Endpoint {
  return { host: apiHost(target.reference.registry), insecure: target.insecure };
}

/** `registry/repository:tag` or `registry/repository@digest`, for messages. */
function imageName(target: RegistryTarget, reference: string): string {
  const sep = isDigest(reference) ? "@" : ":";
  return `${target.reference.registry}/${target.reference.repository}${sep}${reference}`;
}

/** Manifest and blob access to distribution-API registries; one per daemon. */
export class RegistryClient implements RegistryAccess, AsyncDisposable {
  /** The HTTP layer (TLS, auth, token cache). */
  readonly http: RegistryHttp;
  readonly #o: RegistryClientOptions;
  readonly #log: Logger;
  readonly #backoff: BackoffPolicy;

  constructor(opts: RegistryClientOptions = {}) {
    this.#o = opts;
    this.#log = opts.log ?? logger("registry");
    this.http = new RegistryHttp({ ...opts, log: this.#log });
    this.#backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
  }

  /** Runs `attempt`, retrying answers of 429/5xx (not transport failures: a dead mirror should fail fast). */
  async #retrying<T>(attempt: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const max = this.#o.manifestRetries ?? 2;
    for (let n = 1;; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof TransientError) || err.status === undefined || n > max || signal?.aborted) throw err;
        const ms = retryDelay(n, err.retryAfterMs, this.#backoff);
        this.#log.debug("registry busy; retrying", { error: errorMessage(err), wait_ms: ms });
        await new Promise<void>((resolve, reject) => {
          const id = setTimeout(() => (signal?.removeEventListener("abort", onAbort), resolve()), ms);
          const onAbort = () => (clearTimeout(id), reject(signal!.reason));
          signal?.addEventListener("abort", onAbort, { once: true });
        });
      }
    }
  }

  /**
   * GETs a manifest by tag or digest. The bytes are capped at 4 MiB; by digest they must hash to it
   * (InvalidArgument otherwise), by tag their sha256 is the answered digest. NotFound names the image.
   */
  getManifest(
    target: RegistryTarget,
    reference: string,
    opts: { accept: readonly string[]; credentials?: Credentials; signal?: AbortSignal },
  ): Promise<FetchedManifest> {
    const ep = endpointOf(target);
    const repository = target.reference.repository;
    const image = imageName(target, reference);
    const what = `GET manifest ${JSON.stringify(reference)}`;
    return this.#retrying(async () => {
      const res = await this.http.request(ep, {
        path: `/v2/${repository}/manifests/${reference}`,
        repository,
        credentials: opts.credentials,
        headers: { accept: opts.accept.join(", ") },
        signal: opts.signal,
        what,
      });
      if (res.status !== 200) {
        throw await this.http.statusError(ep, res, {
          what,
          repository,
          notFound: `image "${image}" not found in registry ${target.reference.registry}`,
          credentials: opts.credentials,
        });
      }
      const bytes = await readCapped(res, {
        limit: MANIFEST_MAX_BYTES,
        timeoutMs: this.http.timeoutMs,
        what: `manifest of "${image}" from registry ${ep.host}`,
        signal: opts.signal,
      });
      let digest: string;
      if (isDigest(reference)) {
        digest = digestOf(bytes, parseDigest(reference).algorithm);
        if (digest !== reference) {
          throw new InvalidArgument(
            `manifest of "${image}" from registry ${ep.host} has digest ${digest}, not the requested one`,
          );
        }
      } else digest = digestOf(bytes);
      return { bytes, mediaType: bareMediaType(res.headers.get("content-type")), digest };
    }, opts.signal);
  }

  /** HEADs a manifest: its digest (when the registry sends it), media type and size, without the bytes. */
  headManifest(
    target: RegistryTarget,
    reference: string,
    opts: { accept: readonly string[]; credentials?: Credentials; signal?: AbortSignal },
  ): Promise<ManifestHead> {
    const ep = endpointOf(target);
    const repository = target.reference.repository;
    const what = `HEAD manifest ${JSON.stringify(reference)}`;
    return this.#retrying(async () => {
      const res = await this.http.request(ep, {
        method: "HEAD",
        path: `/v2/${repository}/manifests/${reference}`,
        repository,
        credentials: opts.credentials,
        headers: { accept: opts.accept.join(", ") },
        signal: opts.signal,
        what,
      });
      if (res.status !== 200) {
        throw await this.http.statusError(ep, res, {
          what,
          repository,
          notFound: `image "${imageName(target, reference)}" not found in registry ${target.reference.registry}`,
          credentials: opts.credentials,
        });
      }
      await res.body?.cancel();
      const out: ManifestHead = { mediaType: bareMediaType(res.headers.get("content-type")) };
      const digest = res.headers.get("docker-content-digest");
      if (digest !== null && isDigest(digest)) out.digest = digest;
      const size = Number(res.headers.get("content-length") ?? "NaN");
      if (Number.isSafeInteger(size) && size >= 0) out.size = size;
      return out;
    }, opts.signal);
  }

  /**
   * One GET of a blob, from `offset` with a Range request when it is above 0. The answer says where its body
   * starts (a server may ignore the range and send everything) and whether ranges are served. Not retried.
   */
  async getBlob(
    target: RegistryTarget,
    digest: string,
    opts: { credentials?: Credentials | undefined; signal?: AbortSignal | undefined; offset?: number } = {},
  ): Promise<BlobResponse> {
    const ep = endpointOf(target);
    const repository = target.reference.repository;
    const offset = opts.offset ?? 0;
    const what = `GET blob ${digest}${offset > 0 ? ` from byte ${offset}` : ""}`;
    const res = await this.http.request(ep, {
      path: `/v2/${repository}/blobs/${digest}`,
      repository,
      credentials: opts.credentials,
      headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
      signal: opts.signal,
      what,
    });
    const body = res.body ?? new ReadableStream<Uint8Array>({ start: (c) => c.close() });
    if (res.status === 200) {
      const out: BlobResponse = { body, offset: 0, resumable: acceptsByteRanges(res.headers.get("accept-ranges")) };
      const size = Number(res.headers.get("content-length") ?? "NaN");
      if (Number.isSafeInteger(size) && size >= 0) out.size = size;
      return out;
    }
    if (res.status === 206) {
      const range = parseContentRange(res.headers.get("content-range"));
      if (!range) {
        await body.cancel();
        throw new TransientError(`registry ${ep.host} answered ${what} with an unusable Content-Range`, {
          rangeRefused: true,
        });
      }
      const out: BlobResponse = { body, offset: range.start, resumable: true };
      if (range.total !== undefined) out.size = range.total;
      return out;
    }
    throw await this.http.statusError(ep, res, {
      what,
      repository,
      notFound: `blob ${digest} not found in repository "${repository}" of registry ${target.reference.registry}`,
      credentials: opts.credentials,
    });
  }

  #download(target: RegistryTarget, desc: Descriptor, opts: BlobStreamOptions): ResumableBlob {
    const log = this.#log;
    return new ResumableBlob({
      digest: desc.digest,
      size: desc.size,
      source: target.reference.registry,
      open: ({ offset, range, signal }) =>
        this.getBlob(target, desc.digest, { credentials: opts.credentials, signal, ...(range ? { offset } : {}) }),
      signal: opts.signal,
      progressTimeoutMs: opts.progressTimeoutMs ?? this.#o.progressTimeoutMs ?? 0,
      maxRetries: opts.maxRetries ?? this.#o.maxRetries ?? 5,
      backoff: this.#backoff,
      verify: opts.verify ?? true,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      onRetry: (r) =>
        log.info("blob download interrupted; retrying", {
          blob: desc.digest,
          registry: target.reference.registry,
          received: r.received,
          attempt: r.attempt,
          wait_ms: r.delayMs,
          error: errorMessage(r.error),
        }),
    });
  }

  /**
   * The blob's exact bytes as a stream that retries and resumes on its own (see {@link ResumableBlob}); errors
   * (NotFound, PermissionDenied, DeadlineExceeded, a digest or size mismatch) surface as the stream's error.
   */
  openBlobStream(target: RegistryTarget, desc: Descriptor, opts: BlobStreamOptions = {}): ReadableStream<Uint8Array> {
    return this.#download(target, desc, opts).stream;
  }

  /** Like {@link openBlobStream}, but resolves only once the registry answered, so refusals reject here. */
  async openBlob(
    target: RegistryTarget,
    desc: Descriptor,
    opts: BlobStreamOptions = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const d = this.#download(target, desc, opts);
    await d.connect();
    return d.stream;
  }

  /** Releases the per-host HTTP clients. */
  close(): Promise<void> {
    return this.http.close();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
