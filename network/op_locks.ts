/**
 * Ordering of CNI operations (SPEC.md "Lifecycle & Ordering"): operations on one container run one at a time,
 * operations on different containers run in parallel, and GC runs only while no ADD or DEL is in flight.
 * @module
 */

/** Serialises per-key operations and runs exclusive ones alone. */
export class OpLocks {
  readonly #keys = new Map<string, Promise<void>>();
  #active = 0;
  #idle: (() => void)[] = [];
  #exclusive: Promise<void> | undefined;

  /** Runs `fn` after earlier operations on `key` and outside any exclusive operation. */
  async withKey<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#keys.get(key) ?? Promise.resolve();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const mine = prev.then(() => gate);
    this.#keys.set(key, mine);
    await prev;
    while (this.#exclusive) await this.#exclusive;
    this.#active++;
    try {
      return await fn();
    } finally {
      if (--this.#active === 0) { for (const wake of this.#idle.splice(0)) wake(); }
      release();
      if (this.#keys.get(key) === mine) this.#keys.delete(key);
    }
  }

  /** Runs `fn` once no keyed operation is in flight, holding new ones back until it is done. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    let done!: () => void;
    this.#exclusive = new Promise<void>((r) => (done = r));
    try {
      while (this.#active > 0) await new Promise<void>((r) => this.#idle.push(r));
      return await fn();
    } finally {
      this.#exclusive = undefined;
      done();
    }
  }
}
