/**
 * Requests to registries (distribution spec v1.1, "API"): HTTPS with TLS per host from certs.d; plain HTTP only for
 * endpoints marked insecure, after HTTPS failed to connect; challenge-driven auth (RFC 7235 `WWW-Authenticate`:
 * Bearer tokens from the token server, cached per host, scope and credentials; Basic; or a registry token sent as
 * is); redirects followed by hand so that the Authorization header never reaches another origin; and answers
 * mapped to domain errors that name the registry, the repository and what was attempted. Credentials never
 * appear in messages or logs.
 *
 * `insecure` here means what containers-registries.conf(5) allows, less one thing Deno cannot do per client (skip
 * certificate verification): an insecure registry is probed once with `GET /v2/` over HTTPS, verified against the
 * system roots plus certs.d; when TLS fails or no answer comes in time, plain HTTP is used for it from then on. An
 * insecure registry with an untrusted certificate is therefore reachable only with its CA in certs.d.
 * @module
 */
import { DavitError, NotFound, PermissionDenied, Unavailable } from "../lib/errors.ts";
import { type Logger, logger } from "../lib/log.ts";
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
import {
  isRedirect,
  isTransientStatus,
  parseRetryAfter,
  registryErrorSummary,
  TransientError,
  transportErrorText,
  transportFailure,
} from "./registry_protocol.ts";
import { TokenCache } from "./token_cache.ts";
import {
  type FetchLike,
  fetchWithDeadline,
  HttpClientPool,
  type HttpClientPoolOptions,
  probeTls,
  readCapped,
} from "./transport.ts";

/** One registry endpoint as the client sees it. */
export interface Endpoint {
  /** The API host, `host[:port]`. */
  host: string;
  /** Plain HTTP may be used when HTTPS cannot connect. */
  insecure: boolean;
}

/** Options of {@link RegistryHttp}. */
export interface RegistryHttpOptions {
  /** `<certsDir>/<host[:port]>/` holds `*.crt` CA files and `*.cert`/`*.key` client pairs. */
  certsDir?: string | undefined;
  /** Default `davit`. */
  userAgent?: string;
  /** Deadline for a response head, and for whole manifest, token and error bodies (ms, default 30 000). */
  requestTimeoutMs?: number;
  /** Replaces the global fetch (unit tests). */
  fetch?: FetchLike;
  /** Makes the per-host clients (unit tests). */
  createHttpClient?: HttpClientPoolOptions["createHttpClient"];
  /** The token cache's clock (ms). */
  now?: () => number;
  /** How long a TLS handshake with an insecure registry may take before plain HTTP is assumed (ms, default 3000). */
  tlsProbeTimeoutMs?: number;
  /** Replaces the TLS probe of insecure registries (unit tests). */
  probeTls?: typeof probeTls;
  log?: Logger;
}

/** One request to a registry. */
export interface RegistryRequest {
  method?: "GET" | "HEAD";
  /** `/v2/<name>/...` */
  path: string;
  /** The repository the request is about: the scope of its token and the name in messages. */
  repository: string;
  credentials?: Credentials | undefined;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** What is attempted, for messages: `GET manifest "latest"`. */
  what: string;
}

/** How the request was authorised. */
interface SentAuth {
  header?: string;
  kind: "none" | "basic" | "token" | "registry-token";
}

interface HostState {
  scheme?: Promise<"https" | "http">;
  challenge?: AuthChallenge;
}

const ERROR_BODY_LIMIT = 64 << 10;
const TOKEN_BODY_LIMIT = 1 << 20;
const MAX_REDIRECTS = 5;

/** The challenge to answer: Bearer when offered, else Basic. */
function pickChallenge(challenges: AuthChallenge[]): AuthChallenge | undefined {
  return challenges.find((c) => c.scheme === "bearer" && c.params.realm) ??
    challenges.find((c) => c.scheme === "basic");
}

function who(creds: Credentials | undefined): string {
  if (creds?.username) return `as "${creds.username}"`;
  if (creds?.identityToken) return "with an identity token";
  return "anonymously";
}

function withoutQuery(url: string): string {
  const u = new URL(url);
  return u.origin + u.pathname;
}

