// Table tests for pull source selection: longest prefix, wildcards, mirrors by tag or digest, blocked registries.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { PermissionDenied } from "../lib/errors.ts";
import { fullString, parseReference } from "./reference.ts";
import { mergeRegistriesConf, parseRegistriesConf, type RegistriesConf } from "./registries_conf.ts";
import { findRegistry, type PullSource, pullSources } from "./pull_sources.ts";

const D = "sha256:" + "d".repeat(64);
const conf = (text: string): RegistriesConf => mergeRegistriesConf([parseRegistriesConf(text, "test.conf")]);

Deno.test("pullSources", async (t) => {
  const c = conf(`
[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar"
insecure = true
[[registry.mirror]]
location = "m-all.local/foo"
[[registry.mirror]]
location = "m-digest.local/foo"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m-tag.local/foo"
insecure = true
pull-from-mirror = "tag-only"

[[registry]]
prefix = "example.com/foo/special"
location = "special.local/s"

[[registry]]
location = "docker.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "hub-mirror.local:5000"
insecure = true

[[registry]]
prefix = "docker.io/library/busybox"
location = "bb.local/mirror/busybox"

[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
prefix = "*.wild.example.com"
insecure = true
[[registry.mirror]]
location = "wild-mirror.local/w"

[[registry]]
prefix = "exact.wild.example.com"
location = "exact.local"

[[registry]]
prefix = "ns.example.com/a/b:1"
location = "pinned.local/a/b:1"
`);
  const cases: [string, string[]][] = [
    // tag reference: all + tag-only mirrors, then the primary location (prefix rewritten).
    ["example.com/foo/img:1", [
      "mirror m-all.local/foo/img:1",
      "mirror insecure m-tag.local/foo/img:1",
      "insecure internal.example.net/bar/img:1",
    ]],
    // digest reference: all + digest-only mirrors.
    [`example.com/foo/img@${D}`, [
      `mirror m-all.local/foo/img@${D}`,
      `mirror m-digest.local/foo/img@${D}`,
      `insecure internal.example.net/bar/img@${D}`,
    ]],
    // the longer prefix wins and has no mirrors.
    ["example.com/foo/special/x:2", ["special.local/s/x:2"]],
    // "example.com/foo" does not cover "example.com/foobar".
    ["example.com/foobar:1", ["example.com/foobar:1"]],
    // a prefix ending in a repository matches through ":" and "@".
    ["example.com/foo:3", [
      "mirror m-all.local/foo:3",
      "mirror insecure m-tag.local/foo:3",
      "insecure internal.example.net/bar:3",
    ]],
    // mirror-by-digest-only: tag pulls skip the mirror.
    ["docker.io/library/alpine:3", ["docker.io/library/alpine:3"]],
    [`docker.io/library/alpine@${D}`, [
      `mirror insecure hub-mirror.local:5000/library/alpine@${D}`,
      `docker.io/library/alpine@${D}`,
    ]],
    // the docker.io/library/busybox table is longer than docker.io.
    ["busybox", ["bb.local/mirror/busybox:latest"]],
    // a bare host prefix does not cover another port.
    ["docker.io:5000/x:1", ["docker.io:5000/x:1"]],
    // wildcard: no rewrite of the primary, mirrors rewritten by the host.
    ["a.b.wild.example.com/ns/x:1", ["mirror wild-mirror.local/w/ns/x:1", "insecure a.b.wild.example.com/ns/x:1"]],
    ["a.wild.example.com:5000/x:1", ["mirror wild-mirror.local/w/x:1", "insecure a.wild.example.com:5000/x:1"]],
    ["wild.example.com/x:1", ["wild.example.com/x:1"]],
    // a literal prefix as long as the wildcard's match beats it.
    ["exact.wild.example.com/x:1", ["exact.local/x:1"]],
    // a prefix carrying a tag matches only that tag.
    ["ns.example.com/a/b:1", ["pinned.local/a/b:1"]],
    ["ns.example.com/a/b:2", ["ns.example.com/a/b:2"]],
    ["quay.io/other/x:1", ["quay.io/other/x:1"]],
  ];
  const show = (s: PullSource) =>
    [s.mirror ? "mirror" : "", s.insecure ? "insecure" : "", fullString(s.reference)].filter((x) => x).join(" ");
  for (const [input, want] of cases) {
    await t.step(input.slice(0, 48), () => assertEquals(pullSources(parseReference(input), c).map(show), want));
  }
  await t.step("a blocked registry is refused, naming it", () => {
    assertThrows(
      () => pullSources(parseReference("blocked.example.com/x:1"), c),
      PermissionDenied,
      'pulling "blocked.example.com/x:1" is not allowed: registry "blocked.example.com" is blocked',
    );
  });
  await t.step("findRegistry", () => {
    assertEquals(findRegistry(parseReference("example.com/foo/special"), c)?.prefix, "example.com/foo/special");
    assertEquals(findRegistry(parseReference("nowhere.io/x"), c), undefined);
  });
  await t.step("no configuration: the reference itself", () => {
    assertEquals(pullSources(parseReference("busybox"), { registries: [] }).map(show), [
      "docker.io/library/busybox:latest",
    ]);
  });
});
