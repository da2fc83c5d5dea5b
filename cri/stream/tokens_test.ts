// Tests of the streaming server's single-use token store, with an injected clock.
import { ResourceExhausted } from "../../lib/errors.ts";
import { assert, assertEquals, assertMatch, assertNotEquals, assertThrows } from "../../tests/assert.ts";
import { TokenStore } from "./tokens.ts";

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

Deno.test("tokens: put and take", async (t) => {
  await t.step("a token is URL-safe base64 of at least 128 bits, and each is new", () => {
    const store = new TokenStore<number>();
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const token = store.put(i);
      assertMatch(token, /^[A-Za-z0-9_-]+$/);
      assert(token.length * 6 >= 128, `token ${token.length} chars`);
      assert(!seen.has(token));
      seen.add(token);
    }
    assertEquals(store.size, 200);
  });

  await t.step("take returns the value once", () => {
    const store = new TokenStore<{ id: string }>();
    const value = { id: "c1" };
    const token = store.put(value);
    assertEquals(store.take(token), value);
    assertEquals(store.take(token), undefined);
    assertEquals(store.size, 0);
  });

  await t.step("unknown tokens, including prefixes and case changes, find nothing", () => {
    const store = new TokenStore<string>();
    const token = store.put("x");
    assertEquals(store.take(""), undefined);
    assertEquals(store.take(token.slice(0, -1)), undefined);
    assertEquals(store.take(token + "A"), undefined);
    const flipped = token.replace(/[a-z]/, (ch) => ch.toUpperCase());
    if (flipped !== token) assertEquals(store.take(flipped), undefined);
    assertEquals(store.take(token), "x");
  });

  await t.step("the same value under two tokens is two entries", () => {
    const store = new TokenStore<string>();
    const a = store.put("v");
    const b = store.put("v");
    assertNotEquals(a, b);
    assertEquals(store.take(b), "v");
    assertEquals(store.take(a), "v");
  });
});

Deno.test("tokens: expiry", async (t) => {
  await t.step("a token is valid until its ttl has passed", () => {
    const c = clock();
    const store = new TokenStore<string>({ ttlMs: 1000, now: c.now });
    const token = store.put("v");
    c.t += 999;
    assertEquals(store.take(token), "v");
    const late = store.put("w");
    c.t += 1000;
    assertEquals(store.take(late), undefined);
  });

  await t.step("expired entries are swept on put and take", () => {
    const c = clock();
    const store = new TokenStore<number>({ ttlMs: 100, now: c.now });
    for (let i = 0; i < 10; i++) store.put(i);
    c.t += 50;
    const young = store.put(99);
    c.t += 60;
    // The first ten expired at +100; the young one lives until +150.
    assertEquals(store.size, 1);
    assertEquals(store.take(young), 99);
  });

  await t.step("a clock that goes backwards does not revive or lose entries wrongly", () => {
    const c = clock();
    const store = new TokenStore<string>({ ttlMs: 100, now: c.now });
    const a = store.put("a");
    c.t -= 500;
    const b = store.put("b");
    c.t += 550;
    // a expired at +100 (now +50 is before that); b at -400, already past.
    assertEquals(store.take(b), undefined);
    assertEquals(store.take(a), "a");
  });
});

Deno.test("tokens: the cap on live entries", async (t) => {
  await t.step("put throws ResourceExhausted when full, and works again once a token is taken", () => {
    const store = new TokenStore<number>({ maxEntries: 3 });
    const tokens = [store.put(1), store.put(2), store.put(3)];
    const err = assertThrows(() => store.put(4), ResourceExhausted);
    assert(!tokens.some((tok) => err.message.includes(tok)), "the message must not hold tokens");
    assertEquals(store.take(tokens[1]!), 2);
    const fourth = store.put(4);
    assertEquals(store.take(tokens[0]!), 1);
    assertEquals(store.take(fourth), 4);
  });

  await t.step("expired entries do not count against the cap", () => {
    const c = clock();
    const store = new TokenStore<number>({ maxEntries: 2, ttlMs: 10, now: c.now });
    store.put(1);
    store.put(2);
    c.t += 10;
    store.put(3);
    store.put(4);
    assertEquals(store.size, 2);
  });

  await t.step("clear forgets everything; bad options are refused", () => {
    const store = new TokenStore<number>();
    const token = store.put(1);
    store.clear();
    assertEquals(store.take(token), undefined);
    assertThrows(() => new TokenStore({ ttlMs: 0 }), RangeError);
    assertThrows(() => new TokenStore({ maxEntries: 0 }), RangeError);
  });
});
