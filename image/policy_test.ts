// Tests for policy.json parsing, scope lookup and evaluation, with cosign signatures made by Web Crypto keys.
import { assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InvalidArgument, PermissionDenied } from "../lib/errors.ts";
import { derToPem } from "../tests/fixtures/certs.ts";
import { rawEcdsaToDer, simpleSigningPayload } from "../tests/fixtures/signed_image.ts";
import { parseReference } from "./reference.ts";
import { COSIGN_SIGNATURE_ANNOTATION, type SigstoreSignature } from "./sigstore.ts";
import {
  ACCEPT_ANYTHING_POLICY,
  dockerScopes,
  evaluatePolicy,
  loadPolicy,
  needsSignatures,
  parsePolicy,
  type Policy,
  requirementsFor,
  resolvePolicyKeys,
} from "./policy.ts";

const D = "sha256:" + "d".repeat(64);
const OTHER = "sha256:" + "e".repeat(64);
const b64 = (s: string) => new TextEncoder().encode(s).toBase64();

async function keyPair(): Promise<{ privateKey: CryptoKey; pem: string }> {
  const k = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  return {
    privateKey: k.privateKey,
    pem: derToPem(new Uint8Array(await crypto.subtle.exportKey("spki", k.publicKey)), "PUBLIC KEY"),
  };
}

async function sign(key: CryptoKey, reference: string, digest: string, tamper?: string): Promise<SigstoreSignature> {
  const payload = simpleSigningPayload(reference, digest);
  const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, payload));
  return {
    payload: tamper === undefined ? payload : simpleSigningPayload(tamper, digest),
    annotations: { [COSIGN_SIGNATURE_ANNOTATION]: rawEcdsaToDer(raw).toBase64() },
  };
}

