/**
 * Content digests (OCI image spec, descriptor.md "Digests"): parsing and validation of `algorithm:encoded`, and a
 * streaming verifier that hashes bytes as they pass and refuses content whose digest or size is not the expected one.
 * Hashing uses `node:crypto` because Web Crypto's `subtle.digest` cannot hash incrementally.
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { InvalidArgument } from "../lib/errors.ts";

/** The digest algorithms davit verifies (the OCI registered algorithms). */
export type DigestAlgorithm = "sha256" | "sha512";

/** A parsed, validated digest. */
export interface Digest {
  algorithm: DigestAlgorithm;
  /** Lower-case hex of the hash. */
  encoded: string;
}

const ENCODED_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
// descriptor.md grammar: algorithm-component (separator algorithm-component)* ":" encoded.
const GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Returns why `input` is not a supported digest, or undefined when it is one. */
export function digestProblem(input: string): string | undefined {
  if (!GRAMMAR.test(input)) return "expected algorithm:hex";
  const colon = input.indexOf(":");
  const algorithm = input.slice(0, colon);
  const encoded = input.slice(colon + 1);
  if (algorithm !== "sha256" && algorithm !== "sha512") return `unsupported digest algorithm "${algorithm}"`;
  const want = ENCODED_LENGTH[algorithm];
  if (encoded.length !== want || !/^[a-f0-9]+$/.test(encoded)) {
    return `${algorithm} digest must be ${want} lower-case hex characters`;
  }
  return undefined;
}

/** Parses and validates a digest such as `sha256:<64 hex>`; throws InvalidArgument naming the input otherwise. */
export function parseDigest(input: string): Digest {
  const problem = digestProblem(input);
  if (problem !== undefined) throw new InvalidArgument(`invalid digest "${input}": ${problem}`);
  const colon = input.indexOf(":");
  return { algorithm: input.slice(0, colon) as DigestAlgorithm, encoded: input.slice(colon + 1) };
}

/** True when `input` is a valid, supported digest. */
export function isDigest(input: string): boolean {
  return digestProblem(input) === undefined;
}

/** Computes the digest of `bytes` (`sha256` unless told otherwise). */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

/** What a verifier is checking: the expected digest and, when known, the exact size in bytes. */
export interface VerifyExpectation {
  digest: string;
  /** Expected size; omit when unknown (for example a manifest fetched by tag). */
  size?: number;
  /** What is being verified, for messages: `blob`, `layer sha256:...`, `manifest`. Default `content`. */
  what?: string;
}

/**
 * Hashes content incrementally and checks it against an expected digest and size. Oversized content is refused as
 * soon as it passes the expected size, so a hostile registry cannot make davit hash (or store) unbounded data.
 */
export class DigestVerifier {
  readonly #expected: Digest;
  readonly #expectedText: string;
  readonly #size: number | undefined;
  readonly #what: string;
  readonly #hash: Hash;
  #count = 0;
  #done = false;

  constructor(expect: VerifyExpectation) {
    this.#expected = parseDigest(expect.digest);
    this.#expectedText = expect.digest;
    if (expect.size !== undefined && (!Number.isSafeInteger(expect.size) || expect.size < 0)) {
      throw new InvalidArgument(`invalid expected size ${expect.size} for ${expect.digest}`);
    }
    this.#size = expect.size;
    this.#what = expect.what ?? "content";
    this.#hash = createHash(this.#expected.algorithm);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#count;
  }

  /** Feeds a chunk; throws once the content is longer than the expected size. */
  update(chunk: Uint8Array): void {
    if (this.#done) throw new Error("DigestVerifier.update after finish");
    this.#count += chunk.byteLength;
    if (this.#size !== undefined && this.#count > this.#size) {
      this.#done = true;
      throw new InvalidArgument(
        `${this.#what} ${this.#expectedText}: size mismatch: expected ${this.#size} bytes, got more than that`,
      );
    }
    this.#hash.update(chunk);
  }

  /** Ends the content; throws InvalidArgument naming both values if the size or the digest differs. */
  finish(): string {
    if (this.#done) throw new Error("DigestVerifier.finish called twice");
    this.#done = true;
    if (this.#size !== undefined && this.#count !== this.#size) {
      throw new InvalidArgument(
        `${this.#what} ${this.#expectedText}: size mismatch: expected ${this.#size} bytes, got ${this.#count}`,
      );
    }
    const actual = `${this.#expected.algorithm}:${this.#hash.digest("hex")}`;
    if (actual !== this.#expectedText) {
      throw new InvalidArgument(
        `${this.#what} digest mismatch: expected ${this.#expectedText}, got ${actual} (${this.#count} bytes)`,
      );
    }
    return actual;
  }
}

/**
 * A pass-through stream that verifies what flows through it: chunks are forwarded unchanged, and the stream errors
 * (at the chunk that overflows the size, or at the end) when the content does not match.
 */
export function verifyingStream(expect: VerifyExpectation): TransformStream<Uint8Array, Uint8Array> {
  const verifier = new DigestVerifier(expect);
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      verifier.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      verifier.finish();
    },
  });
}
