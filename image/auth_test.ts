// Table tests for auth files, credential lookup, WWW-Authenticate parsing, token requests and redaction.
import { assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import {
  type AuthChallenge,
  credentialsFromAuthConfig,
  decodeAuthField,
  encodeBasic,
  findCredentials,
  normalizeAuthKey,
  parseAuthFile,
  parseTokenResponse,
  parseWwwAuthenticate,
  redactCredentials,
  repositoryScope,
  tokenRequest,
  tokenRequestUrl,
} from "./auth.ts";

const b64 = (s: string) => new TextEncoder().encode(s).toBase64();

Deno.test("auth file", async (t) => {
  const file = parseAuthFile(
    JSON.stringify({
      auths: {
        "registry.example.com": { auth: b64("host:hostpw") },
        "registry.example.com/ns": { auth: b64("ns:nspw") },
        "registry.example.com/ns/team/app": { auth: b64("app:app:pw:with:colons") },
        "https://index.docker.io/v1/": { auth: b64("hub:hubpw") },
        "http://legacy.example.com/v1/": { auth: b64("legacy:old") },
        "legacy.example.com": { auth: b64("modern:new") },
        "localhost:5001": {},
        "tok.example.com": { auth: b64("<token>:"), identitytoken: "refresh-me" },
        "ütf.example.com": { auth: b64("üser:pässword") },
      },
      credHelpers: { "helper.example.com": "secretservice" },
    }),
    "auth.json",
  );
  const cases: [string, string | undefined][] = [
    ["registry.example.com", "host:hostpw"],
    ["registry.example.com/other/app", "host:hostpw"],
    ["registry.example.com/ns", "ns:nspw"],
    ["registry.example.com/ns/app", "ns:nspw"],
    ["registry.example.com/ns/team", "ns:nspw"],
    ["registry.example.com/ns/team/app", "app:app:pw:with:colons"],
    ["registry.example.com/ns/team/app2", "ns:nspw"],
    ["registry.example.com:5000/ns", undefined],
    ["docker.io", "hub:hubpw"],
    ["docker.io/library/busybox", "hub:hubpw"],
    ["index.docker.io/library/busybox", "hub:hubpw"],
    ["legacy.example.com", "modern:new"],
    ["localhost:5001", undefined],
    ["helper.example.com", undefined],
    ["quay.io", undefined],
    ["ütf.example.com", "üser:pässword"],
  ];
  for (const [target, want] of cases) {
    await t.step(target, () => {
      const c = findCredentials(file, target);
      assertEquals(c === undefined ? undefined : `${c.username}:${c.password}`, want);
    });
  }
  await t.step("identity token", () => {
    assertEquals(findCredentials(file, "tok.example.com"), {
      username: "<token>",
      password: "",
      identityToken: "refresh-me",
    });
  });
  await t.step("legacy key after a modern one does not override it", () => {
    const f = parseAuthFile(
      JSON.stringify({
        auths: { "docker.io": { auth: b64("a:1") }, "https://index.docker.io/v1/": { auth: b64("b:2") } },
      }),
      "x",
    );
    assertEquals(findCredentials(f, "docker.io")?.username, "a");
  });
  await t.step("empty file and no auths", () => {
    assertEquals(parseAuthFile("{}", "x"), { auths: {} });
  });
  const bad: [string, string][] = [
    ["not json", "auth.json: not valid JSON"],
    ["[]", "auth.json: not a JSON object"],
    ['{"auths": []}', '"auths" is not an object'],
    ['{"auths": {"a.io": 1}}', 'auths["a.io"]: not an object'],
    ['{"auths": {"a.io": {"auth": "!!!"}}}', 'auths["a.io"]: "auth" is not valid base64 of user:password'],
    [`{"auths": {"a.io": {"auth": "${b64("nocolon")}"}}}`, '"auth" does not decode to user:password'],
    ['{"auths": {"a.io": {"auth": 5}}}', '"auth" is not a string'],
  ];
  for (const [text, message] of bad) {
    await t.step(`refuses ${text.slice(0, 30)}`, () => {
      const err = assertThrows(() => parseAuthFile(text, "auth.json"), InvalidArgument, message);
      assertEquals(err.message.includes("nocolon"), false);
    });
  }
});

Deno.test("normalizeAuthKey", async (t) => {
  const cases: [string, string, boolean][] = [
    ["quay.io", "quay.io", false],
    ["quay.io/ns/repo", "quay.io/ns/repo", false],
    ["https://quay.io", "quay.io", true],
    ["https://index.docker.io/v1/", "docker.io", true],
    ["http://localhost:5000/v2/", "localhost:5000", true],
    ["registry-1.docker.io", "docker.io", false],
    ["index.docker.io/ns", "docker.io/ns", false],
  ];
  for (const [input, key, legacy] of cases) {
    await t.step(input, () => assertEquals(normalizeAuthKey(input), { key, legacy }));
  }
});

Deno.test("credentials from CRI AuthConfig", async (t) => {
  await t.step("username/password", () => {
    assertEquals(credentialsFromAuthConfig({ username: "u", password: "p" }), { username: "u", password: "p" });
  });
  await t.step("auth field", () => {
    assertEquals(credentialsFromAuthConfig({ auth: b64("u:p") }), { username: "u", password: "p" });
  });
  await t.step("tokens", () => {
    assertEquals(credentialsFromAuthConfig({ identityToken: "i", registryToken: "r" }), {
      identityToken: "i",
      registryToken: "r",
    });
  });
  await t.step("nothing", () => assertEquals(credentialsFromAuthConfig({}), undefined));
  await t.step(
    "decodeAuthField",
    () => assertEquals(decodeAuthField(b64("a:b:c")), { username: "a", password: "b:c" }),
  );
  await t.step(
    "encodeBasic",
    () => assertEquals(encodeBasic("Aladdin", "open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
  );
});

Deno.test("parseWwwAuthenticate", async (t) => {
  const cases: [string, AuthChallenge[]][] = [
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      [{
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/busybox:pull",
        },
      }],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: "basic", params: { realm: "Registry Realm" } }]],
    [
      'Bearer realm="https://a/t", service="s" , Basic realm="x"',
      [{ scheme: "bearer", params: { realm: "https://a/t", service: "s" } }, {
        scheme: "basic",
        params: { realm: "x" },
      }],
    ],
    ['Basic realm="a\\"b\\\\c", charset="UTF-8"', [{ scheme: "basic", params: { realm: 'a"b\\c', charset: "UTF-8" } }]],
    ["BEARER Realm=https://a/t,Service=reg", [{ scheme: "bearer", params: { realm: "https://a/t", service: "reg" } }]],
    ['Bearer realm="x,y", error="insufficient_scope"', [{
      scheme: "bearer",
      params: { realm: "x,y", error: "insufficient_scope" },
    }]],
    ["Negotiate abc==, Basic realm=r", [{ scheme: "negotiate", params: {}, token68: "abc==" }, {
      scheme: "basic",
      params: { realm: "r" },
    }]],
    ["Basic", [{ scheme: "basic", params: {} }]],
    ["Basic, Bearer", [{ scheme: "basic", params: {} }, { scheme: "bearer", params: {} }]],
    ["", []],
    ['Bearer realm="unterminated', [{ scheme: "bearer", params: {} }]],
    ['Bearer realm = "spaced" , service = s', [{ scheme: "bearer", params: { realm: "spaced", service: "s" } }]],
  ];
  for (const [header, want] of cases) {
    await t.step(JSON.stringify(header.slice(0, 50)), () => assertEquals(parseWwwAuthenticate(header), want));
  }
});

