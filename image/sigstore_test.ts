// Tests for cosign payloads, key import, DER signature conversion and signature verification with Web Crypto keys;
// signatures are made with the shared fixtures' DER encoder, an implementation independent of the decoder here.
import { assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import {
  COSIGN_SIGNATURE_ANNOTATION,
  cosignSignatureTag,
  derToRawEcdsa,
  importPublicKey,
  parseSimpleSigningPayload,
  verifyPayload,
  verifySigstoreSignature,
} from "./sigstore.ts";
import { MediaType } from "./manifest.ts";
import { derToPem } from "../tests/fixtures/certs.ts";
import { rawEcdsaToDer, simpleSigningPayload } from "../tests/fixtures/signed_image.ts";

const enc = new TextEncoder();
const DIGEST = "sha256:" + "ab".repeat(32);

const toPem = async (key: CryptoKey) =>
  derToPem(new Uint8Array(await crypto.subtle.exportKey("spki", key)), "PUBLIC KEY");
const rawToDer = rawEcdsaToDer;
const cosignPayload = simpleSigningPayload;

async function signP256(key: CryptoKey, payload: Uint8Array<ArrayBuffer>): Promise<string> {
  const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, payload));
  return rawToDer(raw).toBase64();
}

Deno.test("cosignSignatureTag", async (t) => {
  await t.step("sha256", () => assertEquals(cosignSignatureTag(DIGEST), `sha256-${"ab".repeat(32)}.sig`));
  await t.step("invalid digest", () => void assertThrows(() => cosignSignatureTag("sha256:x"), InvalidArgument));
});

Deno.test("parseSimpleSigningPayload", async (t) => {
  await t.step("a cosign payload", () => {
    assertEquals(parseSimpleSigningPayload(cosignPayload("quay.io/a/b", DIGEST)), {
      dockerReference: "quay.io/a/b",
      manifestDigest: DIGEST,
    });
  });
  await t.step("optional may be null, as cosign writes it", () => {
    const doc = JSON.parse(new TextDecoder().decode(cosignPayload("a.io/b", DIGEST)));
    doc.optional = null;
    assertEquals(parseSimpleSigningPayload(enc.encode(JSON.stringify(doc))).manifestDigest, DIGEST);
  });
  await t.step("optional may hold anything", () => {
    const doc = JSON.parse(new TextDecoder().decode(cosignPayload("a.io/b", DIGEST)));
    doc.optional = { creator: "x", nested: { y: 1 } };
    assertEquals(parseSimpleSigningPayload(enc.encode(JSON.stringify(doc))).dockerReference, "a.io/b");
  });
  const base = () => JSON.parse(new TextDecoder().decode(cosignPayload("a.io/b", DIGEST)));
  const bad: [string, (d: any) => unknown, string][] = [
    ["extra top-level member", (d) => ({ ...d, extra: 1 }), 'unexpected member "extra" in the payload'],
    [
      "extra critical member",
      (d) => ({ ...d, critical: { ...d.critical, x: 1 } }),
      'unexpected member "x" in "critical"',
    ],
    ["extra image member", (d) => (d.critical.image.x = 1, d), 'unexpected member "x" in critical.image'],
    ["extra identity member", (d) => (d.critical.identity.x = 1, d), 'unexpected member "x" in critical.identity'],
    [
      "atomic type",
      (d) => (d.critical.type = "atomic container signature", d),
      'critical.type is "atomic container signature"',
    ],
    ["no digest", (d) => (delete d.critical.image["docker-manifest-digest"], d), "docker-manifest-digest"],
    ["no identity", (d) => (delete d.critical.identity, d), "docker-reference"],
    ["no critical", () => ({ optional: {} }), 'missing "critical"'],
    ["optional a string", (d) => ({ ...d, optional: "x" }), '"optional" is not an object'],
    ["not an object", () => [], "not a JSON object"],
  ];
  for (const [name, mutate, message] of bad) {
    await t.step(name, () => {
      assertThrows(
        () => parseSimpleSigningPayload(enc.encode(JSON.stringify(mutate(base())))),
        InvalidArgument,
        message,
      );
    });
  }
  await t.step("not JSON", () => {
    assertThrows(() => parseSimpleSigningPayload(enc.encode("{")), InvalidArgument, "not valid UTF-8 JSON");
  });
});

Deno.test("derToRawEcdsa", async (t) => {
  await t.step("round trip, including high-bit and short integers", () => {
    for (
      const raw of [
        new Uint8Array(64).fill(0xff),
        new Uint8Array(64).map((_, i) => (i < 3 ? 0 : i)),
        new Uint8Array(64).fill(1),
      ]
    ) {
      assertEquals(derToRawEcdsa(rawToDer(raw), 32), raw);
    }
  });
  const bad: [string, number[], string][] = [
    ["not a sequence", [0x31, 0x00], "not a DER sequence"],
    ["truncated", [0x30, 0x06, 0x02, 0x01, 0x01], "truncated DER"],
    ["trailing bytes after the sequence", [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00], "not a DER sequence"],
    ["not integers", [0x30, 0x06, 0x04, 0x01, 0x01, 0x02, 0x01, 0x01], "expected an INTEGER"],
    ["negative", [0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01], "negative INTEGER"],
    ["too large", [0x30, 0x26, 0x02, 0x21, ...new Array(33).fill(1), 0x02, 0x01, 0x01], "too large for the curve"],
    ["extra element", [0x30, 0x09, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01], "trailing data"],
  ];
  for (const [name, der, message] of bad) {
    await t.step(name, () => void assertThrows(() => derToRawEcdsa(new Uint8Array(der), 32), InvalidArgument, message));
  }
});

