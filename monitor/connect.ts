/**
 * Connecting to a monitor's socket within a deadline, shared by the request client (client.ts) and attach
 * sessions (attach_session.ts), which open connections of their own.
 * @module
 */
import { DavitError, DeadlineExceeded, errorMessage, Unavailable } from "../lib/errors.ts";

/** Connects to `path` within `ms`; connection failures are Unavailable, the deadline DeadlineExceeded. */
export async function connectWithin(path: string, ms: number): Promise<Deno.UnixConn> {
  const attempt = Deno.connect({ transport: "unix", path });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded(`Connecting to monitor ${path} took over ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([attempt, deadline]);
  } catch (err) {
    attempt.then((c) => c.close(), () => {});
    if (err instanceof DavitError) throw err;
    throw new Unavailable(`Cannot connect to monitor ${path}: ${errorMessage(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