Deno.test("token requests", async (t) => {
  const challenge: AuthChallenge = {
    scheme: "bearer",
    params: { realm: "https://auth.example.com/token?x=1", service: "registry.example.com" },
  };
  const scope = repositoryScope("ns/app");
  await t.step("scope", () => {
    assertEquals(scope, "repository:ns/app:pull");
    assertEquals(repositoryScope("a", ["pull", "push"]), "repository:a:pull,push");
  });
  await t.step("URL", () => {
    assertEquals(
      tokenRequestUrl(challenge, [scope]),
      "https://auth.example.com/token?x=1&service=registry.example.com&scope=repository%3Ans%2Fapp%3Apull",
    );
  });
  await t.step("anonymous GET", () => {
    assertEquals(tokenRequest(challenge, { scopes: [scope] }).headers, {});
  });
  await t.step("Basic GET", () => {
    const r = tokenRequest(challenge, { scopes: [scope], credentials: { username: "u", password: "p" } });
    assertEquals([r.method, r.headers], ["GET", { authorization: `Basic ${b64("u:p")}` }]);
  });
  await t.step("OAuth2 refresh POST", () => {
    const r = tokenRequest(challenge, { scopes: [scope, "repository:b:pull"], credentials: { identityToken: "rt" } });
    assertEquals(r.method, "POST");
    assertEquals(r.url, "https://auth.example.com/token?x=1");
    assertEquals(Object.fromEntries(new URLSearchParams(r.body)), {
      grant_type: "refresh_token",
      refresh_token: "rt",
      service: "registry.example.com",
      client_id: "davit",
      scope: "repository:ns/app:pull repository:b:pull",
    });
  });
  await t.step("bad realms", () => {
    assertThrows(() => tokenRequestUrl({ scheme: "bearer", params: {} }, []), InvalidArgument, "has no realm");
    assertThrows(
      () => tokenRequestUrl({ scheme: "bearer", params: { realm: "nope" } }, []),
      InvalidArgument,
      "not a URL",
    );
    assertThrows(
      () => tokenRequestUrl({ scheme: "bearer", params: { realm: "file:///x" } }, []),
      InvalidArgument,
      "http(s)",
    );
  });
  await t.step("token responses", () => {
    assertEquals(parseTokenResponse({ token: "t" }), { token: "t", expiresIn: 60 });
    assertEquals(
      parseTokenResponse({ access_token: "a", expires_in: 300, issued_at: "2024-01-01T00:00:00Z", refresh_token: "r" }),
      {
        token: "a",
        expiresIn: 300,
        issuedAt: "2024-01-01T00:00:00Z",
        refreshToken: "r",
      },
    );
    assertThrows(() => parseTokenResponse({}), InvalidArgument, "no token");
    assertThrows(() => parseTokenResponse("x"), InvalidArgument, "not a JSON object");
  });
});

