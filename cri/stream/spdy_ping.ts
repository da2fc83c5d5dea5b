/**
 * PING bookkeeping for a SPDY/3.1 session (SPDY Protocol Draft 3.1, Section 2.6.5): this side's IDs have the
 * parity of its stream IDs (odd for the client, even for the server), so a received PING of that parity is an
 * answer and any other is a question to echo. Answers are matched to questions; unanswered ones time out.
 * @module
 */
import { DeadlineExceeded } from "../../lib/errors.ts";

/** The PINGs one side has sent and not yet seen answered. */
export class PingTracker {
  readonly #pending = new Map<number, (err?: Error) => void>();
  #next: number;

  constructor(role: "server" | "client") {
    this.#next = role === "client" ? 1 : 2;
  }

  /** True when `id` has this side's parity: an answer (or a stray), not a question. */
  isOurs(id: number): boolean {
    return id % 2 === this.#next % 2;
  }

  /**
   * Takes the next ID, has `send` send it, and resolves with the round trip in milliseconds once answered.
   * Rejects when `send` fails, after `timeoutMs`, or with {@link failAll}.
   */
  start(send: (id: number) => Promise<void>, timeoutMs: number): Promise<number> {
    const id = this.#next;
    // IDs may wrap once all 2^31 of one parity are used (Section 2.6.5).
    this.#next = id + 2 > 0xffff_ffff ? 2 - (id % 2) : id + 2;
    return new Promise<number>((resolve, reject) => {
      const start = performance.now();
      const timer = setTimeout(
        () => done(new DeadlineExceeded(`SPDY PING ${id} unanswered after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        if (err) reject(err);
        else resolve(performance.now() - start);
      };
      this.#pending.set(id, done);
      send(id).catch(done);
    });
  }

  /** The peer echoed `id`; a stray answer is ignored. */
  answer(id: number): void {
    this.#pending.get(id)?.();
  }

  /** Rejects every PING still waiting. */
  failAll(err: Error): void {
    for (const done of [...this.#pending.values()]) done(err);
  }
}
