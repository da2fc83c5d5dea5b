// Tests for FdWaiter: readiness, timeouts, and waking a wait that has no time limit.
import { assert, assertEquals } from "../tests/assert.ts";
import { FdWaiter } from "./fd_waiter.ts";
import { close, EFD, eventfd, POLL, writeAll } from "./libc.ts";

Deno.test("FdWaiter", async (t) => {
  const fd = eventfd(0, EFD.NONBLOCK);
  const waiter = new FdWaiter();
  try {
    await t.step("a timeout answers 0", async () => {
      assertEquals(await waiter.wait(fd, POLL.IN, 20), 0);
    });

    await t.step("a ready descriptor answers its revents", async () => {
      const waiting = waiter.wait(fd, POLL.IN, 5000);
      writeAll(fd, new Uint8Array(new BigUint64Array([1n]).buffer));
      assertEquals(await waiting, POLL.IN);
    });

    await t.step("wake ends a wait without a time limit, and every later one at once", async () => {
      const fresh = eventfd(0, EFD.NONBLOCK);
      const w = new FdWaiter();
      try {
        const started = Date.now();
        const waiting = w.wait(fresh, POLL.IN, -1);
        setTimeout(() => w.wake(), 30);
        assertEquals(await waiting, 0);
        assert(w.woken);
        assertEquals(await w.wait(fresh, POLL.IN, -1), 0);
        assert(Date.now() - started < 2000, "woken late");
      } finally {
        await w.close();
        close(fresh);
      }
    });

    await t.step("close waits for a poll in flight and is idempotent", async () => {
      const w = new FdWaiter();
      const waiting = w.wait(fd, POLL.OUT, -1); // an eventfd is writable: answers at once
      await w.close();
      assertEquals(await waiting, POLL.OUT);
      await w.close();
    });
  } finally {
    await waiter.close();
    close(fd);
  }
});