Deno.test("public keys and verification", async (t) => {
  const p256 = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const other = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const payload = cosignPayload("127.0.0.1:5000/x", DIGEST);
  const sigB64 = await signP256(p256.privateKey, payload);
  const key = await importPublicKey(await toPem(p256.publicKey));
  const otherKey = await importPublicKey(await toPem(other.publicKey));

  await t.step("P-256 import", () => assertEquals([key.kind, key.size], ["ecdsa", 32]));
  await t.step("a good signature", async () => {
    const claims = await verifySigstoreSignature(
      { payload, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sigB64 }, mediaType: MediaType.CosignSimpleSigning },
      [otherKey, key],
    );
    assertEquals(claims, { dockerReference: "127.0.0.1:5000/x", manifestDigest: DIGEST });
  });
  const refusals: [string, () => Promise<unknown>, string][] = [
    [
      "wrong key",
      () => verifySigstoreSignature({ payload, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sigB64 } }, [otherKey]),
      "not valid for any trusted key",
    ],
    [
      "tampered payload",
      () =>
        verifySigstoreSignature({
          payload: cosignPayload("127.0.0.1:5000/y", DIGEST),
          annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sigB64 },
        }, [key]),
      "not valid for any trusted key",
    ],
    [
      "no annotation",
      () => verifySigstoreSignature({ payload, annotations: {} }, [key]),
      `no ${COSIGN_SIGNATURE_ANNOTATION} annotation`,
    ],
    [
      "bad base64",
      () => verifySigstoreSignature({ payload, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: "@@" } }, [key]),
      "not valid base64",
    ],
    [
      "wrong media type",
      () =>
        verifySigstoreSignature({
          payload,
          annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sigB64 },
          mediaType: "application/json",
        }, [key]),
      "media type application/json",
    ],
    [
      "no keys",
      () => verifySigstoreSignature({ payload, annotations: { [COSIGN_SIGNATURE_ANNOTATION]: sigB64 } }, []),
      "not valid for any trusted key",
    ],
  ];
  for (const [name, fn, message] of refusals) {
    await t.step(name, async () => void await assertRejects(fn, InvalidArgument, message));
  }

  await t.step("raw (non-DER) ECDSA signatures are refused", async () => {
    const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, p256.privateKey, payload));
    assertEquals(await verifyPayload(key, payload, raw), false);
  });
  await t.step("P-384 with SHA-256 or SHA-384", async () => {
    const k = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"]);
    const pub = await importPublicKey(await toPem(k.publicKey));
    assertEquals(pub.size, 48);
    for (const hash of ["SHA-256", "SHA-384"]) {
      const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash }, k.privateKey, payload));
      assertEquals(await verifyPayload(pub, payload, rawToDer(raw)), true);
    }
  });
  await t.step("Ed25519", async () => {
    const k = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]) as CryptoKeyPair;
    const pub = await importPublicKey(await toPem(k.publicKey));
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, k.privateKey, payload));
    assertEquals([
      pub.kind,
      await verifyPayload(pub, payload, sig),
      await verifyPayload(pub, cosignPayload("a.io/b", DIGEST), sig),
    ], [
      "ed25519",
      true,
      false,
    ]);
  });
  await t.step("RSA PKCS#1 v1.5", async () => {
    const k = await crypto.subtle.generateKey(
      { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
      true,
      ["sign", "verify"],
    );
    const pub = await importPublicKey(await toPem(k.publicKey));
    const sig = new Uint8Array(await crypto.subtle.sign({ name: "RSASSA-PKCS1-v1_5" }, k.privateKey, payload));
    assertEquals([pub.kind, await verifyPayload(pub, payload, sig)], ["rsa", true]);
  });
  await t.step("unsupported and malformed keys", async () => {
    const x = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]) as CryptoKeyPair;
    await assertRejects(
      async () => importPublicKey(await toPem(x.publicKey)),
      InvalidArgument,
      "unsupported public key algorithm",
    );
    await assertRejects(() => importPublicKey("not a pem"), InvalidArgument, "no PEM PUBLIC KEY block");
    await assertRejects(
      () => importPublicKey("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----"),
      InvalidArgument,
      "not valid base64",
    );
    await assertRejects(
      () => importPublicKey("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----"),
      InvalidArgument,
      "truncated DER",
    );
  });
});
