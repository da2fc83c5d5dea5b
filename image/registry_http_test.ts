// Tests for the HTTP layer's rules with a scripted fetch (no network): redirects, token server answers, and what
// reaches which origin.
import { assertEquals, assertRejects } from "../tests/assert.ts";
import { PermissionDenied, Unavailable } from "../lib/errors.ts";
import { RegistryHttp } from "./registry_http.ts";
import type { FetchLike } from "./transport.ts";

interface Seen {
  url: string;
  method: string;
  authorization: string | null;
}

/** A fetch answering by URL prefix, recording every request. */
function scriptedFetch(routes: [string, (seen: Seen) => Response][]): { fetch: FetchLike; seen: Seen[] } {
  const seen: Seen[] = [];
  const fetch: FetchLike = (url, init) => {
    const s = { url, method: init.method ?? "GET", authorization: new Headers(init.headers).get("authorization") };
    seen.push(s);
    const route = routes.find(([prefix]) => url.startsWith(prefix));
    return Promise.resolve(route ? route[1](s) : new Response("no route", { status: 599 }));
  };
  return { fetch, seen };
}

function http(fetch: FetchLike): RegistryHttp {
  return new RegistryHttp({ fetch, createHttpClient: () => ({ close() {} }) as unknown as Deno.HttpClient });
}

const EP = { host: "reg.test", insecure: false };
const REQ = { path: "/v2/app/blobs/sha256:x", repository: "app", what: "GET blob" };
const redirect = (location: string) => () => new Response(null, { status: 307, headers: { location } });

Deno.test("redirects", async (t) => {
  await t.step("same origin keeps Authorization, another origin does not get it", async () => {
    const s = scriptedFetch([
      ["https://reg.test/v2/app/blobs/", redirect("/v2/app/moved")],
      ["https://reg.test/v2/app/moved", redirect("https://storage.test/blob?X-Signature=s3cr3t")],
      ["https://storage.test/", () => new Response("bytes")],
    ]);
    const res = await http(s.fetch).request(EP, { ...REQ, credentials: { registryToken: "tok" } });
    assertEquals(await res.text(), "bytes");
    assertEquals(s.seen.map((x) => x.authorization), ["Bearer tok", "Bearer tok", null]);
  });
  await t.step("HTTPS to plain HTTP is refused for a secure registry", async () => {
    const s = scriptedFetch([["https://reg.test/", redirect("http://storage.test/blob")]]);
    await assertRejects(() => http(s.fetch).request(EP, REQ), Unavailable, "redirected from HTTPS to plain HTTP");
    assertEquals(s.seen.length, 1);
  });
  await t.step("more than five redirects", async () => {
    const s = scriptedFetch([["https://reg.test/", redirect("/again")]]);
    await assertRejects(() => http(s.fetch).request(EP, REQ), Unavailable, "redirected more than 5 times");
    assertEquals(s.seen.length, 6);
  });
  await t.step("no Location", async () => {
    const s = scriptedFetch([["https://reg.test/", () => new Response(null, { status: 302 })]]);
    await assertRejects(() => http(s.fetch).request(EP, REQ), Unavailable, "with no Location");
  });
});

Deno.test("token server answers", async (t) => {
  const challenge = () =>
    new Response('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', {
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="https://auth.test/token",service="reg"' },
    });
  const creds = { username: "u", password: "pw-1234" };
  await t.step("a redirecting token server is not followed (it would get the credentials)", async () => {
    const s = scriptedFetch([
      ["https://reg.test/", challenge],
      ["https://auth.test/", redirect("https://elsewhere.test/token")],
    ]);
    await assertRejects(() => http(s.fetch).request(EP, { ...REQ, credentials: creds }), Unavailable, "HTTP 307");
    assertEquals(s.seen.some((x) => x.url.startsWith("https://elsewhere.test")), false);
  });
  await t.step("a body without a token is Unavailable and not quoted", async () => {
    const s = scriptedFetch([
      ["https://reg.test/", challenge],
      ["https://auth.test/", () => Response.json({ refresh: "pw-1234-derived" })],
    ]);
    const err = await assertRejects(() => http(s.fetch).request(EP, { ...REQ, credentials: creds }), Unavailable);
    assertEquals(
      err.message,
      "registry reg.test: token request to https://auth.test/token answered an unusable token response",
    );
  });
  await t.step("a token the registry still refuses is PermissionDenied after authenticating", async () => {
    const s = scriptedFetch([
      ["https://reg.test/", challenge],
      ["https://auth.test/", () => Response.json({ token: "t1", expires_in: 300 })],
    ]);
    const h = http(s.fetch);
    const err = await assertRejects(() => h.request(EP, { ...REQ, credentials: creds }), PermissionDenied);
    assertEquals(
      err.message,
      'registry reg.test refused access to repository "app": GET blob answered HTTP 401 after authenticating as "u": UNAUTHORIZED: authentication required',
    );
    // The refused token is dropped, so the next call asks for a fresh one.
    assertEquals(h.tokens.size, 0);
  });
  await t.step("a challenge without a realm is PermissionDenied naming the problem", async () => {
    const s = scriptedFetch([[
      "https://reg.test/",
      () => new Response(null, { status: 401, headers: { "www-authenticate": "Negotiate" } }),
    ]]);
    await assertRejects(() => http(s.fetch).request(EP, REQ), PermissionDenied, "no usable WWW-Authenticate challenge");
  });
});

Deno.test("insecure registries: the probe's answer is kept, an unreachable host is probed again", async () => {
  const answers: ("https" | "http" | "refused")[] = ["refused", "http"];
  let probes = 0;
  const s = scriptedFetch([["http://plain.test/", () => new Response("ok")]]);
  const h = new RegistryHttp({
    fetch: (url, init) =>
      url.startsWith("https://")
        ? Promise.reject(new TypeError("fetch failed", { cause: new Error("Connection refused") }))
        : s.fetch(url, init),
    createHttpClient: () => ({ close() {} }) as unknown as Deno.HttpClient,
    probeTls: () => Promise.resolve(answers[probes++] ?? "https"),
  });
  const ep = { host: "plain.test", insecure: true };
  await assertRejects(() => h.request(ep, REQ), Unavailable, "registry plain.test is unreachable: GET blob");
  assertEquals((await h.request(ep, REQ)).status, 200);
  assertEquals((await h.request(ep, REQ)).status, 200);
  assertEquals(probes, 2);
  assertEquals(s.seen.map((x) => x.url), [
    "http://plain.test/v2/app/blobs/sha256:x",
    "http://plain.test/v2/app/blobs/sha256:x",
  ]);
});
