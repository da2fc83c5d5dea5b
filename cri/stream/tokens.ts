/**
 * Single-use tokens for the streaming server: the CRI Exec, Attach and PortForward calls record what was asked
 * and answer with a URL holding a token; the client's HTTP request to that URL takes the record back, once.
 *
 * Tokens are 256 random bits in URL-safe base64, so they cannot be guessed; they are looked up as map keys, so no
 * comparison leaks timing. Never log them: a token is a credential until it is used or expires.
 * @module
 */
import { ResourceExhausted } from "../../lib/errors.ts";

/** Options for a {@link TokenStore}. */
export interface TokenStoreOptions {
  /** How long an unused token stays valid, in ms (default 60 000). */
  ttlMs?: number;
  /** Most live tokens (default 1000); `put` beyond that throws {@link ResourceExhausted}. */
  maxEntries?: number;
  /** The clock, in ms (default `Date.now`); tests inject their own. */
  now?: () => number;
}

const TOKEN_BYTES = 32;

interface Entry<T> {
  value: T;
  expiresAt: number;
}

/**
 * Values under unguessable single-use tokens that expire. Expired entries are swept on every `put` and `take`
 * (no timer, so nothing outlives its owner). When full, `put` throws rather than evicting a live token: the new
 * request fails where its caller can report it, and requests already handed out keep working.
 */
export class TokenStore<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(options: TokenStoreOptions = {}) {
    this.#ttlMs = options.ttlMs ?? 60_000;
    this.#maxEntries = options.maxEntries ?? 1000;
    this.#now = options.now ?? Date.now;
    if (!(this.#ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${this.#ttlMs}`);
    if (!(this.#maxEntries >= 1)) throw new RangeError(`maxEntries must be at least 1, got ${this.#maxEntries}`);
  }

  /** Stores `value` and returns a new token for it. Throws {@link ResourceExhausted} when the store is full. */
  put(value: T): string {
    const now = this.#now();
    this.#sweep(now);
    if (this.#entries.size >= this.#maxEntries) {
      throw new ResourceExhausted(
        `Cannot start another streaming session: ${this.#entries.size} requests are waiting for their clients`,
      );
    }
    let token = newToken();
    // 256 random bits do not collide; the loop only documents that a token is never reused.
    while (this.#entries.has(token)) token = newToken();
    this.#entries.set(token, { value, expiresAt: now + this.#ttlMs });
    return token;
  }

  /** Returns the value under `token` and forgets it; undefined when unknown, already taken or expired. */
  take(token: string): T | undefined {
    const now = this.#now();
    this.#sweep(now);
    const entry = this.#entries.get(token);
    if (!entry) return undefined;
    this.#entries.delete(token);
    return entry.expiresAt > now ? entry.value : undefined;
  }

  /** How many tokens are live (expired ones are swept first). */
  get size(): number {
    this.#sweep(this.#now());
    return this.#entries.size;
  }

  /** Forgets every token. */
  clear(): void {
    this.#entries.clear();
  }

  // The map is in insertion order and every entry lives as long, so expired entries come first. A clock that went
  // backwards only delays a sweep; `take` still checks each entry's own expiry.
  #sweep(now: number): void {
    for (const [token, entry] of this.#entries) {
      if (entry.expiresAt > now) break;
      this.#entries.delete(token);
    }
  }
}

/** A fresh token: TOKEN_BYTES random bytes, URL-safe base64 without padding (RFC 4648 Section 5). */
function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(TOKEN_BYTES));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
