// Table tests for image reference parsing, normalisation, printing, short-name resolution and image IDs.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import {
  familiarString,
  fullString,
  type ImageReference,
  isShortName,
  parseImageIdOrReference,
  parseReference,
  resolveShortName,
} from "./reference.ts";

const D = "sha256:" + "a".repeat(64);
const HEX = "0123456789abcdef".repeat(4);

Deno.test("parseReference normalises", async (t) => {
  const cases: [string, ImageReference, string][] = [
    ["busybox", { registry: "docker.io", repository: "library/busybox", tag: "latest" }, "busybox:latest"],
    ["busybox:1.36", { registry: "docker.io", repository: "library/busybox", tag: "1.36" }, "busybox:1.36"],
    ["library/busybox", { registry: "docker.io", repository: "library/busybox", tag: "latest" }, "busybox:latest"],
    ["docker.io/busybox", { registry: "docker.io", repository: "library/busybox", tag: "latest" }, "busybox:latest"],
    [
      "index.docker.io/busybox",
      { registry: "docker.io", repository: "library/busybox", tag: "latest" },
      "busybox:latest",
    ],
    ["user/app", { registry: "docker.io", repository: "user/app", tag: "latest" }, "user/app:latest"],
    [
      "docker.io/library/a/b",
      { registry: "docker.io", repository: "library/a/b", tag: "latest" },
      "library/a/b:latest",
    ],
    [`busybox@${D}`, { registry: "docker.io", repository: "library/busybox", digest: D }, `busybox@${D}`],
    [`busybox:1@${D}`, { registry: "docker.io", repository: "library/busybox", tag: "1", digest: D }, `busybox:1@${D}`],
    ["quay.io/a/b:v1", { registry: "quay.io", repository: "a/b", tag: "v1" }, "quay.io/a/b:v1"],
    ["localhost/x", { registry: "localhost", repository: "x", tag: "latest" }, "localhost/x:latest"],
    ["localhost:5000/x", { registry: "localhost:5000", repository: "x", tag: "latest" }, "localhost:5000/x:latest"],
    ["127.0.0.1:5000/x:1", { registry: "127.0.0.1:5000", repository: "x", tag: "1" }, "127.0.0.1:5000/x:1"],
    ["[::1]:5000/x", { registry: "[::1]:5000", repository: "x", tag: "latest" }, "[::1]:5000/x:latest"],
    ["Registry/x", { registry: "Registry", repository: "x", tag: "latest" }, "Registry/x:latest"],
    ["localhost:5000", { registry: "docker.io", repository: "library/localhost", tag: "5000" }, "localhost:5000"],
    [
      "ab/c__d/e--f/g.h_i",
      { registry: "docker.io", repository: "ab/c__d/e--f/g.h_i", tag: "latest" },
      "ab/c__d/e--f/g.h_i:latest",
    ],
    [
      "r.io/x:" + "t".repeat(128),
      { registry: "r.io", repository: "x", tag: "t".repeat(128) },
      "r.io/x:" + "t".repeat(128),
    ],
  ];
  for (const [input, want, familiar] of cases) {
    await t.step(input.slice(0, 40), () => {
      const ref = parseReference(input);
      assertEquals(ref, want);
      assertEquals(familiarString(ref), familiar);
      assertEquals(parseReference(fullString(ref)), ref);
    });
  }
  await t.step("defaultTag: false keeps a bare repository", () => {
    assertEquals(parseReference("quay.io/a/b", { defaultTag: false }), { registry: "quay.io", repository: "a/b" });
  });
  await t.step("fullString", () => {
    assertEquals(fullString(parseReference("busybox")), "docker.io/library/busybox:latest");
  });
});