Deno.test("parsePolicy", async (t) => {
  await t.step("a full policy", () => {
    const p = parsePolicy(JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "": [{ type: "insecureAcceptAnything" }],
          "docker.io/library/busybox": [{ type: "insecureAcceptAnything" }],
          "*.example.com": [{ type: "reject" }],
          "quay.io/ns/app:1": [{
            type: "sigstoreSigned",
            keyData: b64("PEM"),
            signedIdentity: { type: "matchRepository" },
          }],
          "quay.io/gpg": [{ type: "signedBy", keyType: "GPGKeys", keyPath: "/k.gpg" }],
          "quay.io/keyless": [{
            type: "sigstoreSigned",
            fulcio: { caPath: "/ca", oidcIssuer: "https://x", subjectEmail: "a@b" },
            rekorPublicKeyPath: "/rekor.pub",
          }],
          "quay.io/many": [{ type: "sigstoreSigned", keyPaths: ["/a.pub", "/b.pub"], keyDatas: undefined }],
        },
        "docker-daemon": { "": [{ type: "insecureAcceptAnything" }] },
        atomic: { "host:5000/ns": [{ type: "signedBy", keyType: "GPGKeys", keyData: b64("x") }] },
      },
    }));
    assertEquals(p.default, [{ type: "reject" }]);
    assertEquals(p.transports.docker?.["quay.io/ns/app:1"], [
      {
        type: "sigstoreSigned",
        keys: [{ source: "keyData", pem: "PEM" }],
        rekor: false,
        signedIdentity: { type: "matchRepository" },
      },
    ]);
    assertEquals(p.transports.docker?.["quay.io/gpg"], [
      { type: "signedBy", keyType: "GPGKeys", signedIdentity: { type: "matchRepoDigestOrExact" } },
    ]);
    assertEquals(p.transports.docker?.["quay.io/keyless"], [
      {
        type: "sigstoreSigned",
        keys: [],
        rekor: true,
        certificates: "fulcio",
        signedIdentity: { type: "matchRepoDigestOrExact" },
      },
    ]);
    assertEquals(p.transports.docker?.["quay.io/many"]?.[0], {
      type: "sigstoreSigned",
      keys: [{ source: "/a.pub", pem: null }, { source: "/b.pub", pem: null }],
      rekor: false,
      signedIdentity: { type: "matchRepoDigestOrExact" },
    });
    assertEquals(Object.keys(p.transports), ["docker", "docker-daemon", "atomic"]);
  });
  const bad: [unknown, string][] = [
    [{}, '"default" is required'],
    [{ default: [] }, "default: must not be empty"],
    [{ default: {} }, "default: expected an array of requirements"],
    [{ default: [{ type: "insecureAcceptAnything" }], extra: 1 }, 'top level: unknown field "extra"'],
    [{ default: [{ type: "acceptEverything" }] }, 'default[0]: unknown requirement type "acceptEverything"'],
    [{ default: [{ type: "reject", why: "x" }] }, 'default[0]: unknown field "why"'],
    [{ default: [{ type: "sigstoreSigned" }] }, "exactly one of"],
    [{ default: [{ type: "sigstoreSigned", keyPath: "/a", keyData: b64("x") }] }, "exactly one of"],
    [{ default: [{ type: "sigstoreSigned", keyPaths: [] }] }, '"keyPaths" must be a non-empty array of paths'],
    [{ default: [{ type: "sigstoreSigned", keyData: "!!" }] }, "default[0].keyData: is not valid base64"],
    [{ default: [{ type: "sigstoreSigned", fulcio: {} }] }, '"fulcio" requires a rekorPublicKey field'],
    [
      { default: [{ type: "sigstoreSigned", keyPath: "/a", rekorPublicKeyPath: "/r", rekorPublicKeyData: "x" }] },
      "at most one rekorPublicKey",
    ],
    [{ default: [{ type: "signedBy", keyType: "GPGKeys" }] }, 'exactly one of "keyPath", "keyPaths" and "keyData"'],
    [{ default: [{ type: "signedBy", keyPath: "/k" }] }, 'missing "keyType"'],
    [
      { default: [{ type: "sigstoreSigned", keyPath: "/a", signedIdentity: { type: "x" } }] },
      'default[0].signedIdentity: unknown type "x"',
    ],
    [{ default: [{ type: "reject" }], transports: [] }, "transports: expected an object"],
    [
      { default: [{ type: "reject" }], transports: { docker: { "a.io": [] } } },
      'transports.docker["a.io"]: must not be empty',
    ],
    [{ default: [{ type: "reject" }], transports: { docker: { "A B": [{ type: "reject" }] } } }, "invalid scope"],
    [
      { default: [{ type: "reject" }], transports: { docker: { "*.a.io:5000": [{ type: "reject" }] } } },
      "a wildcard scope must be *.domain",
    ],
    [
      { default: [{ type: "reject" }], transports: { docker: { "https://a.io": [{ type: "reject" }] } } },
      "must not include a URL scheme",
    ],
  ];
  for (const [doc, message] of bad) {
    await t.step(`refuses ${JSON.stringify(doc).slice(0, 70)}`, () => {
      const err = assertThrows(
        () => parsePolicy(JSON.stringify(doc), "/etc/containers/policy.json"),
        InvalidArgument,
        message,
      );
      assertEquals(err.message.startsWith("signature policy /etc/containers/policy.json: "), true, err.message);
    });
  }
  await t.step("not JSON", () => void assertThrows(() => parsePolicy("{"), InvalidArgument, "invalid JSON"));
});

