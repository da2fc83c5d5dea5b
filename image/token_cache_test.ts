// Tests for the bearer token cache: expiry with a renewal margin, keys by credentials, shared in-flight requests.
import { assertEquals, assertNotEquals, assertRejects } from "../tests/assert.ts";
import { credentialsFingerprint, renewMarginMs, TokenCache } from "./token_cache.ts";

const ALICE = { username: "alice", password: "secret-a" };
const key = (credentials?: typeof ALICE) => ({ registry: "r.test", scope: "repository:x:pull", credentials });

Deno.test("TokenCache", async (t) => {
  let now = 1_000_000;
  const clock = () => now;

  await t.step("a token lives until a tenth of its life (at most 30 s) before expiry", () => {
    const cases: [number, number][] = [[60, 6_000], [300, 30_000], [3600, 30_000], [1, 100]];
    for (const [life, margin] of cases) assertEquals(renewMarginMs(life), margin, `life ${life}`);
    const c = new TokenCache({ now: clock });
    c.set(key(ALICE), { token: "t1", expiresIn: 60 });
    now += 53_999;
    assertEquals(c.get(key(ALICE)), "t1");
    now += 1;
    assertEquals(c.get(key(ALICE)), undefined);
  });

  await t.step("tokens are never shared between different credentials", () => {
    const c = new TokenCache({ now: clock });
    c.set(key(ALICE), { token: "alice-token", expiresIn: 300 });
    assertEquals(c.get(key()), undefined);
    assertEquals(c.get(key({ username: "alice", password: "other" })), undefined);
    assertEquals(c.get({ ...key(ALICE), scope: "repository:y:pull" }), undefined);
    assertEquals(c.get({ ...key(ALICE), registry: "s.test" }), undefined);
    assertEquals(c.get(key({ ...ALICE })), "alice-token");
    c.delete(key(ALICE));
    assertEquals(c.get(key(ALICE)), undefined);
  });

  await t.step("fingerprints hide the secret and tell credentials apart", () => {
    const f = credentialsFingerprint(ALICE);
    assertEquals(f.includes("secret"), false);
    assertEquals(credentialsFingerprint(undefined), "anonymous");
    assertNotEquals(f, credentialsFingerprint({ username: "alice", password: "secret-b" }));
    assertNotEquals(credentialsFingerprint({ registryToken: "a" }), credentialsFingerprint({ identityToken: "a" }));
  });

  await t.step("concurrent obtain calls share one fetch; failures are not cached", async () => {
    const c = new TokenCache({ now: clock });
    let fetches = 0;
    const { promise, resolve } = Promise.withResolvers<{ token: string; expiresIn: number }>();
    const fetcher = () => (fetches++, promise);
    const all = Promise.all([c.obtain(key(), fetcher), c.obtain(key(), fetcher), c.obtain(key(), fetcher)]);
    resolve({ token: "shared", expiresIn: 60 });
    assertEquals(await all, ["shared", "shared", "shared"]);
    assertEquals(fetches, 1);
    assertEquals(await c.obtain(key(), fetcher), "shared");
    assertEquals(fetches, 1);

    const other = key(ALICE);
    await assertRejects(() => c.obtain(other, () => Promise.reject(new Error("token server down"))), Error, "down");
    assertEquals(await c.obtain(other, () => Promise.resolve({ token: "later", expiresIn: 60 })), "later");
  });

  await t.step("the entry count is bounded, expired and soonest-expiring first", () => {
    const c = new TokenCache({ now: clock, maxEntries: 2 });
    c.set({ ...key(), scope: "a" }, { token: "a", expiresIn: 100 });
    c.set({ ...key(), scope: "b" }, { token: "b", expiresIn: 50 });
    c.set({ ...key(), scope: "c" }, { token: "c", expiresIn: 200 });
    assertEquals(c.size, 2);
    assertEquals(c.get({ ...key(), scope: "b" }), undefined);
    assertEquals(c.get({ ...key(), scope: "c" }), "c");
  });
});