Deno.test("parseReference refuses", async (t) => {
  const cases: [string, string][] = [
    ["Foo:bar", 'invalid image reference "Foo:bar": repository name must be lowercase'],
    ["quay.io/Foo/bar", "repository name must be lowercase"],
    ["", "empty reference"],
    ["busy box", "contains white space"],
    ["quay.io/", "empty repository name"],
    ["a//b", 'invalid repository path component ""'],
    ["-a/b", 'invalid repository path component "-a"'],
    ["a/b_", 'invalid repository path component "b_"'],
    ["a/b___c", 'invalid repository path component "b___c"'],
    ["busybox:", 'invalid tag ""'],
    ["busybox:-x", 'invalid tag "-x"'],
    ["busybox:" + "t".repeat(129), "invalid tag"],
    ["busybox@sha256:abc", 'invalid digest "sha256:abc"'],
    ["busybox@md5:" + "a".repeat(32), "unsupported digest algorithm"],
    [`busybox@${D}@${D}`, "invalid digest"],
    ["bad_host.com/x", 'invalid registry host "bad_host.com"'],
    ["-bad.com/x", "invalid registry host"],
    ["a.b__c/x", 'invalid registry host "a.b__c"'],
    ["host:port/x", "invalid registry host"],
    [HEX, "is an image ID"],
    ["r.io/" + "a".repeat(251), "must not be longer than 255 characters"],
  ];
  for (const [input, message] of cases) {
    await t.step(JSON.stringify(input.slice(0, 30)), () => {
      assertThrows(() => parseReference(input), InvalidArgument, message);
    });
  }
  await t.step("255 characters is still fine", () => {
    assertEquals(parseReference("r.io/" + "a".repeat(250)).repository.length, 250);
  });
});

Deno.test("isShortName", async (t) => {
  const cases: [string, boolean][] = [
    ["busybox", true],
    ["busybox:1", true],
    [`busybox@${D}`, true],
    ["library/busybox", true],
    ["localhost:5000", true],
    ["docker.io/busybox", false],
    ["localhost/x", false],
    ["host:5000/x", false],
    ["Registry/x", false],
  ];
  for (const [input, want] of cases) {
    await t.step(input.slice(0, 30), () => assertEquals(isShortName(input), want));
  }
});

Deno.test("resolveShortName", async (t) => {
  const conf = {
    unqualifiedSearchRegistries: ["registry.example.com", "docker.io"],
    aliases: { "nginx": "quay.io/nginx/nginx", "erased": "" },
  };
  const cases: [string, string[]][] = [
    ["busybox", ["registry.example.com/busybox:latest", "docker.io/library/busybox:latest"]],
    ["ns/app:2", ["registry.example.com/ns/app:2", "docker.io/ns/app:2"]],
    [`busybox@${D}`, [`registry.example.com/busybox@${D}`, `docker.io/library/busybox@${D}`]],
    ["nginx", ["quay.io/nginx/nginx:latest"]],
    ["nginx:1.27", ["quay.io/nginx/nginx:1.27"]],
    [`nginx:1@${D}`, [`quay.io/nginx/nginx:1@${D}`]],
    ["erased", ["registry.example.com/erased:latest", "docker.io/library/erased:latest"]],
    ["quay.io/x/y", ["quay.io/x/y:latest"]],
    ["localhost/x", ["localhost/x:latest"]],
  ];
  for (const [input, want] of cases) {
    await t.step(input.slice(0, 30), () => assertEquals(resolveShortName(input, conf).map(fullString), want));
  }
  await t.step("a short name with nowhere to go", () => {
    assertThrows(
      () => resolveShortName("busybox", { unqualifiedSearchRegistries: [], aliases: {} }),
      InvalidArgument,
      'short name "busybox" did not resolve to an alias and no unqualified-search-registries are defined',
    );
  });
  await t.step("a fully qualified name needs no search registries", () => {
    assertEquals(resolveShortName("quay.io/x/y:1", { unqualifiedSearchRegistries: [], aliases: {} }).length, 1);
  });
  await t.step("malformed input is refused", () => {
    assertThrows(() => resolveShortName("Busybox", conf), InvalidArgument, "must be lowercase");
  });
});

Deno.test("parseImageIdOrReference", async (t) => {
  await t.step(
    "bare 64 hex is an ID",
    () => assertEquals(parseImageIdOrReference(HEX), { kind: "id", id: `sha256:${HEX}` }),
  );
  await t.step("sha256:<hex> is an ID", () => {
    assertEquals(parseImageIdOrReference(`sha256:${HEX}`), { kind: "id", id: `sha256:${HEX}` });
  });
  await t.step("a short name", () => {
    assertEquals(parseImageIdOrReference("busybox"), {
      kind: "reference",
      reference: { registry: "docker.io", repository: "library/busybox", tag: "latest" },
      shortName: true,
    });
  });
  await t.step("a qualified name", () => {
    const r = parseImageIdOrReference("quay.io/a/b@" + D);
    assertEquals(r.kind === "reference" && r.shortName, false);
  });
  await t.step("63 hex is a (short) name", () => {
    assertEquals(parseImageIdOrReference(HEX.slice(1)).kind, "reference");
  });
  await t.step("malformed", () => void assertThrows(() => parseImageIdOrReference("UPPER"), InvalidArgument));
});
