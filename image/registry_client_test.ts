// The registry client against Debian's docker-registry on 127.0.0.1 (plain, Basic, token auth, TLS with a certs.d
// CA), the faulty proxy (dropped and stalled blob responses, corrupted bytes) and scripted loopback servers (odd
// answers: registry and identity tokens, redirects to another host, Retry-After, no range support, huge manifests).
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { DeadlineExceeded, InvalidArgument, NotFound, PermissionDenied, Unavailable } from "../lib/errors.ts";
import { configureLogging, Logger } from "../lib/log.ts";
import { freePort, startFaultyProxy, startRegistry, type TestRegistry } from "../tests/fixtures/registry.ts";
import { busybox, pushClientFor, type PushedImage } from "../tests/fixtures/images.ts";
import { type ScriptedResponse, startScriptedServer } from "../tests/fixtures/scripted_http.ts";
import type { Credentials } from "./auth.ts";
import { digestOf } from "./digest.ts";
import { type Descriptor, MANIFEST_ACCEPT } from "./manifest.ts";
import { RegistryClient, type RegistryClientOptions, type RegistryTarget } from "./registry_client.ts";

const ACCEPT = { accept: MANIFEST_ACCEPT };
const FAST_BACKOFF = { baseMs: 10, maxMs: 50 };

/** Log lines written while a test runs (debug level), to check that no secret is ever logged. */
const logLines: string[] = [];
configureLogging({ level: "debug", write: (line) => logLines.push(line) });

function target(host: string, repository = "busybox", insecure = true): RegistryTarget {
  return { reference: { registry: host, repository }, insecure };
}

function client(opts: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient({
    log: new Logger({ component: "registry-test" }),
    backoff: FAST_BACKOFF,
    // The scripted servers and the faulty proxy never answer a TLS ClientHello: give up on HTTPS quickly.
    tlsProbeTimeoutMs: 300,
    ...opts,
  });
}

