/**
 * The HTTP transport under the registry client: TLS settings per host from a certs.d directory (containers-certs.d(5):
 * `<dir>/<host[:port]>/*.crt` are CA roots added to the system's, `*.cert` with the `*.key` of the same name is the
 * client certificate), one `Deno.HttpClient` per host, and a fetch with a deadline on the response head.
 * @module
 */
import { DeadlineExceeded, InvalidArgument } from "../lib/errors.ts";
import { transportErrorText } from "./registry_protocol.ts";

/** The fetch the transport calls; injectable so unit tests can answer requests themselves. */
export type FetchLike = (url: string, init: RequestInit & { client?: Deno.HttpClient }) => Promise<Response>;

/** TLS settings for one host. */
export interface HostTls {
  /** PEM CA certificates trusted in addition to the system roots. */
  caCerts: string[];
  /** PEM client certificate chain and key (mutual TLS). */
  cert?: string;
  key?: string;
}

/**
 * Reads `<certsDir>/<host>/`: undefined when the directory is absent or holds nothing usable. A `.cert` without its
 * `.key` (or the reverse) is an error naming the file. When several client pairs exist, the first by name is used
 * (a Deno HTTP client holds one).
 */
export async function loadHostTls(certsDir: string, host: string): Promise<HostTls | undefined> {
  // A host comes from a reference or a redirect's URL; refuse anything that could leave certsDir.
  if (host === "" || host.includes("/") || host.includes("\\") || host.startsWith(".")) return undefined;
  const dir = `${certsDir}/${host}`;
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (!e.isDirectory) names.push(e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return undefined;
    throw err;
  }
  names.sort();
  const out: HostTls = { caCerts: [] };
  for (const name of names) {
    if (name.endsWith(".crt")) out.caCerts.push(await Deno.readTextFile(`${dir}/${name}`));
    else if (name.endsWith(".cert")) {
      const keyName = name.slice(0, -".cert".length) + ".key";
      if (!names.includes(keyName)) {
        throw new InvalidArgument(`certs.d ${dir}: client certificate ${name} has no matching ${keyName}`);
      }
      if (out.cert === undefined) {
        out.cert = await Deno.readTextFile(`${dir}/${name}`);
        out.key = await Deno.readTextFile(`${dir}/${keyName}`);
      }
    } else if (name.endsWith(".key")) {
      const certName = name.slice(0, -".key".length) + ".cert";
      if (!names.includes(certName)) {
        throw new InvalidArgument(`certs.d ${dir}: key ${name} has no matching client certificate ${certName}`);
      }
    }
  }
  return out.caCerts.length === 0 && out.cert === undefined ? undefined : out;
}

/** Options of {@link HttpClientPool}. */
export interface HttpClientPoolOptions {
  /** The certs.d directory; without it every host gets the system roots only. */
  certsDir?: string | undefined;
  /** Makes a client (tests may record the options). */
  createHttpClient?: (opts: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem>) => Deno.HttpClient;
}

/** One HTTP client per host (`host[:port]`), made on first use from certs.d; close the pool to release them. */
export class HttpClientPool {
  readonly #o: HttpClientPoolOptions;
  readonly #entries = new Map<string, Promise<{ client: Deno.HttpClient; tls: HostTls | undefined }>>();
  #closed = false;

  constructor(opts: HttpClientPoolOptions = {}) {
    this.#o = opts;
  }