Deno.test("redactCredentials", async (t) => {
  const creds = { username: "alice", password: "s3cr3t pw/+", identityToken: "idtok", registryToken: "regtok" };
  const cases: [string, string][] = [
    ["login failed for alice with s3cr3t pw/+", "login failed for alice with [REDACTED]"],
    [`Authorization: Basic ${b64("alice:s3cr3t pw/+")}`, "Authorization: Basic [REDACTED]"],
    [`GET /?password=${encodeURIComponent("s3cr3t pw/+")}`, "GET /?password=[REDACTED]"],
    ["refresh_token=idtok&x=regtok", "refresh_token=[REDACTED]&x=[REDACTED]"],
    ["body: s3cr3t+pw%2F%2B", "body: [REDACTED]"],
    ["nothing secret here", "nothing secret here"],
  ];
  for (const [text, want] of cases) {
    await t.step(text.slice(0, 30), () => assertEquals(redactCredentials(text, creds), want));
  }
  await t.step("several credentials, or none", () => {
    assertEquals(redactCredentials("a b", [{ password: "a" }, { registryToken: "b" }]), "[REDACTED] [REDACTED]");
    assertEquals(redactCredentials("a b", undefined), "a b");
    assertStringIncludes(redactCredentials("pw", { username: "u", password: "" }), "pw");
  });
});