Deno.test("scopes", async (t) => {
  const cases: [string, string[]][] = [
    ["127.0.0.1:5000/x:1", ["127.0.0.1:5000/x:1", "127.0.0.1:5000/x", "127.0.0.1:5000", "*.0.0.1", "*.0.1", "*.1"]],
    ["busybox", [
      "docker.io/library/busybox:latest",
      "docker.io/library/busybox",
      "docker.io/library",
      "docker.io",
      "*.io",
    ]],
    [`a.b.example.com/ns/x:1@${D}`, [
      `a.b.example.com/ns/x@${D}`,
      "a.b.example.com/ns/x:1",
      "a.b.example.com/ns/x",
      "a.b.example.com/ns",
      "a.b.example.com",
      "*.b.example.com",
      "*.example.com",
      "*.com",
    ]],
    ["localhost/x:1", ["localhost/x:1", "localhost/x", "localhost"]],
  ];
  for (const [input, want] of cases) await t.step(input, () => assertEquals(dockerScopes(parseReference(input)), want));

  const req = (
    n: string,
  ) => [{
    type: "sigstoreSigned" as const,
    keys: [{ source: n, pem: null }],
    rekor: false,
    signedIdentity: { type: "matchRepository" as const },
  }];
  const policy: Policy = {
    default: req("default"),
    transports: {
      docker: {
        "": req(""),
        "q.io/ns/app:1": req("tag"),
        "q.io/ns/app": req("repo"),
        "q.io/ns": req("ns"),
        "q.io": req("host"),
        "*.example.com": req("wild"),
        "x.example.com": req("x host"),
      },
    },
  };
  const lookups: [string, string][] = [
    ["q.io/ns/app:1", "q.io/ns/app:1"],
    ["q.io/ns/app:2", "q.io/ns/app"],
    [`q.io/ns/app@${D}`, "q.io/ns/app"],
    ["q.io/ns/other:1", "q.io/ns"],
    ["q.io/nsx/app:1", "q.io"],
    ["q.io:5000/ns/app:1", ""],
    ["a.example.com/x:1", "*.example.com"],
    ["x.example.com/y:1", "x.example.com"],
    ["example.com/x:1", ""],
  ];
  for (const [input, scope] of lookups) {
    await t.step(
      `requirementsFor ${input}`,
      () => assertEquals(requirementsFor(policy, parseReference(input)).scope, scope),
    );
  }
  await t.step("the global default when the transport has no default", () => {
    assertEquals(requirementsFor({ default: req("d"), transports: {} }, parseReference("a.io/x")).scope, "default");
  });
  await t.step("needsSignatures", () => {
    assertEquals(needsSignatures(policy, parseReference("q.io/x")), true);
    assertEquals(needsSignatures(ACCEPT_ANYTHING_POLICY, parseReference("q.io/x")), false);
  });
});

