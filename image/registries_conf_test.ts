// Table tests for registries.conf parsing, drop-in merging and the file loader.
import { assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import {
  loadRegistriesConf,
  mergeRegistriesConf,
  parseRegistriesConf,
  type RegistriesConf,
} from "./registries_conf.ts";

const conf = (text: string): RegistriesConf => mergeRegistriesConf([parseRegistriesConf(text, "test.conf")]);

Deno.test("parseRegistriesConf", async (t) => {
  await t.step("full version 2 file", () => {
    const c = conf(`
unqualified-search-registries = ["registry.example.com", "docker.io"]
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]

[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar"
insecure = true

[[registry.mirror]]
location = "mirror-0.local/foo"

[[registry.mirror]]
location = "mirror-1.local:5000/foo"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
prefix = "*.wild.example.com"
insecure = true

[aliases]
"nginx" = "docker.io/library/nginx"
`);
    assertEquals(c.unqualifiedSearchRegistries, ["registry.example.com", "docker.io"]);
    assertEquals(c.shortNameMode, "enforcing");
    assertEquals(c.aliases, { nginx: "docker.io/library/nginx" });
    assertEquals(c.warnings, []);
    assertEquals(c.registries, [
      {
        prefix: "example.com/foo",
        location: "internal.example.net/bar",
        insecure: true,
        blocked: false,
        mirrorByDigestOnly: false,
        mirrors: [
          { location: "mirror-0.local/foo", insecure: false, pullFromMirror: "all" },
          { location: "mirror-1.local:5000/foo", insecure: true, pullFromMirror: "digest-only" },
        ],
      },
      {
        prefix: "blocked.example.com",
        location: "blocked.example.com",
        insecure: false,
        blocked: true,
        mirrorByDigestOnly: false,
        mirrors: [],
      },
      {
        prefix: "*.wild.example.com",
        location: "",
        insecure: true,
        blocked: false,
        mirrorByDigestOnly: false,
        mirrors: [],
      },
    ]);
  });
  await t.step("empty file", () => {
    assertEquals(conf(""), {
      unqualifiedSearchRegistries: [],
      shortNameMode: "permissive",
      registries: [],
      aliases: {},
      warnings: [],
    });
  });
  await t.step("unknown keys become warnings", () => {
    const c = conf(`
typo = 1
[[registry]]
location = "a.io"
mirror_by_digest_only = true
[[registry.mirror]]
location = "m.io"
pull_from_mirror = "x"
`);
    assertEquals(c.warnings, [
      'test.conf: unknown key "typo" ignored',
      'test.conf: unknown key "registry[0].mirror_by_digest_only" ignored',
      'test.conf: unknown key "registry[0].mirror[0].pull_from_mirror" ignored',
    ]);
  });
  await t.step("version 1 tables are converted", () => {
    const c = conf(`
[registries.search]
registries = ["r1.com", "r2.com"]
[registries.insecure]
registries = ["r3.com", "both.com"]
[registries.block]
registries = ["bad.com", "both.com"]
`);
    assertEquals(c.unqualifiedSearchRegistries, ["r1.com", "r2.com"]);
    assertEquals(
      c.registries.map((r) => [r.prefix, r.insecure, r.blocked]),
      [["r3.com", true, false], ["both.com", true, true], ["bad.com", false, true]],
    );
  });

  const bad: [string, string][] = [
    ["x = ", "test.conf: invalid TOML"],
    ['[registries.search]\nregistries = ["a.io"]\n[[registry]]\nlocation = "b.io"', "mixes the version 1"],
    ['unqualified-search-registries = "docker.io"', "unqualified-search-registries: expected an array of strings"],
    ['unqualified-search-registries = ["https://docker.io"]', "is not a host[:port]"],
    ['short-name-mode = "lax"', 'short-name-mode: expected "enforcing", "permissive" or "disabled", got "lax"'],
    ["[[registry]]\ninsecure = true", "registry[0]: needs a prefix or a location"],
    ['[[registry]]\nlocation = "https://a.io"', 'registry[0].prefix: "https://a.io" must not include a URL scheme'],
    ['[[registry]]\nprefix = "a.io/Foo"', "must be lowercase"],
    ['[[registry]]\nlocation = "a.io"\ninsecure = "yes"', 'registry[0].insecure: expected true or false, got "yes"'],
    ['[[registry]]\nlocation = "a.io"\n[[registry]]\nlocation = "a.io"', '"a.io" is defined more than once'],
    ['[[registry]]\nprefix = "*.a.io"\nlocation = "b.io"', 'must be empty for the wildcard prefix "*.a.io"'],
    ['[[registry]]\nprefix = "*.a.io/ns"', "must be *.host with neither port nor path"],
    ['[[registry]]\nprefix = "*.a.io:5000"', "must be *.host with neither port nor path"],
    ['[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\ninsecure = true', "registry[0].mirror[0].location"],
    [
      '[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "sometimes"',
      'expected "all", "digest-only" or "tag-only", got "sometimes"',
    ],
    [
      '[[registry]]\nlocation = "a.io"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.io"\npull-from-mirror = "tag-only"',
      "cannot be set when the registry sets mirror-by-digest-only",
    ],
    ['[aliases]\n"quay.io/x" = "quay.io/x/y"', "the name must be a short name without tag or digest"],
    ['[aliases]\n"x:1" = "quay.io/x/y"', "the name must be a short name without tag or digest"],
    ['[aliases]\n"localhost" = "quay.io/x/y"', "the name must be a short name"],
    ['[aliases]\n"x" = "x/y"', "must be a fully qualified repository without tag or digest"],
    ['[aliases]\n"x" = "quay.io/x/y:1"', "must be a fully qualified repository without tag or digest"],
    ['[aliases]\n"x" = 1', 'aliases."x": expected a string'],
  ];
  for (const [text, message] of bad) {
    await t.step(`refuses ${JSON.stringify(text.slice(0, 50))}`, () => {
      assertThrows(() => parseRegistriesConf(text, "test.conf"), InvalidArgument, message);
    });
  }
});

Deno.test("mergeRegistriesConf", async (t) => {
  const main = parseRegistriesConf(
    `
unqualified-search-registries = ["a.io"]
[[registry]]
location = "r.io"
insecure = true
[[registry]]
location = "keep.io"
[aliases]
"x" = "a.io/x"
"y" = "a.io/y"
`,
    "main",
  );
  const dropIn = parseRegistriesConf(
    `
unqualified-search-registries = ["b.io", "c.io"]
short-name-mode = "disabled"
[[registry]]
location = "r.io"
blocked = true
[aliases]
"x" = ""
"z" = "b.io/z"
`,
    "10-drop.conf",
  );
  await t.step("later files override by key and prefix", () => {
    const c = mergeRegistriesConf([main, dropIn]);
    assertEquals(c.unqualifiedSearchRegistries, ["b.io", "c.io"]);
    assertEquals(c.shortNameMode, "disabled");
    assertEquals(c.aliases, { y: "a.io/y", z: "b.io/z" });
    assertEquals(c.registries.map((r) => [r.prefix, r.insecure, r.blocked]), [["r.io", false, true], [
      "keep.io",
      false,
      false,
    ]]);
  });
  await t.step("a drop-in that sets nothing changes nothing", () => {
    const c = mergeRegistriesConf([main, parseRegistriesConf("", "20-empty.conf")]);
    assertEquals(c.unqualifiedSearchRegistries, ["a.io"]);
    assertEquals(c.shortNameMode, "permissive");
  });
  await t.step("an empty search list in a drop-in clears it", () => {
    const c = mergeRegistriesConf([main, parseRegistriesConf("unqualified-search-registries = []", "30.conf")]);
    assertEquals(c.unqualifiedSearchRegistries, []);
  });
  await t.step("drop-ins must be version 2", () => {
    const v1 = parseRegistriesConf('[registries.search]\nregistries = ["a.io"]', "40-old.conf");
    assertThrows(() => mergeRegistriesConf([main, v1]), InvalidArgument, "40-old.conf: drop-in files must use");
    assertEquals(mergeRegistriesConf([v1]).unqualifiedSearchRegistries, ["a.io"]);
  });
});

Deno.test("loadRegistriesConf", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-regconf-" });
  try {
    await Deno.writeTextFile(`${dir}/registries.conf`, 'unqualified-search-registries = ["main.io"]\n');
    await Deno.mkdir(`${dir}/d`);
    await Deno.writeTextFile(`${dir}/d/20-b.conf`, 'unqualified-search-registries = ["b.io"]\n');
    await Deno.writeTextFile(
      `${dir}/d/10-a.conf`,
      'unqualified-search-registries = ["a.io"]\nshort-name-mode = "enforcing"\n',
    );
    await Deno.writeTextFile(`${dir}/d/30-c.conf.bak`, "this is not toml =");
    await Deno.mkdir(`${dir}/d/sub.conf`);
    await t.step("main file then drop-ins in lexical order, other files ignored", async () => {
      const c = await loadRegistriesConf({ path: `${dir}/registries.conf`, dropInDir: `${dir}/d` });
      assertEquals(c.unqualifiedSearchRegistries, ["b.io"]);
      assertEquals(c.shortNameMode, "enforcing");
    });
    await t.step("missing files mean an empty configuration", async () => {
      const c = await loadRegistriesConf({ path: `${dir}/none.conf`, dropInDir: `${dir}/none.d` });
      assertEquals(c.unqualifiedSearchRegistries, []);
    });
    await t.step("errors name the file", async () => {
      await Deno.writeTextFile(`${dir}/d/40-bad.conf`, "short-name-mode = 3\n");
      await assertRejects(
        () => loadRegistriesConf({ path: `${dir}/registries.conf`, dropInDir: `${dir}/d` }),
        InvalidArgument,
        `${dir}/d/40-bad.conf: short-name-mode: expected a string`,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