  #entry(host: string): Promise<{ client: Deno.HttpClient; tls: HostTls | undefined }> {
    if (this.#closed) return Promise.reject(new Error("HTTP client pool is closed"));
    let e = this.#entries.get(host);
    if (!e) {
      e = this.#make(host);
      this.#entries.set(host, e);
      e.catch(() => this.#entries.delete(host));
    }
    return e;
  }

  /** The client for `host`; a broken certs.d entry rejects (and is read again on the next call). */
  async client(host: string): Promise<Deno.HttpClient> {
    return (await this.#entry(host)).client;
  }

  async #make(host: string): Promise<{ client: Deno.HttpClient; tls: HostTls | undefined }> {
    const tls = this.#o.certsDir ? await loadHostTls(this.#o.certsDir, host) : undefined;
    const opts: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {};
    if (tls) {
      opts.caCerts = tls.caCerts;
      if (tls.cert !== undefined && tls.key !== undefined) Object.assign(opts, { cert: tls.cert, key: tls.key });
    }
    const create = this.#o.createHttpClient ??
      ((o: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem>) =>
        Deno.createHttpClient(o as Deno.CreateHttpClientOptions));
    return { client: create(opts), tls };
  }

  /** Closes every client; later calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#entries.values()];
    this.#entries.clear();
    for (const e of await Promise.allSettled(all)) if (e.status === "fulfilled") e.value.client.close();
  }
}

/**
 * Fetches with a deadline on the response head only: the body stays readable afterwards and is cut when `signal`
 * aborts. A missed deadline rejects with DeadlineExceeded(`deadlineMessage`); an abort of `signal` rejects with its
 * reason; transport failures reject with fetch's own error.
 */
export async function fetchWithDeadline(
  fetchFn: FetchLike,
  url: string,
  init: Omit<RequestInit, "signal"> & {
    client?: Deno.HttpClient;
    signal?: AbortSignal | undefined;
    timeoutMs: number;
    deadlineMessage: string;
  },
): Promise<Response> {
  const { timeoutMs, deadlineMessage, signal, ...rest } = init;
  signal?.throwIfAborted();
  const timer = new AbortController();
  const id = timeoutMs > 0
    ? setTimeout(() => timer.abort(new DeadlineExceeded(deadlineMessage)), timeoutMs)
    : undefined;
  try {
    return await fetchFn(url, { ...rest, signal: signal ? AbortSignal.any([signal, timer.signal]) : timer.signal });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (timer.signal.aborted) throw timer.signal.reason;
    throw err;
  } finally {
    clearTimeout(id);
  }
}

/**
 * Reads a whole body of at most `limit` bytes within `timeoutMs` (0: no deadline). Over the limit rejects with
 * InvalidArgument naming `what`; a missed deadline with DeadlineExceeded; an abort of `signal` with its reason.
 */
export async function readCapped(
  res: Response,
  opts: { limit: number; timeoutMs: number; what: string; signal?: AbortSignal | undefined },
): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > opts.limit) {
    await res.body?.cancel();
    throw new InvalidArgument(`${opts.what} is ${declared} bytes, more than the ${opts.limit} allowed`);
  }
  if (!res.body) return new Uint8Array();
  const reader = res.body.getReader();
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    reader.cancel(err).catch(() => {});
  };
  const id = opts.timeoutMs > 0
    ? setTimeout(
      () => fail(new DeadlineExceeded(`${opts.what}: body not received within ${opts.timeoutMs / 1000}s`)),
      opts.timeoutMs,
    )
    : undefined;
  const onAbort = () => fail(opts.signal!.reason);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        throw failure ?? err;
      }
      if (failure !== undefined) throw failure;
      if (r.done) break;
      size += r.value.length;
      if (size > opts.limit) {
        const err = new InvalidArgument(`${opts.what} is more than the ${opts.limit} bytes allowed`);
        fail(err);
        throw err;
      }
      chunks.push(r.value);
    }
  } finally {
    clearTimeout(id);
    opts.signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * Finds out whether `host` speaks TLS that verifies (with the CAs of `client`) by asking `GET /v2/` over HTTPS:
 * "https" when any HTTP answer comes within `timeoutMs`, "http" when TLS fails or the server stays silent (a
 * plain-HTTP server waits for a request line and never answers a ClientHello), "refused" when nothing listens
 * (which says nothing about the scheme).
 */
export async function probeTls(
  fetchFn: FetchLike,
  host: string,
  opts: { client?: Deno.HttpClient; timeoutMs: number; userAgent: string },
): Promise<"https" | "http" | "refused"> {
  try {
    const init: RequestInit & { client?: Deno.HttpClient } = {
      headers: { "user-agent": opts.userAgent },
      redirect: "manual",
      signal: AbortSignal.timeout(opts.timeoutMs),
    };
    if (opts.client) init.client = opts.client;
    const res = await fetchFn(`https://${host}/v2/`, init);
    await res.body?.cancel();
    return "https";
  } catch (err) {
    return /connection refused/i.test(transportErrorText(err)) ? "refused" : "http";
  }
}