/** Waits for `p`, or rejects with `signal`'s reason when it aborts first. */
function raceSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Issues authenticated requests to registries; one per daemon, shared by every pull. */
export class RegistryHttp {
  /** Bearer tokens held (exposed for tests and metrics). */
  readonly tokens: TokenCache;
  readonly #fetch: FetchLike;
  readonly #pool: HttpClientPool;
  readonly #hosts = new Map<string, HostState>();
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #certsDir: string | undefined;
  readonly #log: Logger;
  readonly #probe: typeof probeTls;
  readonly #probeTimeoutMs: number;

  constructor(opts: RegistryHttpOptions = {}) {
    this.#fetch = opts.fetch ?? ((url, init) => fetch(url, init));
    this.#pool = new HttpClientPool({
      certsDir: opts.certsDir,
      ...(opts.createHttpClient ? { createHttpClient: opts.createHttpClient } : {}),
    });
    this.tokens = new TokenCache(opts.now ? { now: opts.now } : {});
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#userAgent = opts.userAgent ?? "davit";
    this.#certsDir = opts.certsDir;
    this.#log = opts.log ?? logger("registry");
    this.#probe = opts.probeTls ?? probeTls;
    this.#probeTimeoutMs = opts.tlsProbeTimeoutMs ?? 3_000;
  }

  /** The deadline for response heads and small bodies (ms). */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** Closes the per-host HTTP clients. */
  close(): Promise<void> {
    return this.#pool.close();
  }

  #state(host: string): HostState {
    let s = this.#hosts.get(host);
    if (!s) this.#hosts.set(host, s = {});
    return s;
  }

  /**
   * Sends the request, authenticating when the registry answers 401 and trying once more. Returns the final
   * response whatever its status, except a 401 that authenticating did not cure: that is PermissionDenied.
   * Transport failures are Unavailable (TransientError when a retry may help).
   */
  async request(ep: Endpoint, req: RegistryRequest): Promise<Response> {
    const scope = repositoryScope(req.repository);
    const creds = req.credentials;
    const refused = (why: string) =>
      new PermissionDenied(
        redactCredentials(`registry ${ep.host} refused access to repository "${req.repository}": ${why}`, creds),
      );
    const sent = await this.#authorization(ep, req, scope);
    let res = await this.#send(ep, req, sent.header);
    if (res.status !== 401) return res;

    const header = res.headers.get("www-authenticate") ?? "";
    let detail = await this.#bodySummary(res, creds);
    if (sent.kind === "registry-token") {
      throw refused(`${req.what}: the registry token was not accepted (HTTP 401${detail})`);
    }
    const challenge = pickChallenge(parseWwwAuthenticate(header));
    if (!challenge) throw refused(`${req.what} answered HTTP 401 with no usable WWW-Authenticate challenge${detail}`);
    this.#state(ep.host).challenge = challenge;
    if (sent.kind === "token") this.tokens.delete({ registry: ep.host, scope, credentials: creds });
    const next = await this.#authorization(ep, req, scope);
    if (next.header === undefined) {
      throw refused(`${req.what} requires authentication and no credentials were given (HTTP 401${detail})`);
    }
    if (next.header === sent.header) throw refused(`${req.what} answered HTTP 401 ${who(creds)}${detail}`);
    res = await this.#send(ep, req, next.header);
    if (res.status !== 401) return res;
    detail = await this.#bodySummary(res, creds);
    if (next.kind === "token") this.tokens.delete({ registry: ep.host, scope, credentials: creds });
    throw refused(`${req.what} answered HTTP 401 after authenticating ${who(creds)}${detail}`);
  }

  /** The Authorization header to send now, from what is known of the host's challenge. */
  async #authorization(ep: Endpoint, req: RegistryRequest, scope: string): Promise<SentAuth> {
    const creds = req.credentials;
    if (creds?.registryToken) return { header: `Bearer ${creds.registryToken}`, kind: "registry-token" };
    const challenge = this.#state(ep.host).challenge;
    if (challenge?.scheme === "basic") {
      return creds?.username
        ? { header: `Basic ${encodeBasic(creds.username, creds.password ?? "")}`, kind: "basic" }
        : { kind: "none" };
    }
    if (challenge?.scheme !== "bearer") return { kind: "none" };
    // The token request is shared by concurrent callers, so it runs under its own deadline, not a caller's signal.
    const token = await raceSignal(
      this.tokens.obtain(
        { registry: ep.host, scope, credentials: creds },
        () => this.#fetchToken(ep, challenge, scope, req.repository, creds),
      ),
      req.signal,
    );
    return { header: `Bearer ${token}`, kind: "token" };
  }

  async #fetchToken(
    ep: Endpoint,
    challenge: AuthChallenge,
    scope: string,
    repository: string,
    creds: Credentials | undefined,
  ): Promise<{ token: string; expiresIn: number }> {
    const tr = tokenRequest(challenge, { scopes: [scope], credentials: creds, clientId: "davit" });
    const realm = withoutQuery(tr.url);
    const what = `token request to ${realm}`;
    const u = new URL(tr.url);
    let res: Response;
    try {
      res = await fetchWithDeadline(this.#fetch, tr.url, {
        method: tr.method,
        headers: { ...tr.headers, "user-agent": this.#userAgent },
        ...(tr.body !== undefined ? { body: tr.body } : {}),
        // A token server that redirects would carry the Basic credentials along: refuse instead.
        redirect: "manual",
        client: await this.#pool.client(u.host),
        timeoutMs: this.#timeoutMs,
        deadlineMessage: `registry ${ep.host}: ${what} got no answer within ${this.#timeoutMs / 1000}s`,
      });
    } catch (err) {
      throw this.#transportError(ep, what, tr.url, err, creds);
    }
    this.#log.debug("token request", { registry: ep.host, realm, scope, status: res.status, anonymous: !creds });
    if (res.status === 401 || res.status === 403) {
      const detail = await this.#bodySummary(res, creds);
      const whom = creds ? `the credentials ${who(creds).replace(/^as /, "of ")}` : "an anonymous request";
      throw new PermissionDenied(
        redactCredentials(
          `registry ${ep.host} refused access to repository "${repository}": the token server ${realm} refused ${whom} (HTTP ${res.status}${detail})`,
          creds,
        ),
      );
    }
    if (res.status !== 200) {
      const detail = await this.#bodySummary(res, creds);
      const message = redactCredentials(`registry ${ep.host}: ${what} answered HTTP ${res.status}${detail}`, creds);
      if (isTransientStatus(res.status)) {
        throw new TransientError(message, {
          retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), Date.now()),
          status: res.status,
        });
      }
      throw new Unavailable(message);
    }
    const body = await readCapped(res, { limit: TOKEN_BODY_LIMIT, timeoutMs: this.#timeoutMs, what });
    try {
      const grant = parseTokenResponse(JSON.parse(new TextDecoder().decode(body)));
      return { token: grant.token, expiresIn: grant.expiresIn };
    } catch (err) {
      // Never quote the body: it may hold a token.
      throw new Unavailable(`registry ${ep.host}: ${what} answered an unusable token response`, { cause: err });
    }
  }

  /** Sends over HTTPS, or for an insecure endpoint whose TLS does not work, plain HTTP. */
  async #send(ep: Endpoint, req: RegistryRequest, auth: string | undefined): Promise<Response> {
    const scheme = await this.#scheme(ep);
    const url = `${scheme}://${ep.host}${req.path}`;
    try {
      return await this.#follow(ep, req, url, auth);
    } catch (err) {
      if (err instanceof DavitError || req.signal?.aborted) throw err;
      throw this.#transportError(ep, req.what, url, err, req.credentials);
    }
  }

  /** The scheme for `ep`: HTTPS, unless it is insecure and a TLS handshake with it fails (probed once per host). */
  #scheme(ep: Endpoint): Promise<"https" | "http"> {
    if (!ep.insecure) return Promise.resolve("https");
    const state = this.#state(ep.host);
    if (state.scheme) return state.scheme;
    const probe = (async () => {
      const found = await this.#probe(this.#fetch, ep.host, {
        client: await this.#pool.client(ep.host),
        timeoutMs: this.#probeTimeoutMs,
        userAgent: this.#userAgent,
      });
      this.#log.debug("insecure registry scheme", { registry: ep.host, scheme: found });
      return found;
    })();
    // Concurrent requests share the probe; an unreachable host is probed again next time.
    const scheme = probe.then((found) => (found === "refused" ? "https" : found));
    state.scheme = scheme;
    probe.then((found) => found === "refused", () => true).then((again) => {
      if (again && state.scheme === scheme) delete state.scheme;
    });
    return scheme;
  }

  /** One request with redirects followed by hand: Authorization goes only to the registry's own origin. */
  async #follow(ep: Endpoint, req: RegistryRequest, url: string, auth: string | undefined): Promise<Response> {
    const origin = new URL(url).origin;
    let current = url;
    let method: string = req.method ?? "GET";
    for (let hop = 0;; hop++) {
      const u = new URL(current);
      const headers: Record<string, string> = { "user-agent": this.#userAgent, ...req.headers };
      if (auth !== undefined && u.origin === origin) headers.authorization = auth;
      const started = performance.now();
      const res = await fetchWithDeadline(this.#fetch, current, {
        method,
        headers,
        redirect: "manual",
        client: await this.#pool.client(u.host),
        signal: req.signal,
        timeoutMs: this.#timeoutMs,
        deadlineMessage: `registry ${ep.host}: ${req.what} got no answer from ${u.host} within ${
          this.#timeoutMs / 1000
        }s`,
      });
      this.#log.debug("registry request", {
        method,
        url: withoutQuery(current),
        status: res.status,
        ms: Math.round(performance.now() - started),
      });
      if (!isRedirect(res.status)) return res;
      const location = res.headers.get("location");
      await res.body?.cancel();
      if (!location) throw new Unavailable(`registry ${ep.host}: ${req.what} was redirected with no Location`);
      if (hop >= MAX_REDIRECTS) {
        throw new Unavailable(`registry ${ep.host}: ${req.what} was redirected more than ${MAX_REDIRECTS} times`);
      }
      const next = new URL(location, current);
      if (next.protocol !== "https:" && next.protocol !== "http:") {
        throw new Unavailable(`registry ${ep.host}: ${req.what} was redirected to a ${next.protocol} URL`);
      }
      if (u.protocol === "https:" && next.protocol === "http:" && !ep.insecure) {
        throw new Unavailable(
          `registry ${ep.host}: ${req.what} was redirected from HTTPS to plain HTTP (${next.host}); refused`,
        );
      }
      if (res.status === 303 && method !== "HEAD") method = "GET";
      current = next.href;
    }
  }

  #transportError(ep: Endpoint, what: string, url: string, err: unknown, creds: Credentials | undefined): DavitError {
    if (err instanceof DavitError) return err;
    const text = transportErrorText(err);
    const kind = transportFailure(text);
    let message = `registry ${ep.host} is unreachable: ${what} (${withoutQuery(url)}): ${text}`;
    if (kind === "tls" && url.startsWith("https:")) {
      message += this.#certsDir
        ? ` (a private CA belongs in ${this.#certsDir}/${new URL(url).host}/ca.crt)`
        : " (no certs.d directory is configured for private CAs)";
    }
    message = redactCredentials(message, creds);
    if (kind === "tls" || kind === "dns") return new Unavailable(message, { cause: err });
    return new TransientError(message, { cause: err });
  }

  /** `: summary` of an error body (redacted, short), or "" when it says nothing; consumes the body. */
  async #bodySummary(res: Response, creds: Credentials | undefined): Promise<string> {
    try {
      const body = await readCapped(res, { limit: ERROR_BODY_LIMIT, timeoutMs: 5_000, what: "error body" });
      const summary = redactCredentials(registryErrorSummary(new TextDecoder().decode(body)), creds);
      return summary === "" ? "" : `: ${summary}`;
    } catch {
      await res.body?.cancel().catch(() => {});
      return "";
    }
  }

  /**
   * The domain error for an answer that is not a success: 401/403 PermissionDenied, 404 NotFound (`notFound` says
   * what is missing), 429/5xx TransientError with the server's Retry-After, 416 a TransientError asking to drop the
   * range, anything else Unavailable. Consumes the body.
   */
  async statusError(
    ep: Endpoint,
    res: Response,
    ctx: { what: string; repository: string; notFound: string; credentials?: Credentials | undefined },
  ): Promise<DavitError> {
    const detail = await this.#bodySummary(res, ctx.credentials);
    const r = (s: string) => redactCredentials(s, ctx.credentials);
    const s = res.status;
    if (s === 401 || s === 403) {
      return new PermissionDenied(
        r(`registry ${ep.host} refused access to repository "${ctx.repository}": ${ctx.what} answered HTTP ${s}${detail}`),
      );
    }
    if (s === 404) return new NotFound(r(`${ctx.notFound}${detail ? ` (${detail.slice(2)})` : ""}`));
    const message = r(`registry ${ep.host} answered HTTP ${s} to ${ctx.what}${detail}`);
    if (s === 416) return new TransientError(message, { rangeRefused: true, status: s });
    if (isTransientStatus(s)) {
      return new TransientError(message, {
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), Date.now()),
        status: s,
      });
    }
    return new Unavailable(message);
  }
}
