/**
 * Bearer tokens from registry token servers, cached per (registry, scope, credentials) until shortly before they
 * expire, with concurrent requests for one key sharing a single token request. Keys hold a hash of the
 * credentials, never the credentials: a token obtained with one caller's credentials is never handed to a caller
 * with other (or no) credentials.
 * @module
 */
import { createHash } from "node:crypto";
import type { Credentials } from "./auth.ts";

/** What a token is for. */
export interface TokenKey {
  /** The registry host (`host[:port]`). */
  registry: string;
  /** The distribution scope, `repository:<name>:pull`. */
  scope: string;
  credentials: Credentials | undefined;
}

/** A token as a token server granted it. */
export interface TokenGrant {
  token: string;
  /** Lifetime in seconds. */
  expiresIn: number;
}

/** Options of {@link TokenCache}. */
export interface TokenCacheOptions {
  /** The clock (ms); `Date.now` by default. */
  now?: () => number;
  /** Entries kept at most; the soonest to expire go first (default 1024). */
  maxEntries?: number;
}

/** A stable, non-reversible name for a set of credentials ("anonymous" for none). */
export function credentialsFingerprint(creds: Credentials | undefined): string {
  if (!creds) return "anonymous";
  const parts = [creds.username, creds.password, creds.identityToken, creds.registryToken].map((s) => s ?? "");
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** How long before its stated expiry a token stops being used: a tenth of its life, at most 30 s. */
export function renewMarginMs(expiresInS: number): number {
  return Math.min(30_000, (expiresInS * 1000) / 10);
}

interface Entry {
  token: string;
  /** Usable until this time (ms). */
  until: number;
}

/** The cache; one per registry client. */
export class TokenCache {
  readonly #now: () => number;
  readonly #max: number;
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<string>>();

  constructor(opts: TokenCacheOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#max = opts.maxEntries ?? 1024;
  }

  #key(k: TokenKey): string {
    return `${k.registry}\n${k.scope}\n${credentialsFingerprint(k.credentials)}`;
  }

  /** Entries currently held (expired ones included until they are swept). */
  get size(): number {
    return this.#entries.size;
  }

  /** The cached token for `key`, unless it is (nearly) expired. */
  get(key: TokenKey): string | undefined {
    const k = this.#key(key);
    const e = this.#entries.get(k);
    if (!e) return undefined;
    if (e.until <= this.#now()) {
      this.#entries.delete(k);
      return undefined;
    }
    return e.token;
  }

  /** Stores a grant. Tokens with no useful life left are not stored. */
  set(key: TokenKey, grant: TokenGrant): void {
    const now = this.#now();
    const until = now + grant.expiresIn * 1000 - renewMarginMs(grant.expiresIn);
    if (until <= now) return;
    this.#entries.set(this.#key(key), { token: grant.token, until });
    if (this.#entries.size > this.#max) this.#sweep(now);
  }

  /** Forgets the token for `key` (the registry refused it). */
  delete(key: TokenKey): void {
    this.#entries.delete(this.#key(key));
  }

  /**
   * The cached token for `key`, or the one `fetchGrant` obtains. Concurrent calls for one key share one fetch; a
   * failed fetch is not cached.
   */
  obtain(key: TokenKey, fetchGrant: () => Promise<TokenGrant>): Promise<string> {
    const cached = this.get(key);
    if (cached !== undefined) return Promise.resolve(cached);
    const k = this.#key(key);
    let p = this.#inflight.get(k);
    if (!p) {
      p = (async () => {
        const grant = await fetchGrant();
        this.set(key, grant);
        return grant.token;
      })().finally(() => this.#inflight.delete(k));
      this.#inflight.set(k, p);
    }
    return p;
  }

  #sweep(now: number): void {
    for (const [k, e] of this.#entries) if (e.until <= now) this.#entries.delete(k);
    if (this.#entries.size <= this.#max) return;
    const soonest = [...this.#entries].sort((a, b) => a[1].until - b[1].until);
    for (const [k] of soonest.slice(0, this.#entries.size - this.#max)) this.#entries.delete(k);
  }
}
