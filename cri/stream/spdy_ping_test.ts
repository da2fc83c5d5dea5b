// Tests for PING bookkeeping: ID parity per role, answers matched to questions, timeouts and failures.
import { DeadlineExceeded, Unavailable } from "../../lib/errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { PingTracker } from "./spdy_ping.ts";

Deno.test("spdy ping tracker", async (t) => {
  await t.step("clients use odd IDs, servers even ones", async () => {
    const client = new PingTracker("client");
    const sent: number[] = [];
    const a = client.start((id) => (sent.push(id), Promise.resolve()), 1000);
    const b = client.start((id) => (sent.push(id), Promise.resolve()), 1000);
    assertEquals(sent, [1, 3]);
    assert(client.isOurs(5) && !client.isOurs(2));
    client.answer(3);
    client.answer(1);
    client.answer(7); // a stray answer changes nothing
    assert(await a >= 0 && await b >= 0);
    assert(new PingTracker("server").isOurs(2));
  });

  await t.step("an unanswered PING times out; a failed send or failAll rejects", async () => {
    const p = new PingTracker("server");
    await assertRejects(() => p.start(() => Promise.resolve(), 10), DeadlineExceeded, "PING 2 unanswered");
    await assertRejects(() => p.start(() => Promise.reject(new Unavailable("gone")), 1000), Unavailable, "gone");
    const waiting = p.start(() => Promise.resolve(), 1000);
    p.failAll(new Unavailable("session closed"));
    await assertRejects(() => waiting, Unavailable, "session closed");
  });
});