Deno.test("evaluatePolicy", async (t) => {
  const trusted = await keyPair();
  const untrusted = await keyPair();
  const sigPolicy = (extra: Record<string, unknown> = {}) =>
    parsePolicy(JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          "127.0.0.1:5000/x": [{ type: "sigstoreSigned", keyData: b64(trusted.pem), ...extra }],
          "127.0.0.1:5000/open": [{ type: "insecureAcceptAnything" }],
          "127.0.0.1:5000/gpg": [{ type: "signedBy", keyType: "GPGKeys", keyData: b64("k") }],
          "127.0.0.1:5000/keyless": [{ type: "sigstoreSigned", fulcio: { caPath: "/ca" }, rekorPublicKeyPath: "/r" }],
          "127.0.0.1:5000/rekor": [{ type: "sigstoreSigned", keyData: b64(trusted.pem), rekorPublicKeyData: b64("r") }],
          "127.0.0.1:5000/both": [{ type: "insecureAcceptAnything" }, { type: "reject" }],
        },
      },
    }));
  const policy = sigPolicy();
  const repoIdentity = sigPolicy({ signedIdentity: { type: "matchRepository" } });
  const good = await sign(trusted.privateKey, "127.0.0.1:5000/x", D);
  const ref = (s: string) => parseReference(s);
  const prefix = (image: string, req: string, scope: string) =>
    `image "${image}" refused by signature policy: requirement "${req}" for ${scope}`;

  await t.step("reject names requirement and scope", async () => {
    await assertRejects(
      () =>
        evaluatePolicy(
          parsePolicy(
            JSON.stringify({
              default: [{ type: "insecureAcceptAnything" }],
              transports: { docker: { "127.0.0.1:5000/x": [{ type: "reject" }] } },
            }),
          ),
          { reference: ref("127.0.0.1:5000/x:1"), manifestDigest: D, signatures: [] },
        ),
      PermissionDenied,
      'image "127.0.0.1:5000/x:1" refused by signature policy: requirement "reject" for scope "127.0.0.1:5000/x"',
    );
    await assertRejects(
      () => evaluatePolicy(policy, { reference: ref("other.io/y:1"), manifestDigest: D, signatures: [] }),
      PermissionDenied,
      prefix("other.io/y:1", "reject", "the default policy"),
    );
  });
  await t.step("insecureAcceptAnything", async () => {
    assertEquals(
      await evaluatePolicy(policy, { reference: ref("127.0.0.1:5000/open:1"), manifestDigest: D, signatures: [] }),
      {
        allowed: true,
        scope: "127.0.0.1:5000/open",
      },
    );
    assertEquals(
      await evaluatePolicy(ACCEPT_ANYTHING_POLICY, { reference: ref("busybox"), manifestDigest: D, signatures: [] }),
      { allowed: true, scope: "default" },
    );
  });
  await t.step("every requirement must accept", async () => {
    await assertRejects(
      () => evaluatePolicy(policy, { reference: ref("127.0.0.1:5000/both:1"), manifestDigest: D, signatures: [] }),
      PermissionDenied,
      prefix("127.0.0.1:5000/both:1", "reject", 'scope "127.0.0.1:5000/both"'),
    );
  });
  await t.step("a good signature, pulled by digest", async () => {
    const r = await evaluatePolicy(policy, {
      reference: ref(`127.0.0.1:5000/x@${D}`),
      manifestDigest: D,
      signatures: [good],
    });
    assertEquals(r, { allowed: true, scope: "127.0.0.1:5000/x" });
  });
  await t.step("a good signature, pulled by tag with matchRepository", async () => {
    const r = await evaluatePolicy(repoIdentity, {
      reference: ref("127.0.0.1:5000/x:1"),
      manifestDigest: D,
      signatures: [good],
    });
    assertEquals(r.allowed, true);
  });
  await t.step("one good signature among bad ones is enough", async () => {
    const bad = await sign(untrusted.privateKey, "127.0.0.1:5000/x", D);
    const r = await evaluatePolicy(policy, {
      reference: ref(`127.0.0.1:5000/x@${D}`),
      manifestDigest: D,
      signatures: [bad, good],
    });
    assertEquals(r.allowed, true);
  });

  const x = "127.0.0.1:5000/x";
  const refusals: [string, () => Promise<SigstoreSignature[]>, string, Policy, string][] = [
    [
      "wrong key",
      async () => [await sign(untrusted.privateKey, x, D)],
      `${x}@${D}`,
      policy,
      "signature is not valid for any trusted key",
    ],
    [
      "tampered payload",
      async () => [await sign(trusted.privateKey, x, D, "127.0.0.1:5000/evil")],
      `${x}@${D}`,
      policy,
      "signature is not valid for any trusted key",
    ],
    [
      "wrong digest",
      async () => [await sign(trusted.privateKey, x, OTHER)],
      `${x}@${D}`,
      policy,
      `signature is for manifest ${OTHER}, not ${D}`,
    ],
    [
      "wrong identity",
      async () => [await sign(trusted.privateKey, "127.0.0.1:5000/y", D)],
      `${x}@${D}`,
      policy,
      'signature identity "127.0.0.1:5000/y" does not match "127.0.0.1:5000/x"',
    ],
    [
      "cosign identity on a tag pull",
      () => Promise.resolve([good]),
      `${x}:1`,
      policy,
      'signature identity "127.0.0.1:5000/x" does not match "127.0.0.1:5000/x:1" (signedIdentity matchRepoDigestOrExact)',
    ],
    [
      "no signatures",
      () => Promise.resolve([]),
      `${x}:1`,
      policy,
      `no signatures found (looked for tag sha256-${"d".repeat(64)}.sig)`,
    ],
    [
      "several failures are listed",
      async () => [await sign(untrusted.privateKey, x, D), await sign(trusted.privateKey, x, OTHER)],
      `${x}@${D}`,
      policy,
      `no signature accepted: [1] signature is not valid for any trusted key; [2] signature is for manifest ${OTHER}`,
    ],
  ];
  for (const [name, sigs, image, pol, why] of refusals) {
    await t.step(name, async () => {
      const signatures = await sigs();
      await assertRejects(
        () => evaluatePolicy(pol, { reference: ref(image), manifestDigest: D, signatures }),
        PermissionDenied,
        `${prefix(image, "sigstoreSigned", `scope "${x}"`)}: ${why}`,
      );
    });
  }
  const unsupported: [string, string, string][] = [
    ["127.0.0.1:5000/gpg:1", "signedBy", "GPG simple signing is not supported by davit (use sigstoreSigned)"],
    ["127.0.0.1:5000/keyless:1", "sigstoreSigned", "fulcio certificate-based signatures are not supported by davit"],
    ["127.0.0.1:5000/rekor:1", "sigstoreSigned", "Rekor inclusion proofs are not supported by davit"],
  ];
  for (const [image, req, why] of unsupported) {
    await t.step(`unsupported: ${req} ${image}`, async () => {
      const scope = image.slice(0, image.lastIndexOf(":"));
      await assertRejects(
        () => evaluatePolicy(policy, { reference: ref(image), manifestDigest: D, signatures: [good] }),
        PermissionDenied,
        `${prefix(image, req, `scope "${scope}"`)}: ${why}`,
      );
    });
  }
  await t.step("an invalid key refuses, naming it", async () => {
    const p = parsePolicy(JSON.stringify({ default: [{ type: "sigstoreSigned", keyData: b64("garbage") }] }));
    await assertRejects(
      () => evaluatePolicy(p, { reference: ref(`${x}@${D}`), manifestDigest: D, signatures: [good] }),
      PermissionDenied,
      "invalid public key keyData: no PEM PUBLIC KEY block",
    );
  });
});