function creds(reg: TestRegistry, password = reg.password!): Credentials {
  return { username: reg.username!, password };
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function blobBytes(img: PushedImage, digest: string): Uint8Array {
  const b = img.blobs.get(digest);
  if (!(b instanceof Uint8Array)) throw new Error(`blob ${digest} is not in memory`);
  return new Uint8Array(b); // the fixtures hold some blobs as Buffers
}

/** Pushes `bytes` as a blob of repository `name`; returns its descriptor. */
async function pushBlob(reg: TestRegistry, name: string, bytes: Uint8Array): Promise<Descriptor> {
  using push = await pushClientFor(reg);
  const digest = digestOf(bytes);
  await push.pushBlob(name, digest, bytes);
  return { mediaType: "application/octet-stream", digest, size: bytes.length };
}

Deno.test("plain registry: manifests by tag and digest, HEAD, blobs, ranges, not found, unreachable", async (t) => {
  await using reg = await startRegistry();
  const img = await busybox(reg);
  await using c = client();
  const tg = target(reg.host);

  await t.step("manifest by tag: bytes, media type, computed digest", async () => {
    const m = await c.getManifest(tg, "latest", ACCEPT);
    assertEquals(m.digest, img.manifestDigest);
    assertEquals(m.mediaType, img.manifestMediaType);
    assertEquals(m.bytes, img.manifests[0]!.bytes);
  });
  await t.step("manifest by digest, verified", async () => {
    const m = await c.getManifest(tg, img.manifestDigest, ACCEPT);
    assertEquals(m.digest, img.manifestDigest);
  });
  await t.step("HEAD answers digest, media type and size", async () => {
    const h = await c.headManifest(tg, "latest", ACCEPT);
    assertEquals(h, {
      digest: img.manifestDigest,
      mediaType: img.manifestMediaType,
      size: img.manifests[0]!.bytes.length,
    });
    await assertRejects(() => c.headManifest(tg, "nope", ACCEPT), NotFound);
  });
  await t.step("getBlob: whole, and from an offset with Range", async () => {
    const config = blobBytes(img, img.configDigest);
    const whole = await c.getBlob(tg, img.configDigest);
    assertEquals({ offset: whole.offset, size: whole.size, resumable: whole.resumable }, {
      offset: 0,
      size: config.length,
      resumable: true,
    });
    assertEquals(await bytesOf(whole.body), config);
    const part = await c.getBlob(tg, img.configDigest, { offset: 10 });
    assertEquals({ offset: part.offset, size: part.size }, { offset: 10, size: config.length });
    assertEquals(await bytesOf(part.body), config.subarray(10));
  });
  await t.step("openBlobStream and openBlob yield the layer's bytes", async () => {
    const layer = img.layers[0]!;
    assertEquals(await bytesOf(c.openBlobStream(tg, layer)), blobBytes(img, layer.digest));
    let progressed = 0;
    const s = await c.openBlob(tg, layer, { onProgress: (n) => progressed += n });
    assertEquals((await bytesOf(s)).length, layer.size);
    assertEquals(progressed, layer.size);
  });
  await t.step("a missing tag is NotFound naming the image and the registry", async () => {
    const err = await assertRejects(() => c.getManifest(tg, "nope", ACCEPT), NotFound);
    assertStringIncludes(err.message, `image "${reg.host}/busybox:nope" not found in registry ${reg.host}`);
    assertStringIncludes(err.message, "MANIFEST_UNKNOWN");
  });
  await t.step("a missing blob is NotFound, from getBlob and from openBlob", async () => {
    const missing = digestOf(new TextEncoder().encode("not pushed"));
    const msg = `blob ${missing} not found in repository "busybox" of registry ${reg.host}`;
    await assertRejects(() => c.getBlob(tg, missing), NotFound, msg);
    await assertRejects(() => c.openBlob(tg, { mediaType: "x", digest: missing, size: 10 }), NotFound, msg);
  });
  await t.step("a secure endpoint never falls back to plain HTTP", async () => {
    await using strict = client();
    const err = await assertRejects(() => strict.getManifest(target(reg.host, "busybox", false), "latest", ACCEPT));
    assert(err instanceof Unavailable, err.message);
    assertStringIncludes(err.message, `registry ${reg.host} is unreachable: GET manifest "latest"`);
  });
  await t.step("connection refused is Unavailable naming the endpoint", async () => {
    const host = `127.0.0.1:${freePort()}`;
    const err = await assertRejects(() => c.getManifest(target(host), "latest", ACCEPT), Unavailable);
    assertStringIncludes(err.message, `registry ${host} is unreachable`);
    assertStringIncludes(err.message, "Connection refused");
  });
});

Deno.test("digest and size mismatches are detected", async (t) => {
  await using reg = await startRegistry();
  const img = await busybox(reg);
  await using c = client();
  await t.step("a manifest whose bytes do not hash to the requested digest", async () => {
    const body = img.manifests[0]!.bytes;
    await using srv = startScriptedServer(() => ({
      status: 200,
      headers: { "content-type": img.manifestMediaType },
      body,
    }));
    const other = digestOf(new TextEncoder().encode("other"));
    const err = await assertRejects(() => c.getManifest(target(srv.host), other, ACCEPT), InvalidArgument);
    assertStringIncludes(err.message, `has digest ${img.manifestDigest}, not the requested one`);
  });
  await t.step("a manifest over 4 MiB is refused", async () => {
    await using srv = startScriptedServer(() => ({ status: 200, body: new Uint8Array((4 << 20) + 1) }));
    await assertRejects(() => c.getManifest(target(srv.host), "big", ACCEPT), InvalidArgument, "more than the");
  });
  await t.step("a corrupted blob errors the stream with a digest mismatch", async () => {
    await using proxy = startFaultyProxy(reg, { corruptBlob: true });
    const layer = img.layers[0]!;
    const err = await assertRejects(() => bytesOf(c.openBlobStream(target(proxy.host), layer)), InvalidArgument);
    assertStringIncludes(err.message, `pull of ${layer.digest} from ${proxy.host}: blob digest mismatch`);
  });
});

Deno.test("Basic auth: credentials, wrong password, none", async (t) => {
  await using reg = await startRegistry({ auth: "basic" });
  await busybox(reg);
  const tg = target(reg.host);
  logLines.length = 0;
  await t.step("right credentials", async () => {
    await using c = client();
    const opts = { ...ACCEPT, credentials: creds(reg) };
    await c.getManifest(tg, "latest", opts);
    await c.getManifest(tg, "latest", opts);
  });
  await t.step("a wrong password is PermissionDenied without the password", async () => {
    await using c = client();
    const wrong = "wrong-password-basic-123";
    const err = await assertRejects(
      () => c.getManifest(tg, "latest", { ...ACCEPT, credentials: creds(reg, wrong) }),
      PermissionDenied,
    );
    assertStringIncludes(err.message, `registry ${reg.host} refused access to repository "busybox": `);
    assertStringIncludes(err.message, `as "${reg.username}"`);
    assert(!err.message.includes(wrong), err.message);
    assert(!err.message.includes(btoa(`${reg.username}:${wrong}`)), err.message);
  });
  await t.step("no credentials is PermissionDenied saying so", async () => {
    await using c = client();
    await assertRejects(() => c.getManifest(tg, "latest", ACCEPT), PermissionDenied, "no credentials were given");
  });
  assert(!logLines.some((l) => l.includes(reg.password!) || l.includes("wrong-password")), "no secret logged");
});

Deno.test("Bearer token auth: one token for many calls, expiry, wrong and missing credentials", async (t) => {
  await using reg = await startRegistry({ auth: "token" });
  const img = await busybox(reg);
  const tg = target(reg.host);
  logLines.length = 0;
  await t.step("manifests and blobs share one token request", async () => {
    await using c = client();
    const before = reg.tokenRequests();
    const opts = { ...ACCEPT, credentials: creds(reg) };
    await c.getManifest(tg, "latest", opts);
    await c.getManifest(tg, img.manifestDigest, opts);
    await bytesOf((await c.getBlob(tg, img.configDigest, opts)).body);
    await bytesOf(c.openBlobStream(tg, img.layers[0]!, opts));
    assertEquals(reg.tokenRequests() - before, 1);
    const log = reg.tokenLog().at(-1)!;
    assertEquals(log.account, reg.username);
    assertEquals(log.scopes, ["repository:busybox:pull"]);
  });
  await t.step("concurrent first calls share one token request", async () => {
    await using c = client();
    const before = reg.tokenRequests();
    const opts = { ...ACCEPT, credentials: creds(reg) };
    // The first call learns the challenge; the rest start together once it is known.
    await c.headManifest(tg, "latest", opts);
    c.http.tokens.delete({ registry: reg.host, scope: "repository:busybox:pull", credentials: opts.credentials });
    await Promise.all([1, 2, 3, 4].map(() => c.getManifest(tg, "latest", opts)));
    assertEquals(reg.tokenRequests() - before, 2);
  });
  await t.step("a wrong password is PermissionDenied from the token server, without the password", async () => {
    await using c = client();
    const wrong = "wrong-password-token-456";
    const err = await assertRejects(
      () => c.getManifest(tg, "latest", { ...ACCEPT, credentials: creds(reg, wrong) }),
      PermissionDenied,
    );
    assertStringIncludes(err.message, `registry ${reg.host} refused access to repository "busybox": the token server`);
    assert(!err.message.includes(wrong), err.message);
  });
  await t.step("anonymous pulls are refused when the token server grants nothing", async () => {
    await using c = client();
    const err = await assertRejects(() => c.getManifest(tg, "latest", ACCEPT), PermissionDenied);
    assertStringIncludes(err.message, "after authenticating anonymously");
  });
  await t.step("another caller's credentials never reuse a token", async () => {
    await using c = client();
    await c.getManifest(tg, "latest", { ...ACCEPT, credentials: creds(reg) });
    await assertRejects(() => c.getManifest(tg, "latest", ACCEPT), PermissionDenied);
  });
  assert(!logLines.some((l) => l.includes(reg.password!) || l.includes("wrong-password")), "no secret logged");
});

Deno.test("Bearer tokens expire; anonymous tokens work where the token server grants them", async () => {
  await using reg = await startRegistry({ auth: "token", anonymousPull: true, tokenExpiresIn: 1 });
  await busybox(reg);
  await using c = client();
  const before = reg.tokenRequests();
  await c.getManifest(target(reg.host), "latest", ACCEPT);
  await c.getManifest(target(reg.host), "latest", ACCEPT);
  assertEquals(reg.tokenRequests() - before, 1);
  await new Promise((r) => setTimeout(r, 1_100));
  await c.getManifest(target(reg.host), "latest", ACCEPT);
  assertEquals(reg.tokenRequests() - before, 2);
  assertEquals(reg.tokenLog().at(-1)!.account, undefined);
});

Deno.test("registry tokens, identity tokens and redirects (scripted servers)", async (t) => {
  const manifest = new TextEncoder().encode('{"schemaVersion":2}');
  await using c = client();
  await t.step("a registry token is sent as the Bearer token, with no token request", async () => {
    await using srv = startScriptedServer((req): ScriptedResponse =>
      req.headers.authorization === "Bearer reg-token-1"
        ? { status: 200, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" }, body: manifest }
        : { status: 401, headers: { "www-authenticate": 'Bearer realm="http://127.0.0.1:9/token"' } }
    );
    const m = await c.getManifest(target(srv.host), "v1", { ...ACCEPT, credentials: { registryToken: "reg-token-1" } });
    assertEquals(m.bytes, manifest);
    const err = await assertRejects(
      () => c.getManifest(target(srv.host), "v1", { ...ACCEPT, credentials: { registryToken: "bad-token-xyz" } }),
      PermissionDenied,
      "the registry token was not accepted",
    );
    assert(!err.message.includes("bad-token-xyz"), err.message);
  });
  await t.step("an identity token is exchanged by an OAuth2 refresh_token POST", async () => {
    await using auth = startScriptedServer((req) =>
      req.method === "POST" && new URLSearchParams(req.body).get("refresh_token") === "id-token-1"
        ? { status: 200, headers: { "content-type": "application/json" }, body: '{"access_token":"acc-1"}' }
        : { status: 401 }
    );
    await using srv = startScriptedServer((req): ScriptedResponse =>
      req.headers.authorization === "Bearer acc-1" ? { status: 200, body: manifest } : {
        status: 401,
        headers: { "www-authenticate": `Bearer realm="${auth.url}/token",service="svc"` },
      }
    );
    await c.getManifest(target(srv.host, "team/app"), "v1", {
      ...ACCEPT,
      credentials: { identityToken: "id-token-1" },
    });
    assertEquals(auth.requests.length, 1);
    const form = new URLSearchParams(auth.requests[0]!.body);
    assertEquals(auth.requests[0]!.method, "POST");
    assertEquals(
      [form.get("grant_type"), form.get("service"), form.get("scope")],
      ["refresh_token", "svc", "repository:team/app:pull"],
    );
  });
  await t.step("a redirect to another host does not carry the Authorization header", async () => {
    const blob = crypto.getRandomValues(new Uint8Array(3000));
    const digest = digestOf(blob);
    await using storage = startScriptedServer(() => ({ status: 200, body: blob }));
    await using srv = startScriptedServer((req): ScriptedResponse =>
      req.path.includes("/blobs/")
        ? { status: 307, headers: { location: `${storage.url}/data/${digest}?sig=abc` } }
        : { status: 404 }
    );
    const got = await bytesOf(
      c.openBlobStream(target(srv.host), { mediaType: "x", digest, size: blob.length }, {
        credentials: { registryToken: "secret-registry-token" },
      }),
    );
    assertEquals(got, blob);
    assertEquals(srv.requests[0]!.headers.authorization, "Bearer secret-registry-token");
    assertEquals(storage.requests.length, 1);
    assertEquals(storage.requests[0]!.headers.authorization, undefined);
    assertEquals(storage.requests[0]!.path, `/data/${digest}?sig=abc`);
  });
});

Deno.test("TLS: the CA from certs.d is trusted; without it the registry is unreachable", async (t) => {
  await using reg = await startRegistry({ tls: true });
  const img = await busybox(reg);
  const tg = target(reg.host, "busybox", false);
  await t.step("with certsDir", async () => {
    await using c = client({ certsDir: reg.certsDir! });
    assertEquals((await c.getManifest(tg, "latest", ACCEPT)).digest, img.manifestDigest);
    assertEquals((await bytesOf(c.openBlobStream(tg, img.layers[0]!))).length, img.layers[0]!.size);
  });
  await t.step("without it: Unavailable naming the certificate problem and where a CA belongs", async () => {
    const empty = await Deno.makeTempDir();
    try {
      await using c = client({ certsDir: empty });
      const err = await assertRejects(() => c.getManifest(tg, "latest", ACCEPT), Unavailable);
      assertStringIncludes(err.message, "certificate");
      assertStringIncludes(err.message, `${empty}/${reg.host}/ca.crt`);
    } finally {
      await Deno.remove(empty, { recursive: true });
    }
  });
});

Deno.test("network faults: resume with Range, restart without it, Retry-After, no progress", async (t) => {
  await using reg = await startRegistry();
  const big = new Uint8Array(3 << 20);
  for (let off = 0; off < big.length; off += 65536) crypto.getRandomValues(big.subarray(off, off + 65536));
  const desc = await pushBlob(reg, "blobs", big);
  await using c = client();

  await t.step("a response cut midway resumes with Range from the byte received", async () => {
    await using proxy = startFaultyProxy(reg, { dropAfterBytes: 1_000_000, dropTimes: 1 });
    assertEquals(await bytesOf(c.openBlobStream(target(proxy.host, "blobs"), desc)), big);
    const gets = proxy.requests().filter((r) => r.digest === desc.digest && r.method === "GET");
    assertEquals(gets.length, 2);
    assertEquals(gets[0]!.range, undefined);
    const m = /^bytes=([0-9]+)-$/.exec(gets[1]!.range ?? "");
    assert(m && Number(m[1]) > 0 && Number(m[1]) <= 1_000_000, `second request's Range: ${gets[1]!.range}`);
  });
  await t.step("a server without ranges is asked again from the start; the bytes are skipped", async () => {
    await using srv = startScriptedServer((_req, i) => ({
      status: 200,
      body: big,
      ...(i === 0 ? { cutAfter: 700_000 } : {}),
    }));
    assertEquals(await bytesOf(c.openBlobStream(target(srv.host, "blobs"), desc)), big);
    assertEquals(srv.requests.length, 2);
    assertEquals(srv.requests[1]!.headers.range, undefined);
  });
  await t.step("429 with Retry-After is waited out", async () => {
    await using srv = startScriptedServer((_req, i) =>
      i === 0 ? { status: 429, headers: { "retry-after": "1" }, body: "slow down" } : { status: 200, body: big }
    );
    const t0 = performance.now();
    assertEquals(await bytesOf(c.openBlobStream(target(srv.host, "blobs"), desc)), big);
    assert(performance.now() - t0 >= 950, "waited for Retry-After");
    assertEquals(srv.requests.length, 2);
  });
  await t.step("a manifest answered 503 is retried", async () => {
    await using srv = startScriptedServer((_req, i) =>
      i === 0 ? { status: 503 } : { status: 200, body: '{"schemaVersion":2}' }
    );
    await c.getManifest(target(srv.host), "v1", ACCEPT);
    assertEquals(srv.requests.length, 2);
  });
  await t.step("a stalled download fails with DeadlineExceeded after progressTimeoutMs", async () => {
    await using proxy = startFaultyProxy(reg, { stallAfterBytes: 100_000 });
    await c.headManifest(target(proxy.host, "blobs"), "none", ACCEPT).catch(() => {}); // learn the scheme first
    const t0 = performance.now();
    const err = await assertRejects(
      () => bytesOf(c.openBlobStream(target(proxy.host, "blobs"), desc, { progressTimeoutMs: 500 })),
      DeadlineExceeded,
    );
    assertEquals(err.message, `pull of ${desc.digest} from ${proxy.host} made no progress for 0.5s`);
    const took = performance.now() - t0;
    assert(took >= 480 && took < 5_000, `gave up after ${took} ms`);
    assert(proxy.requests().some((r) => r.fault === "stall"), "the proxy stalled the blob");
  });
});
