// Two SPDY sessions, a client and a server, talking through an in-memory pipe and through loopback TCP: streams
// in both directions, FIN, flow control under a slow reader (with and without the peer doing flow control), PING,
// RST_STREAM, GOAWAY, timeouts and closing.
import { DeadlineExceeded, Unavailable } from "../../lib/errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import { RstStatus } from "./spdy_frame.ts";
import { type SpdyDuplex, SpdySession, type SpdySessionOptions } from "./spdy_session.ts";
import { type SpdyStream, SpdyStreamReset } from "./spdy_stream.ts";
import { memoryPair, pattern, readAll, tcpPair } from "./spdy_test_peer.ts";

type Opts = Partial<SpdySessionOptions>;

async function pair(make: () => Promise<[SpdyDuplex, SpdyDuplex]>, server: Opts = {}, client: Opts = {}) {
  const [a, b] = await make();
  const s = new SpdySession(a, { role: "server", ...server });
  const c = new SpdySession(b, { role: "client", ...client });
  return {
    server: s,
    client: c,
    async [Symbol.asyncDispose]() {
      await Promise.all([c.close(), s.close()]);
    },
  };
}

// Replies, then sends back everything it reads and closes its half at the peer's FIN.
async function echo(s: SpdyStream): Promise<void> {
  await s.reply({ ":status": "200", echoed: s.headers["path"] ?? "" });
  for await (const chunk of s.readable) await s.write(chunk);
  await s.closeWrite();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const [transport, make] of [["memory", memoryPair], ["tcp", tcpPair]] as const) {
  Deno.test(`spdy session over ${transport}`, async (t) => {
    await t.step("several streams carry data both ways; FIN closes each half", async () => {
      const seen: Record<string, string>[] = [];
      await using p = await pair(make, {
        onStream: (s) => {
          seen.push({ ...s.headers });
          return echo(s);
        },
      });
      const results = await Promise.all([1, 2, 3, 4, 5].map(async (i) => {
        const s = await p.client.openStream({ path: `/s${i}`, streamtype: "data" });
        assertEquals(s.id, 2 * i - 1 >= 1 ? s.id : 0);
        assertEquals({ ...s.headers }, { ":status": "200", echoed: `/s${i}` });
        const body = pattern(40_000 * i, i);
        const [, back] = await Promise.all([s.write(body).then(() => s.closeWrite()), readAll(s.readable)]);
        await s.closed;
        return { body, back, id: s.id };
      }));
      for (const r of results) assertEquals(r.back, r.body);
      assertEquals(results.map((r) => r.id).sort((a, b) => a - b), [1, 3, 5, 7, 9]);
      assertEquals(seen.map((h) => h["path"]).sort(), ["/s1", "/s2", "/s3", "/s4", "/s5"]);
      assertEquals(seen[0]!["streamtype"], "data");
    });

    await t.step("a half-closed stream still carries the other direction", async () => {
      await using p = await pair(make, {
        onStream: async (s) => {
          await s.reply();
          const got = await readAll(s.readable); // ends at the client's FIN
          await s.write(got);
          await s.write(new TextEncoder().encode(" and more"));
          await s.closeWrite();
        },
      });
      const s = await p.client.openStream({ path: "/half" });
      await s.write(new TextEncoder().encode("hello"));
      await s.closeWrite();
      await s.closeWrite(); // idempotent
      await assertRejects(() => s.write(new Uint8Array(1)), Error, "this side closed it");
      assertEquals(new TextDecoder().decode(await readAll(s.readable)), "hello and more");
      await s.closed;
    });

    await t.step("SYN_STREAM with FIN, and SYN_REPLY with FIN", async () => {
      await using p = await pair(make, {
        onStream: async (s) => {
          assertEquals(await readAll(s.readable), new Uint8Array());
          await s.reply({ done: "yes" }, { fin: true });
        },
      });
      const s = await p.client.openStream({ path: "/fin" }, { fin: true });
      assertEquals(s.headers["done"], "yes");
      assertEquals(await readAll(s.readable), new Uint8Array());
      await s.closed;
    });

    await t.step("5 MiB through a slow reader never buffers more than the window", async () => {
      const window = 64 << 10;
      let maxQueued = 0;
      let received: Uint8Array | undefined;
      const body = pattern(5 << 20, 3);
      await using p = await pair(make, {
        initialWindowBytes: window,
        onStream: async (s) => {
          await s.reply();
          const reader = s.readable.getReader();
          const chunks: Uint8Array[] = [];
          await sleep(50); // the writer runs ahead until the window shuts
          for (let n = 0;; n++) {
            maxQueued = Math.max(maxQueued, s.queuedBytes);
            const { value, done } = await reader.read();
            if (done) break;
            chunks.push(value);
            if (n % 40 === 0) await sleep(1);
          }
          received = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
          let at = 0;
          for (const c of chunks) received.set(c, at), at += c.length;
          await s.closeWrite();
        },
      });
      const s = await p.client.openStream({ path: "/upload" });
      let written = false;
      const writing = s.write(body).then(() => written = true);
      await sleep(30);
      assert(!written, "the writer waits for WINDOW_UPDATE");
      assert(s.sendWindow <= 0, `send window ${s.sendWindow} is used up`);
      await writing;
      await s.closeWrite();
      await s.closed;
      assertEquals(received?.length, body.length);
      assertEquals(received, body);
      assert(maxQueued <= window, `at most one window buffered (${maxQueued})`);
      assert(maxQueued > window / 2, `the window was filled (${maxQueued})`);
    });

    await t.step("a server answering 5 MiB to a slow client reader", async () => {
      const body = pattern(5 << 20, 9);
      await using p = await pair(make, {
        onStream: async (s) => {
          await s.reply();
          await s.write(body);
          await s.closeWrite();
        },
      }, { initialWindowBytes: 32 << 10 });
      const s = await p.client.openStream({ path: "/download" }, { fin: true });
      const reader = s.readable.getReader();
      const chunks: Uint8Array[] = [];
      let maxQueued = 0;
      for (let n = 0;; n++) {
        maxQueued = Math.max(maxQueued, s.queuedBytes);
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
        if (n % 50 === 0) await sleep(1);
      }
      const got = new Uint8Array(body.length);
      let at = 0;
      for (const c of chunks) got.set(c, at), at += c.length;
      assertEquals(at, body.length);
      assertEquals(got, body);
      assert(maxQueued <= 32 << 10, `client buffered at most its window (${maxQueued})`);
    });

    await t.step("a client without flow control (like kubectl) is held back by TCP back-pressure", async () => {
      const window = 64 << 10;
      let maxQueued = 0;
      const body = pattern(2 << 20, 5);
      let received = 0;
      await using p = await pair(make, {
        initialWindowBytes: window,
        onStream: async (s) => {
          await s.reply();
          const reader = s.readable.getReader();
          await sleep(50);
          for (let n = 0;; n++) {
            maxQueued = Math.max(maxQueued, s.queuedBytes);
            const { value, done } = await reader.read();
            if (done) break;
            received += value.length;
            if (n % 40 === 0) await sleep(1);
          }
          await s.write(body); // ignores windows: the client never sends WINDOW_UPDATE
          await s.closeWrite();
        },
      }, { flowControl: false });
      const s = await p.client.openStream({ path: "/kubectl" });
      await s.write(body);
      await s.closeWrite();
      assertEquals(await readAll(s.readable), body);
      assertEquals(received, body.length);
      // The reader loop pauses once a window's worth is queued; one more frame may be in hand.
      assert(maxQueued <= window + (16 << 10), `server buffered about one window (${maxQueued})`);
    });

    await t.step("PING from either side", async () => {
      await using p = await pair(make);
      const rtt = await p.client.ping();
      assert(rtt >= 0 && rtt < 5000);
      assert(await p.server.ping() >= 0);
      assert(p.server.lastActivity <= Date.now() && p.server.lastActivity > Date.now() - 5000);
    });

    await t.step("RST_STREAM from either side", async () => {
      let serverStream: SpdyStream | undefined;
      const arrived = Promise.withResolvers<void>();
      await using p = await pair(make, {
        onStream: async (s) => {
          serverStream = s;
          await s.reply();
          arrived.resolve();
        },
      });
      const s = await p.client.openStream({ path: "/reset" });
      await arrived.promise;
      s.reset();
      const err = await assertRejects(() => readAll(serverStream!.readable), SpdyStreamReset, "by the peer (CANCEL)");
      assertEquals((err as SpdyStreamReset).status, RstStatus.CANCEL);
      await assertRejects(() => serverStream!.write(new Uint8Array(1)), SpdyStreamReset);
      await serverStream!.closed;
      await assertRejects(() => readAll(s.readable), SpdyStreamReset, "by this side");
      await s.closed;

      const t2 = await p.client.openStream({ path: "/reset2" });
      await new Promise((r) => setTimeout(r, 10));
      serverStream!.reset(RstStatus.INTERNAL_ERROR);
      await assertRejects(() => readAll(t2.readable), SpdyStreamReset, "INTERNAL_ERROR");
      await assertRejects(() => t2.write(new Uint8Array(1)), SpdyStreamReset);
    });

    await t.step("a session without onStream refuses streams", async () => {
      await using p = await pair(make);
      const err = await assertRejects(() => p.client.openStream({ path: "/x" }), SpdyStreamReset, "REFUSED_STREAM");
      assertEquals((err as SpdyStreamReset).byPeer, true);
    });

    await t.step("an onStream that throws resets the stream", async () => {
      await using p = await pair(make, {
        onStream: () => {
          throw new Error("boom");
        },
      });
      await assertRejects(() => p.client.openStream({ path: "/x" }), SpdyStreamReset, "INTERNAL_ERROR");
    });

    await t.step("GOAWAY stops new streams; open ones carry on", async () => {
      await using p = await pair(make, { onStream: echo });
      const s = await p.client.openStream({ path: "/before" });
      await p.server.goAway();
      await p.client.ping(); // the GOAWAY came before the PING's answer
      await assertRejects(() => p.client.openStream({ path: "/after" }), Unavailable, "going away");
      await s.write(new TextEncoder().encode("still here"));
      await s.closeWrite();
      assertEquals(new TextDecoder().decode(await readAll(s.readable)), "still here");
    });

    await t.step("openStream times out without a SYN_REPLY and cancels the stream", async () => {
      const reset = Promise.withResolvers<Error>();
      await using p = await pair(make, {
        onStream: (s) => {
          s.readable.getReader().read().catch((err) => reset.resolve(err));
        },
      });
      await assertRejects(() => p.client.openStream({ path: "/slow" }, { timeoutMs: 50 }), DeadlineExceeded, "50 ms");
      const err = await reset.promise;
      assert(err instanceof SpdyStreamReset && err.status === RstStatus.CANCEL);
    });

    await t.step("close ends every stream on both sides and is idempotent", async () => {
      const serverSide = Promise.withResolvers<SpdyStream>();
      const p = await pair(make, {
        onStream: async (s) => {
          await s.reply();
          serverSide.resolve(s);
        },
      });
      const s = await p.client.openStream({ path: "/open" });
      const theirs = await serverSide.promise;
      await Promise.all([p.client.close(), p.client.close()]);
      await p.server.closed;
      await s.closed;
      await theirs.closed;
      await assertRejects(() => s.write(new Uint8Array(1)), Unavailable, "closed");
      await assertRejects(() => readAll(theirs.readable), Unavailable, "closed by the peer");
      await assertRejects(() => p.client.openStream({}), Unavailable);
      await assertRejects(() => p.client.ping(), Unavailable);
      await p.server.close();
    });
  });
}
