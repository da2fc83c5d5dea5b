/**
 * HTTP to registries (distribution spec v2): TLS per host from a certs.d directory, plain HTTP only for endpoints
 * marked insecure, challenge-driven auth (Bearer tokens cached per host and scope until they expire, Basic, or a
 * registry token used as is), redirects that never carry credentials to another host, and errors with gRPC-worthy
 * kinds. Credentials never appear in messages.
 * @module
 */
import { DavitError, DeadlineExceeded, errorMessage, NotFound, PermissionDenied, Unavailable } from "../lib/errors.ts";
import {
  type AuthChallenge,
  type Credentials,
  encodeBasic,
  parseTokenResponse,
  parseWwwAuthenticate,
  redactCredentials,
  repositoryScope,
  tokenRequest,
} from "./auth.ts";

/** One registry endpoint as the client sees it. */
export interface Endpoint {
  /** host[:port] */
  host: string;
  insecure: boolean;
}

/** Options of {@link RegistryHttp}. */
export interface RegistryHttpOptions {
  /** `<certsDir>/<host[:port]>/` holds `*.crt` CA files and `*.cert`/`*.key` client pairs. */
  certsDir?: string;
  userAgent?: string;
  /** Per-request timeout for anything but streaming bodies (ms). */
  requestTimeoutMs?: number;
}

interface CachedToken {
  value: string;
  expires: number;
}

/** Issues authenticated requests to registries. */
export class RegistryHttp {
  readonly #o: RegistryHttpOptions;
  readonly #clients = new Map<string, Promise<Deno.HttpClient | undefined>>();
  readonly #tokens = new Map<string, CachedToken>();
  readonly #basic = new Set<string>();

  constructor(opts: RegistryHttpOptions = {}) {
    this.#o = opts;
  }

  /** Closes the per-host HTTP clients. */
  async close(): Promise<void> {
    for (const c of this.#clients.values()) (await c.catch(() => undefined))?.close();
    this.#clients.clear();
  }

  #base(ep: Endpoint): string {
    return `${ep.insecure ? "http" : "https"}://${ep.host}`;
  }

