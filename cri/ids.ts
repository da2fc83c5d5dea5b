/** Object IDs and CRI timestamps for pods and containers. */

/** A new pod or container ID: 64 hex digits from 32 random bytes, as CRI runtimes use. */
export function randomId(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(32)), (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Nanoseconds since the epoch as a decimal string (CRI's int64 timestamps). */
export function nowNanos(): string {
  return (BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor((performance.now() % 1) * 1e6))).toString();
}