Deno.test("policy files", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-policy-" });
  try {
    const trusted = await keyPair();
    await Deno.writeTextFile(`${dir}/key.pub`, trusted.pem);
    const text = JSON.stringify({
      default: [{ type: "sigstoreSigned", keyPath: `${dir}/key.pub` }],
      transports: {
        docker: { "a.io/missing": [{ type: "sigstoreSigned", keyPaths: [`${dir}/key.pub`, `${dir}/none.pub`] }] },
      },
    });
    await Deno.writeTextFile(`${dir}/policy.json`, text);
    await t.step("a missing file accepts anything", async () => {
      assertEquals(await loadPolicy(`${dir}/absent.json`), ACCEPT_ANYTHING_POLICY);
    });
    await t.step("key files are read at load", async () => {
      const p = await loadPolicy(`${dir}/policy.json`);
      const good = await sign(trusted.privateKey, "b.io/x", D);
      assertEquals(
        (await evaluatePolicy(p, { reference: parseReference(`b.io/x@${D}`), manifestDigest: D, signatures: [good] }))
          .allowed,
        true,
      );
    });
    await t.step("an unreadable key file refuses, naming it", async () => {
      const p = await loadPolicy(`${dir}/policy.json`);
      await assertRejects(
        () => evaluatePolicy(p, { reference: parseReference(`a.io/missing@${D}`), manifestDigest: D, signatures: [] }),
        PermissionDenied,
        `public key file "${dir}/none.pub" could not be read`,
      );
    });
    await t.step("resolvePolicyKeys leaves the parsed policy untouched", async () => {
      const parsed = parsePolicy(text);
      const resolved = await resolvePolicyKeys(parsed, (path) => Promise.resolve(`pem of ${path}`));
      assertEquals(parsed.default[0]?.type === "sigstoreSigned" && parsed.default[0].keys[0]?.pem, null);
      assertEquals(
        resolved.default[0]?.type === "sigstoreSigned" && resolved.default[0].keys[0]?.pem,
        `pem of ${dir}/key.pub`,
      );
    });
    await t.step("a broken policy file is an error, not acceptance", async () => {
      await Deno.writeTextFile(`${dir}/bad.json`, "{");
      await assertRejects(
        () => loadPolicy(`${dir}/bad.json`),
        InvalidArgument,
        `signature policy ${dir}/bad.json: invalid JSON`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
