/**
 * Waiting for a raw descriptor to become ready without blocking the event loop: poll(2) runs on a worker thread
 * (see {@link pollAsync}) next to an eventfd that {@link FdWaiter.wake} makes readable, so closing the owner of the
 * descriptor ends every wait at once instead of leaving a call in flight on a descriptor about to be closed.
 * Owners (a pty, a listening socket) keep their descriptors non-blocking, call read/write/accept synchronously
 * (errno is then readable) and wait here only when those answer EAGAIN.
 * @module
 */
import { close, EFD, eventfd, POLL, pollAsync, writeAll } from "./libc.ts";

const ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

/** Waits on descriptors, each wait endable by {@link FdWaiter.wake}; see the module comment. */
export class FdWaiter {
  #wake: number;
  #woken = false;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor() {
    this.#wake = eventfd(0, EFD.NONBLOCK);
  }

  /** True once {@link wake} was called: every wait from then on returns at once. */
  get woken(): boolean {
    return this.#woken;
  }

  /**
   * Resolves to `fd`'s poll revents (POLL.* bits, with ERR/HUP/NVAL as the kernel reports them), or 0 when
   * `timeoutMs` passed (-1: no limit) or the waiter was woken.
   */
  async wait(fd: number, events: number, timeoutMs: number): Promise<number> {
    if (this.#woken) return 0;
    const p = pollAsync([{ fd, events }, { fd: this.#wake, events: POLL.IN }], timeoutMs);
    this.#inFlight.add(p);
    try {
      const [ready = 0] = await p;
      return ready;
    } finally {
      this.#inFlight.delete(p);
    }
  }

  /** Ends every current and future wait (the eventfd stays readable). Idempotent. */
  wake(): void {
    if (this.#woken) return;
    this.#woken = true;
    writeAll(this.#wake, ONE);
  }

  /** Wakes, waits until no poll is in flight, then closes the eventfd. Idempotent. */
  async close(): Promise<void> {
    this.wake();
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    if (this.#wake >= 0) {
      const fd = this.#wake;
      this.#wake = -1;
      close(fd);
    }
  }
}
