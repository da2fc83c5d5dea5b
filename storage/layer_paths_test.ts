// Table tests for layer member name normalisation and whiteout classification.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { classifyEntry, type EntryTarget, normaliseEntryPath, splitPath } from "./layer_paths.ts";

Deno.test("normaliseEntryPath", async (t) => {
  const ok: [string, string][] = [
    ["a/b/c", "a/b/c"],
    ["./a/b/", "a/b"],
    ["a/../b", "b"],
    ["a/b/../../c", "c"],
    [".", ""],
    ["./", ""],
    ["/", ""],
    ["a/..", ""],
    ["..a/b..", "..a/b.."],
    ["...", "..."],
  ];
  for (const [name, want] of ok) {
    await t.step(`${JSON.stringify(name)} -> ${JSON.stringify(want)}`, () => {
      assertEquals(normaliseEntryPath(name), want);
    });
  }
  const bad = ["/abs/x", "//abs//x/./", "..", "../x", "../../etc/x", "a/../../x", "./../x", "a/b/../../../x", "a\0b"];
  for (const name of bad) {
    await t.step(`refuses ${JSON.stringify(name)}`, () => {
      const err = assertThrows(() => normaliseEntryPath(name), InvalidArgument);
      assertEquals(err.message.startsWith(`layer entry ${JSON.stringify(name)}: `), true);
    });
  }
  await t.step("message names the entry and the reason", () => {
    assertThrows(
      () => normaliseEntryPath("../../etc/x"),
      InvalidArgument,
      'layer entry "../../etc/x": path escapes the layer root',
    );
  });
});

Deno.test("splitPath", async (t) => {
  const cases: [string, { dir: string; base: string }][] = [
    ["a", { dir: "", base: "a" }],
    ["a/b", { dir: "a", base: "b" }],
    ["a/b/c", { dir: "a/b", base: "c" }],
  ];
  for (const [path, want] of cases) {
    await t.step(path, () => assertEquals(splitPath(path), { path, ...want }));
  }
});

Deno.test("classifyEntry", async (t) => {
  const cases: [string, EntryTarget][] = [
    ["./", { kind: "root" }],
    ["etc/passwd", { kind: "path", path: "etc/passwd", dir: "etc", base: "passwd" }],
    ["top", { kind: "path", path: "top", dir: "", base: "top" }],
    ["etc/.wh.passwd", { kind: "whiteout", path: "etc/passwd", dir: "etc", base: "passwd" }],
    [".wh.top", { kind: "whiteout", path: "top", dir: "", base: "top" }],
    ["./a/b/.wh..hidden", { kind: "whiteout", path: "a/b/.hidden", dir: "a/b", base: ".hidden" }],
    ["etc/.wh..wh..opq", { kind: "opaque", dir: "etc" }],
    [".wh..wh..opq", { kind: "opaque", dir: "" }],
    ["a/.wh..wh.plnk", { kind: "ignore", path: "a/.wh..wh.plnk" }],
    [".wh..wh.aufs", { kind: "ignore", path: ".wh..wh.aufs" }],
    [".wh..wh.plnk/123.456", { kind: "ignore", path: ".wh..wh.plnk/123.456" }],
    ["a/.wh.x/y", { kind: "path", path: "a/.wh.x/y", dir: "a/.wh.x", base: "y" }],
    ["a/x.wh.y", { kind: "path", path: "a/x.wh.y", dir: "a", base: "x.wh.y" }],
  ];
  for (const [name, want] of cases) await t.step(name, () => assertEquals(classifyEntry(name), want));
  for (const name of ["a/.wh.", "a/.wh..", "a/.wh...", "../.wh.x", "../.wh..wh..opq"]) {
    await t.step(
      `refuses ${JSON.stringify(name)}`,
      () => void assertThrows(() => classifyEntry(name), InvalidArgument),
    );
  }
});