  #client(host: string): Promise<Deno.HttpClient | undefined> {
    let c = this.#clients.get(host);
    if (!c) {
      c = this.#makeClient(host);
      this.#clients.set(host, c);
    }
    return c;
  }

  async #makeClient(host: string): Promise<Deno.HttpClient | undefined> {
    if (!this.#o.certsDir) return undefined;
    const dir = `${this.#o.certsDir}/${host}`;
    const caCerts: string[] = [];
    let cert: string | undefined, key: string | undefined;
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.name.endsWith(".crt")) caCerts.push(await Deno.readTextFile(`${dir}/${e.name}`));
        else if (e.name.endsWith(".cert")) {
          cert = await Deno.readTextFile(`${dir}/${e.name}`);
          key = await Deno.readTextFile(`${dir}/${e.name.slice(0, -5)}.key`).catch(() => {
            throw new PermissionDenied(`client certificate ${dir}/${e.name} has no matching .key file`);
          });
        }
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
    if (caCerts.length === 0 && !cert) return undefined;
    const opts: Deno.CreateHttpClientOptions = { caCerts };
    if (cert && key) Object.assign(opts, { cert, key });
    return Deno.createHttpClient(opts);
  }

  /**
   * Sends `GET base+path` (or HEAD), answering 401s by authenticating for `repository` and trying once more.
   * Returns the final response (any status); the caller maps it.
   */
  async request(
    ep: Endpoint,
    path: string,
    opts: {
      repository: string;
      credentials?: Credentials | undefined;
      headers?: Record<string, string>;
      method?: "GET" | "HEAD";
      signal?: AbortSignal;
      timeoutMs?: number;
    },
  ): Promise<Response> {
    const scope = repositoryScope(opts.repository);
    const send = async (url: string, auth: string | undefined, hops: number): Promise<Response> => {
      const headers: Record<string, string> = { "user-agent": this.#o.userAgent ?? "davit", ...opts.headers };
      if (auth) headers.authorization = auth;
      const u = new URL(url);
      const client = await this.#client(u.host);
      const init: RequestInit & { client?: Deno.HttpClient } = {
        method: opts.method ?? "GET",
        headers,
        redirect: "manual",
        ...(client ? { client } : {}),
      };
      const signals = [opts.signal, opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined].filter(
        (s): s is AbortSignal => s !== undefined,
      );
      if (signals.length) init.signal = AbortSignal.any(signals);
      let res: Response;
      try {
        res = await fetch(url, init);
      } catch (err) {
        throw this.#networkError(ep, `GET ${u.pathname}`, err, opts.credentials);
      }
      if ([301, 302, 303, 307, 308].includes(res.status) && hops < 5) {
        const loc = res.headers.get("location");
        await res.body?.cancel();
        if (!loc) throw new Unavailable(`registry ${ep.host} redirected ${u.pathname} without a location`);
        const next = new URL(loc, url);
        // Credentials belong to the registry: a redirect to blob storage elsewhere goes without them.
        return await send(next.href, next.host === u.host ? auth : undefined, hops + 1);
      }
      return res;
    };
    const url = this.#base(ep) + path;
    let auth = this.#cachedAuth(ep, scope, opts.credentials);
    let res = await send(url, auth, 0);
    if (res.status !== 401) return res;
    const header = res.headers.get("www-authenticate") ?? "";
    await res.body?.cancel();
    auth = await this.#authenticate(ep, scope, parseWwwAuthenticate(header), opts);
    if (!auth) return new Response(null, { status: 401 });
    res = await send(url, auth, 0);
    return res;
  }

  #cachedAuth(ep: Endpoint, scope: string, creds: Credentials | undefined): string | undefined {
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const key = `${ep.host} ${scope} ${this.#credKey(creds)}`;
    const t = this.#tokens.get(key);
    if (t && t.expires > Date.now()) return `Bearer ${t.value}`;
    if (this.#basic.has(ep.host) && creds?.username) {
      return `Basic ${encodeBasic(creds.username, creds.password ?? "")}`;
    }
    return undefined;
  }

  #credKey(creds: Credentials | undefined): string {
    // Tokens obtained with one user's credentials are never handed to another caller's request.
    return creds ? [creds.username ?? "", creds.password ?? "", creds.identityToken ?? ""].join("\0") : "anon";
  }

  async #authenticate(
    ep: Endpoint,
    scope: string,
    challenges: AuthChallenge[],
    opts: { credentials?: Credentials | undefined; signal?: AbortSignal },
  ): Promise<string | undefined> {
    const creds = opts.credentials;
    const bearer = challenges.find((c) => c.scheme === "bearer");
    if (bearer) {
      const req = tokenRequest(bearer, { scopes: [scope], credentials: creds });
      const client = await this.#client(new URL(req.url).host);
      let res: Response;
      try {
        res = await fetch(req.url, {
          method: req.method,
          headers: req.headers,
          ...(req.body ? { body: req.body } : {}),
          signal: opts.signal
            ? AbortSignal.any([opts.signal, AbortSignal.timeout(this.#o.requestTimeoutMs ?? 30_000)])
            : AbortSignal.timeout(this.#o.requestTimeoutMs ?? 30_000),
          ...(client ? { client } : {}),
        } as RequestInit);
      } catch (err) {
        throw this.#networkError(ep, "token request", err, creds);
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        throw new PermissionDenied(
          `registry ${ep.host} refused the credentials for ${scope}: token server answered ${res.status}`,
        );
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Unavailable(`registry ${ep.host}: token server answered ${res.status} for ${scope}`);
      }
      const tok = parseTokenResponse(await res.json());
      this.#tokens.set(`${ep.host} ${scope} ${this.#credKey(creds)}`, {
        value: tok.token,
        // Renew a little early so a long pull never sends an expired token.
        expires: Date.now() + Math.max(1, tok.expiresIn - 10) * 1000,
      });
      return `Bearer ${tok.token}`;
    }
    if (challenges.some((c) => c.scheme === "basic") && creds?.username) {
      this.#basic.add(ep.host);
      return `Basic ${encodeBasic(creds.username, creds.password ?? "")}`;
    }
    return undefined;
  }

  #networkError(ep: Endpoint, what: string, err: unknown, creds: Credentials | undefined): DavitError {
    if (err instanceof DavitError) return err;
    const msg = redactCredentials(errorMessage(err), creds);
    if (err instanceof DOMException && err.name === "TimeoutError") {
      return new DeadlineExceeded(`registry ${ep.host}: ${what} timed out`, { cause: err });
    }
    if (err instanceof DOMException && err.name === "AbortError") {
      return new DeadlineExceeded(`registry ${ep.host}: ${what} was cancelled`, { cause: err });
    }
    return new Unavailable(`registry ${ep.host}: ${what} failed: ${msg}`, { cause: err });
  }

  /** Maps a non-success answer to a domain error naming what was asked. */
  static statusError(ep: Endpoint, res: Response, what: string, repository: string): DavitError {
    if (res.status === 401 || res.status === 403) {
      return new PermissionDenied(
        `registry ${ep.host} refused access to repository "${repository}" (${res.status}) for ${what}`,
      );
    }
    if (res.status === 404) return new NotFound(`${what} not found in registry ${ep.host}`);
    if (res.status === 429 || res.status >= 500) {
      return new Unavailable(`registry ${ep.host} answered ${res.status} for ${what}`);
    }
    return new Unavailable(`registry ${ep.host} answered ${res.status} for ${what}`);
  }
}
