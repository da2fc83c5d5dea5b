// Tests for the transport: certs.d reading, the TLS probe of insecure registries and the response-head deadline,
// with temporary directories and a scripted fetch.
import { assertEquals, assertRejects } from "../tests/assert.ts";
import { DeadlineExceeded, InvalidArgument } from "../lib/errors.ts";
import { type FetchLike, fetchWithDeadline, HttpClientPool, loadHostTls, probeTls } from "./transport.ts";

Deno.test("loadHostTls reads CA roots and client pairs from certs.d", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (host: string, files: Record<string, string>) => {
      await Deno.mkdir(`${dir}/${host}`, { recursive: true });
      for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${dir}/${host}/${name}`, text);
    };
    await write("reg.test:5000", { "b.crt": "CA-B", "a.crt": "CA-A", "client.cert": "CERT", "client.key": "KEY" });
    await write("only-ca.test", { "ca.crt": "CA", "README": "ignored" });
    await write("lonely-cert.test", { "c.cert": "CERT" });
    await write("lonely-key.test", { "c.key": "KEY" });
    await write("empty.test", {});
    await t.step("CAs in name order, the client pair", async () => {
      assertEquals(await loadHostTls(dir, "reg.test:5000"), { caCerts: ["CA-A", "CA-B"], cert: "CERT", key: "KEY" });
      assertEquals(await loadHostTls(dir, "only-ca.test"), { caCerts: ["CA"] });
    });
    await t.step("nothing usable is undefined", async () => {
      assertEquals(await loadHostTls(dir, "empty.test"), undefined);
      assertEquals(await loadHostTls(dir, "absent.test"), undefined);
      assertEquals(await loadHostTls(dir, "../etc"), undefined);
      assertEquals(await loadHostTls(dir, "a/b"), undefined);
    });
    await t.step("half a client pair is an error naming the file", async () => {
      await assertRejects(() => loadHostTls(dir, "lonely-cert.test"), InvalidArgument, "c.cert has no matching c.key");
      await assertRejects(() => loadHostTls(dir, "lonely-key.test"), InvalidArgument, "c.key has no matching");
    });
    await t.step("the pool makes one client per host with those settings", async () => {
      const made: unknown[] = [];
      const pool = new HttpClientPool({
        certsDir: dir,
        createHttpClient: (o) => (made.push(o), { close() {} } as unknown as Deno.HttpClient),
      });
      await pool.client("reg.test:5000");
      await pool.client("reg.test:5000");
      await pool.client("other.test");
      await assertRejects(() => pool.client("lonely-key.test"), InvalidArgument);
      assertEquals(made, [{ caCerts: ["CA-A", "CA-B"], cert: "CERT", key: "KEY" }, {}]);
      await pool.close();
      await assertRejects(() => pool.client("reg.test:5000"), Error, "closed");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("probeTls decides the scheme of an insecure registry", async (t) => {
  const fetchError = (inner: string) => new TypeError("fetch failed", { cause: new Error(inner) });
  const cases: [string, FetchLike, "https" | "http" | "refused"][] = [
    ["any HTTPS answer: https", () => Promise.resolve(new Response("", { status: 401 })), "https"],
    ["a TLS failure: http", () => Promise.reject(fetchError("client error (Connect): InvalidContentType")), "http"],
    ["refused: nothing learnt", () => Promise.reject(fetchError("Connection refused")), "refused"],
    [
      "silence until the deadline: http",
      (_url, init) =>
        new Promise((_, reject) => init.signal!.addEventListener("abort", () => reject(init.signal!.reason))),
      "http",
    ],
  ];
  for (const [name, fetchFn, want] of cases) {
    await t.step(name, async () => {
      assertEquals(await probeTls(fetchFn, "reg.test", { timeoutMs: 50, userAgent: "t" }), want);
    });
  }
});

Deno.test("fetchWithDeadline bounds the response head only", async (t) => {
  const hang: FetchLike = (_url, init) =>
    new Promise((_, reject) => init.signal!.addEventListener("abort", () => reject(init.signal!.reason)));
  await t.step("a missed deadline is DeadlineExceeded with the given message", async () => {
    await assertRejects(
      () => fetchWithDeadline(hang, "http://x/", { timeoutMs: 30, deadlineMessage: "no answer in time" }),
      DeadlineExceeded,
      "no answer in time",
    );
  });
  await t.step("the caller's abort wins with its reason", async () => {
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error("cancelled by caller")), 10);
    await assertRejects(
      () => fetchWithDeadline(hang, "http://x/", { timeoutMs: 5_000, deadlineMessage: "late", signal: ctl.signal }),
      Error,
      "cancelled by caller",
    );
  });
  await t.step("transport errors pass through", async () => {
    await assertRejects(
      () =>
        fetchWithDeadline(() => Promise.reject(new TypeError("fetch failed")), "http://x/", {
          timeoutMs: 1_000,
          deadlineMessage: "late",
        }),
      TypeError,
    );
  });
});
