/** Tests for OpLocks: per-key serialisation, parallel keys, exclusive operations. */
import { assertEquals } from "../tests/assert.ts";
import { OpLocks } from "./op_locks.ts";

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

Deno.test("OpLocks", async (t) => {
  await t.step("one key: in call order, one at a time; other keys in parallel", async () => {
    const locks = new OpLocks();
    const log: string[] = [];
    const op = (key: string, name: string) =>
      locks.withKey(key, async () => {
        log.push(`+${name}`);
        await tick();
        log.push(`-${name}`);
      });
    await Promise.all([op("a", "a1"), op("a", "a2"), op("b", "b1")]);
    const at = (e: string) => log.indexOf(e);
    assertEquals(at("+a2") > at("-a1"), true, `a2 waits for a1: ${log}`);
    assertEquals(at("+b1") < at("-a1"), true, `b1 runs beside a1: ${log}`);
    assertEquals(log.length, 6);
  });
  await t.step("an exclusive operation waits for running ones and holds new ones back", async () => {
    const locks = new OpLocks();
    const log: string[] = [];
    const first = locks.withKey("a", async () => {
      log.push("+a");
      await tick(20);
      log.push("-a");
    });
    await tick(1);
    const gc = locks.exclusive(async () => {
      log.push("+gc");
      await tick(10);
      log.push("-gc");
    });
    await tick(1);
    const later = locks.withKey("b", () => Promise.resolve(void log.push("b")));
    await Promise.all([first, gc, later]);
    assertEquals(log, ["+a", "-a", "+gc", "-gc", "b"]);
  });
  await t.step("a failing operation releases its key", async () => {
    const locks = new OpLocks();
    await locks.withKey("a", () => Promise.reject(new Error("x"))).catch(() => {});
    assertEquals(await locks.withKey("a", () => Promise.resolve(1)), 1);
  });
});
