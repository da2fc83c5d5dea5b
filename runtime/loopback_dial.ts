/**
 * Dialling "localhost" by address literals: the rule the port-forward helper uses inside a pod's network namespace,
 * and the daemon uses on the host's own loopback for pods on the host network.
 * @module
 */
import { errorMessage } from "../lib/errors.ts";

/** How long one connection may take to be established, both loopback addresses together. */
export const CONNECT_TIMEOUT_MS = 10_000;

/** "Connection refused (os error 111)" -> "connection refused". */
export function reason(err: unknown): string {
  const m = errorMessage(err).replace(/ \(os error \d+\)$/, "");
  return m.charAt(0).toLowerCase() + m.slice(1);
}

/**
 * Connects to `port` on the loopback of the calling thread's network namespace as "localhost": 127.0.0.1 first,
 * then [::1] when that fails for any reason (refused, no IPv4 loopback address, ...), both within
 * {@link CONNECT_TIMEOUT_MS}. Address literals only, so nothing is looked up outside the namespace. Errors say
 * "connect to port N <where>: why".
 */
export async function connectLoopback(
  port: number,
  opts: { signal: AbortSignal; where?: string },
): Promise<Deno.TcpConn> {
  const { signal, where = "in the pod" } = opts;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), CONNECT_TIMEOUT_MS);
  const both = AbortSignal.any([signal, timeout.signal]);
  const failures: string[] = [];
  try {
    for (const hostname of ["127.0.0.1", "::1"]) {
      try {
        return await Deno.connect({ hostname, port, signal: both });
      } catch (err) {
        if (signal.aborted) throw err;
        const why = timeout.signal.aborted ? `timed out after ${CONNECT_TIMEOUT_MS / 1000} s` : reason(err);
        failures.push(hostname.includes(":") ? `[${hostname}]: ${why}` : `${hostname}: ${why}`);
        if (timeout.signal.aborted) break;
      }
    }
  } finally {
    clearTimeout(timer);
  }
  const whys = failures.map((f) => f.slice(f.indexOf(": ") + 2));
  const detail = whys.every((w) => w === whys[0]) ? whys[0] : failures.join("; ");
  throw new Error(`connect to port ${port} ${where}: ${detail}`);
}
