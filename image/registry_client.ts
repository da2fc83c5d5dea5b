/**
 * The registry side of a pull: manifests (size-capped, digest-checked) and blob streams that survive dropped
 * connections (retry with backoff, resuming with Range where the registry allows) and give up when no byte
 * arrives for the configured time. Implements the puller's {@link RegistryAccess}.
 * @module
 */
import { DavitError, DeadlineExceeded, errorMessage, InvalidArgument, Unavailable } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { Credentials } from "./auth.ts";
import { digestOf } from "./digest.ts";
import { bareMediaType, type Descriptor, MANIFEST_MAX_BYTES } from "./manifest.ts";
import type { FetchedManifest, RegistryAccess } from "./pull.ts";
import type { PullSource } from "./pull_sources.ts";
import { type Endpoint, RegistryHttp, type RegistryHttpOptions } from "./registry_http.ts";

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions extends RegistryHttpOptions {
  /** A blob download with no byte for this long fails (0: never). */
  progressTimeoutMs: number;
  /** Attempts per blob after the first. */
  maxRetries?: number;
  log: Logger;
}

function endpointOf(source: PullSource): Endpoint {
  return {
    host: source.reference.registry === "docker.io" ? "registry-1.docker.io" : source.reference.registry,
    insecure: source.insecure,
  };
}

async function readCapped(res: Response, limit: number, what: string): Promise<Uint8Array> {
  const len = Number(res.headers.get("content-length") ?? "0");
  if (len > limit) {
    await res.body?.cancel();
    throw new InvalidArgument(`${what} is ${len} bytes, more than the ${limit} allowed`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of res.body ?? new ReadableStream<Uint8Array>()) {
    size += c.length;
    if (size > limit) throw new InvalidArgument(`${what} is more than the ${limit} bytes allowed`);
    chunks.push(c);
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Manifest and blob access to distribution-API registries. */
export class RegistryClient implements RegistryAccess {
  readonly http: RegistryHttp;
  readonly #o: RegistryClientOptions;

  constructor(opts: RegistryClientOptions) {
    this.#o = opts;
    this.http = new RegistryHttp(opts);
  }

  async getManifest(
    source: PullSource,
    reference: string,
    opts: { accept: readonly string[]; credentials?: Credentials; signal?: AbortSignal },
  ): Promise<FetchedManifest> {
    const ep = endpointOf(source);
    const repo = source.reference.repository;
    const what = `manifest ${repo}:${reference}`;
    const res = await this.http.request(ep, `/v2/${repo}/manifests/${reference}`, {
      repository: repo,
      credentials: opts.credentials,
      headers: { accept: opts.accept.join(", ") },
      timeoutMs: this.#o.requestTimeoutMs ?? 30_000,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw RegistryHttp.statusError(ep, res, what, repo);
    }
    const bytes = await readCapped(res, MANIFEST_MAX_BYTES, what);
    const digest = digestOf(bytes);
    if (reference.includes(":") && reference.startsWith("sha256:") && digest !== reference) {
      throw new InvalidArgument(
        `${what} from ${ep.host}: content digest ${digest} does not match the requested digest`,
      );
    }
    return { bytes, mediaType: bareMediaType(res.headers.get("content-type")), digest };
  }

  openBlob(
    source: PullSource,
    desc: Descriptor,
    opts: { credentials?: Credentials; signal?: AbortSignal; onProgress?: (bytes: number) => void },
  ): Promise<ReadableStream<Uint8Array>> {
    const ep = endpointOf(source);
    const repo = source.reference.repository;
    const maxRetries = this.#o.maxRetries ?? 5;
    const progressMs = this.#o.progressTimeoutMs;
    const log = this.#o.log;
    const http = this.http;
    let received = 0;
    let attempt = 0;
    let body: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const outer = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, outer.signal]) : outer.signal;

    const open = async (): Promise<void> => {
      const headers: Record<string, string> = {};
      if (received > 0) headers.range = `bytes=${received}-`;
      const res = await http.request(ep, `/v2/${repo}/blobs/${desc.digest}`, {
        repository: repo,
        credentials: opts.credentials,
        headers,
        signal,
      });
      if (received > 0 && res.status === 200) {
        // No range support: start over, skipping what was already delivered downstream.
        log.debug("registry ignored Range; restarting the blob", { blob: desc.digest, host: ep.host });
        const reader = res.body!.getReader();
        let skip = received;
        while (skip > 0) {
          const { done, value } = await reader.read();
          if (done) throw new Unavailable(`blob ${desc.digest} from ${ep.host} ended early on a retry`);
          if (value.length <= skip) skip -= value.length;
          else {
            const rest = value.subarray(skip);
            skip = 0;
            body = prepend(rest, reader);
            return;
          }
        }
        body = reader;
        return;
      }
      if (!(res.status === 200 || res.status === 206)) {
        await res.body?.cancel();
        throw RegistryHttp.statusError(ep, res, `blob ${desc.digest} of ${repo}`, repo);
      }
      body = res.body!.getReader();
    };

    const withProgressTimeout = async <T>(p: Promise<T>): Promise<T> => {
      if (!progressMs) return await p;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stall = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(
            new DeadlineExceeded(`pull of ${desc.digest} from ${ep.host} made no progress for ${progressMs / 1000}s`),
          );
        }, progressMs);
      });
      try {
        return await Promise.race([p, stall]);
      } finally {
        clearTimeout(timer);
      }
    };

    const retryable = (err: unknown) =>
      err instanceof DavitError
        ? err.kind === "Unavailable"
        : !(err instanceof DOMException && err.name === "AbortError");

    return Promise.resolve(
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          for (;;) {
            try {
              if (!body) await withProgressTimeout(open());
              const { done, value } = await withProgressTimeout(body!.read());
              if (done) {
                if (received < desc.size) {
                  throw new Unavailable(
                    `blob ${desc.digest} from ${ep.host} ended at ${received} of ${desc.size} bytes`,
                  );
                }
                controller.close();
                return;
              }
              received += value.length;
              opts.onProgress?.(value.length);
              controller.enqueue(value);
              return;
            } catch (err) {
              body?.cancel().catch(() => {});
              body = undefined;
              if (err instanceof DeadlineExceeded || !retryable(err) || attempt >= maxRetries || signal.aborted) {
                outer.abort();
                throw err;
              }
              attempt++;
              const wait = Math.min(200 * 2 ** (attempt - 1), 5000);
              log.debug("blob download interrupted; retrying", {
                blob: desc.digest,
                host: ep.host,
                received,
                attempt,
                error: errorMessage(err),
              });
              await new Promise((r) => setTimeout(r, wait));
            }
          }
        },
        cancel(reason) {
          outer.abort(reason);
          return body?.cancel(reason);
        },
      }),
    );
  }

  /** Releases HTTP clients. */
  close(): Promise<void> {
    return this.http.close();
  }
}

function prepend(
  first: Uint8Array,
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStreamDefaultReader<Uint8Array> {
  let pending: Uint8Array | undefined = first;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (pending) {
        c.enqueue(pending);
        pending = undefined;
        return;
      }
      const { done, value } = await reader.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel(r) {
      return reader.cancel(r);
    },
  }).getReader();
}
