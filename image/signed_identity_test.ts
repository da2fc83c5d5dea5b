// Table tests for signedIdentity parsing and matching (containers-policy.json(5) semantics).
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { parseReference } from "./reference.ts";
import { identityMismatch, parseSignedIdentity, type SignedIdentity } from "./signed_identity.ts";

const D = "sha256:" + "d".repeat(64);

Deno.test("identityMismatch", async (t) => {
  const exactRef: SignedIdentity = { type: "exactReference", dockerReference: "vendor.io/app:1" };
  const exactRepo: SignedIdentity = { type: "exactRepository", dockerRepository: "vendor.io/app" };
  const remap: SignedIdentity = {
    type: "remapIdentity",
    prefix: "mirror.local:5000/vendor",
    signedPrefix: "vendor.io",
  };
  // [identity, image reference, signed identity, accepted?]
  const cases: [SignedIdentity, string, string, boolean][] = [
    [{ type: "matchExact" }, "a.io/x:1", "a.io/x:1", true],
    [{ type: "matchExact" }, "a.io/x:1", "a.io/x:2", false],
    [{ type: "matchExact" }, "a.io/x:1", "a.io/x", false],
    [{ type: "matchExact" }, `a.io/x@${D}`, "a.io/x:1", false],
    [{ type: "matchExact" }, `a.io/x@${D}`, `a.io/x@${D}`, true],
    [{ type: "matchExact" }, "busybox", "docker.io/library/busybox:latest", true],
    [{ type: "matchExact" }, "busybox:latest", "index.docker.io/library/busybox:latest", true],
    [{ type: "matchRepoDigestOrExact" }, "a.io/x:1", "a.io/x:1", true],
    [{ type: "matchRepoDigestOrExact" }, "a.io/x:1", "a.io/x", false],
    [{ type: "matchRepoDigestOrExact" }, `a.io/x@${D}`, "a.io/x", true],
    [{ type: "matchRepoDigestOrExact" }, `a.io/x@${D}`, "a.io/x:any", true],
    [{ type: "matchRepoDigestOrExact" }, `a.io/x:1@${D}`, "a.io/x", true],
    [{ type: "matchRepoDigestOrExact" }, `a.io/x@${D}`, "a.io/y", false],
    [{ type: "matchRepository" }, "a.io/x:1", "a.io/x", true],
    [{ type: "matchRepository" }, "a.io/x:1", "a.io/x:9", true],
    [{ type: "matchRepository" }, "a.io/x:1", "a.io/xy", false],
    [{ type: "matchRepository" }, "a.io/x:1", "a.io:5000/x", false],
    [exactRef, "mirror.local/app:1", "vendor.io/app:1", true],
    [exactRef, "mirror.local/app:1", "vendor.io/app:2", false],
    [exactRepo, "mirror.local/app:1", "vendor.io/app:7", true],
    [exactRepo, "mirror.local/app:1", "vendor.io/other", false],
    [remap, "mirror.local:5000/vendor/app:1", "vendor.io/app:1", true],
    [remap, "mirror.local:5000/vendor/app:1", "vendor.io/app", false],
    [remap, `mirror.local:5000/vendor/app@${D}`, "vendor.io/app", true],
    [remap, "mirror.local:5000/vendor/app:1", "mirror.local:5000/vendor/app:1", false],
    [remap, "mirror.local:5000/vendorx/app:1", "mirror.local:5000/vendorx/app:1", true],
    [
      { type: "remapIdentity", prefix: "mirror.local", signedPrefix: "docker.io/library" },
      "mirror.local/busybox:1",
      "busybox:1",
      true,
    ],
    [
      { type: "remapIdentity", prefix: "mirror.local", signedPrefix: "vendor.io" },
      "mirror.local:5000/a:1",
      "vendor.io/a:1",
      false,
    ],
  ];
  for (const [identity, image, signed, accepted] of cases) {
    await t.step(`${identity.type} ${image} <- ${signed}`, () => {
      assertEquals(identityMismatch(identity, parseReference(image), signed) === undefined, accepted);
    });
  }
  await t.step("messages name both identities", () => {
    assertEquals(
      identityMismatch({ type: "matchRepoDigestOrExact" }, parseReference("127.0.0.1:5000/x:1"), "127.0.0.1:5000/x"),
      'signature identity "127.0.0.1:5000/x" does not match "127.0.0.1:5000/x:1" (signedIdentity matchRepoDigestOrExact)',
    );
    assertEquals(
      identityMismatch({ type: "matchRepository" }, parseReference("a.io/x:1"), "NOT VALID"),
      'signature identity "NOT VALID" is not a valid reference',
    );
  });
});

Deno.test("parseSignedIdentity", async (t) => {
  await t.step("absent means matchRepoDigestOrExact", () => {
    assertEquals(parseSignedIdentity(undefined, "r"), { type: "matchRepoDigestOrExact" });
  });
  const good: unknown[] = [
    { type: "matchExact" },
    { type: "matchRepository" },
    { type: "exactReference", dockerReference: "a.io/x:1" },
    { type: "exactReference", dockerReference: `a.io/x@${D}` },
    { type: "exactRepository", dockerRepository: "a.io/x" },
    { type: "remapIdentity", prefix: "a.io", signedPrefix: "b.io/ns" },
  ];
  for (const v of good) await t.step(JSON.stringify(v), () => assertEquals(parseSignedIdentity(v, "r"), v));
  const bad: [unknown, string][] = [
    ["matchExact", "expected an object"],
    [{ type: "matchEverything" }, 'unknown type "matchEverything"'],
    [{ type: "matchExact", extra: 1 }, 'unknown field "extra"'],
    [{ type: "exactReference", dockerReference: "a.io/x" }, "must be a reference with a tag or digest"],
    [{ type: "exactReference" }, "must be a reference with a tag or digest"],
    [{ type: "exactRepository", dockerRepository: "a.io/x:1" }, "must be a repository without tag or digest"],
    [{ type: "remapIdentity", prefix: "a.io" }, '"signedPrefix" must be a string'],
    [{ type: "remapIdentity", prefix: "a.io/x:1", signedPrefix: "b.io" }, '"prefix" must be host[:port]'],
    [{ type: "remapIdentity", prefix: "https://a.io", signedPrefix: "b.io" }, '"prefix" must be host[:port]'],
  ];
  for (const [v, message] of bad) {
    await t.step(`refuses ${JSON.stringify(v)}`, () => {
      assertThrows(() => parseSignedIdentity(v, "default[0]"), InvalidArgument, message);
    });
  }
});
