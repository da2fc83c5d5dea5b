// Tests for layer extraction as root: every entry type and its metadata, tar replace semantics, whiteouts, and
// hostile layers that try to reach outside the layer directory (a sentinel directory proves nothing changed).
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { buildTar, bytesStream, tarStream, type TarWriterEntry } from "../tests/tar_writer.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { lgetxattr, llistxattr } from "../lib/libc.ts";
import { extractLayer } from "./extract.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A temporary directory removed at the end of the scope. */
function tempDir(): { path: string } & AsyncDisposable {
  const path = Deno.makeTempDirSync({ prefix: "davit-extract-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

function xattr(path: string, name: string): string | undefined {
  const v = lgetxattr(path, name);
  return v === undefined ? undefined : dec.decode(v);
}

/** Everything observable about a tree, for before/after comparisons. */
async function snapshot(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    for (const name of names.sort()) {
      const p = `${dir}/${name}`;
      const st = await Deno.lstat(p);
      const body = st.isFile ? await Deno.readTextFile(p) : st.isSymlink ? await Deno.readLink(p) : "";
      out.push(`${rel}${name} mode=${st.mode?.toString(8)} nlink=${st.nlink} uid=${st.uid} ${body} ${llistxattr(p)}`);
      if (st.isDirectory) await walk(p, `${rel}${name}/`);
    }
  };
  const st = await Deno.lstat(root);
  out.push(`. mode=${st.mode?.toString(8)} mtime=${st.mtime?.getTime()} ${llistxattr(root)}`);
  await walk(root, "");
  return out;
}

const MTIME = { sec: 1_600_000_000, nsec: 123_456_789 };
const big = "0123456789abcdef".repeat(70_000 / 16 + 1).slice(0, 70_000);

const LAYER: TarWriterEntry[] = [
  { name: "./", type: "directory", mode: 0o755, mtime: 1_000 },
  { name: "tmp/", type: "directory", mode: 0o1777, mtime: 2_000 },
  { name: "srv/", type: "directory", mode: 0o2750, uid: 33, gid: 34, mtime: 3_000, xattrs: { "user.dir": "d" } },
  { name: "srv/file", data: "hello", mode: 0o640, uid: 1000, gid: 1001, mtime: MTIME },
  { name: "srv/big", data: big },
  { name: "usr/bin/su", data: "#!", mode: 0o4755, uid: 0, gid: 0 },
  { name: "usr/bin/wall", data: "#!", mode: 0o2755, uid: 0, gid: 5 },
  { name: "srv/x", data: "", xattrs: { "user.a": "1", "trusted.b": "2", "trusted.overlay.redirect": "/etc" } },
  { name: "srv/link", type: "symlink", linkname: "/etc/passwd", uid: 7, gid: 8, mtime: 5_000 },
  { name: "srv/hard", type: "hardlink", linkname: "srv/file" },
  { name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
  { name: "dev/sda", type: "block", devmajor: 8, devminor: 1, mode: 0o660, gid: 6 },
  { name: "run/fifo", type: "fifo", mode: 0o620 },
  { name: "d/" + "n".repeat(200), data: "long", uid: 3_000_000 },
  { name: "gone/.wh.file", data: "" },
  { name: "opq/.wh..wh..opq", data: "" },
  { name: "opq/kept", data: "k" },
  { name: ".wh..wh.plnk/ignored", data: "" },
];

Deno.test("extractLayer writes every entry type with its metadata", async (t) => {
  for (const chunk of [513, 65536]) {
    await t.step(`chunk ${chunk}`, async () => {
      await using dir = tempDir();
      const d = dir.path;
      const res = await extractLayer(tarStream(LAYER, chunk), d);
      assertEquals(res.size, buildTar(LAYER).length);
      assertEquals(res.files, LAYER.length - 3); // the root, the opaque marker and the AUFS entry are not files

      const root = await Deno.lstat(d);
      assertEquals([root.mode! & 0o7777, root.mtime!.getTime()], [0o755, 1_000_000]);
      const tmp = await Deno.lstat(`${d}/tmp`);
      assertEquals([tmp.isDirectory, tmp.mode! & 0o7777, tmp.mtime!.getTime()], [true, 0o1777, 2_000_000]);
      const srv = await Deno.lstat(`${d}/srv`);
      // The directory's mtime survives the children written after it.
      assertEquals([srv.mode! & 0o7777, srv.uid, srv.gid, srv.mtime!.getTime()], [0o2750, 33, 34, 3_000_000]);
      assertEquals(xattr(`${d}/srv`, "user.dir"), "d");

      const file = await Deno.lstat(`${d}/srv/file`);
      assertEquals([file.mode! & 0o7777, file.uid, file.gid, file.nlink], [0o640, 1000, 1001, 2]);
      assertEquals(file.mtime!.getTime(), 1_600_000_000_123);
      assertEquals(await Deno.readTextFile(`${d}/srv/file`), "hello");
      assertEquals(await Deno.readTextFile(`${d}/srv/big`), big);
      assertEquals((await Deno.lstat(`${d}/srv/hard`)).ino, file.ino);

      // chmod after chown: the setuid and setgid bits survive.
      assertEquals((await Deno.lstat(`${d}/usr/bin/su`)).mode! & 0o7777, 0o4755);
      const wall = await Deno.lstat(`${d}/usr/bin/wall`);
      assertEquals([wall.mode! & 0o7777, wall.gid], [0o2755, 5]);
      // Parents the archive did not list are created.
      assert((await Deno.lstat(`${d}/usr/bin`)).isDirectory);

      assertEquals([xattr(`${d}/srv/x`, "user.a"), xattr(`${d}/srv/x`, "trusted.b")], ["1", "2"]);
      assertEquals(xattr(`${d}/srv/x`, "trusted.overlay.redirect"), undefined, "a layer may not forge overlay xattrs");

      const link = await Deno.lstat(`${d}/srv/link`);
      assertEquals([link.isSymlink, link.uid, link.gid, link.mtime!.getTime()], [true, 7, 8, 5_000_000]);
      assertEquals(await Deno.readLink(`${d}/srv/link`), "/etc/passwd");

      const nul = await Deno.lstat(`${d}/dev/null`);
      assertEquals([nul.isCharDevice, nul.rdev, nul.mode! & 0o7777], [true, 0x103, 0o666]);
      const sda = await Deno.lstat(`${d}/dev/sda`);
      assertEquals([sda.isBlockDevice, sda.rdev, sda.mode! & 0o7777, sda.gid], [true, 0x801, 0o660, 6]);
      const fifo = await Deno.lstat(`${d}/run/fifo`);
      assertEquals([fifo.isFifo, fifo.mode! & 0o7777], [true, 0o620]);

      assertEquals((await Deno.lstat(`${d}/d/${"n".repeat(200)}`)).uid, 3_000_000);

      const wh = await Deno.lstat(`${d}/gone/file`);
      assertEquals([wh.isCharDevice, wh.rdev], [true, 0]);
      assertEquals(xattr(`${d}/opq`, "trusted.overlay.opaque"), "y");
      assertEquals(await Deno.readTextFile(`${d}/opq/kept`), "k");
      await assertRejects(() => Deno.lstat(`${d}/.wh..wh.plnk`), Deno.errors.NotFound);
    });
  }
});

Deno.test("extractLayer follows tar's replace semantics", async (t) => {
  const cases: [string, TarWriterEntry[], (d: string) => Promise<void>][] = [
    ["same file twice: the last wins", [{ name: "f", data: "one" }, { name: "f", data: "two" }], async (d) => {
      assertEquals(await Deno.readTextFile(`${d}/f`), "two");
    }],
    ["file replaced by a directory", [{ name: "f", data: "x" }, { name: "f/", type: "directory" }], async (d) => {
      assert((await Deno.lstat(`${d}/f`)).isDirectory);
    }],
    ["directory with contents replaced by a file", [
      { name: "d/a/b", data: "x" },
      { name: "d/l", type: "symlink", linkname: "/" },
      { name: "d", data: "file now" },
    ], async (d) => {
      assertEquals(await Deno.readTextFile(`${d}/d`), "file now");
    }],
    ["directory over directory keeps contents, takes new metadata", [
      { name: "d/", type: "directory", mode: 0o700 },
      { name: "d/a", data: "x" },
      { name: "d/", type: "directory", mode: 0o711 },
    ], async (d) => {
      assertEquals((await Deno.lstat(`${d}/d`)).mode! & 0o7777, 0o711);
      assertEquals(await Deno.readTextFile(`${d}/d/a`), "x");
    }],
    ["hardlink replacing a file leaves other links alone", [
      { name: "a", data: "A" },
      { name: "b", data: "B" },
      { name: "c", type: "hardlink", linkname: "b" },
      { name: "b", type: "hardlink", linkname: "a" },
    ], async (d) => {
      assertEquals([await Deno.readTextFile(`${d}/b`), await Deno.readTextFile(`${d}/c`)], ["A", "B"]);
    }],
    [
      "a hardlink to itself is a no-op",
      [{ name: "a", data: "A" }, { name: "a", type: "hardlink", linkname: "a" }],
      async (d) => {
        assertEquals(await Deno.readTextFile(`${d}/a`), "A");
      },
    ],
    ["whiteout replaces an earlier entry", [{ name: "x", data: "1" }, { name: ".wh.x", data: "" }], async (d) => {
      assertEquals((await Deno.lstat(`${d}/x`)).rdev, 0);
      assert((await Deno.lstat(`${d}/x`)).isCharDevice);
    }],
    ["files in a directory that was replaced land in the new one", [
      { name: "a/b/c", data: "1" },
      { name: "a/b", data: "file" },
      { name: "a/b/", type: "directory" },
      { name: "a/b/d", data: "2" },
    ], async (d) => {
      assertEquals((await Array.fromAsync(Deno.readDir(`${d}/a/b`))).map((e) => e.name), ["d"]);
    }],
  ];
  for (const [name, entries, check] of cases) {
    await t.step(name, async () => {
      await using dir = tempDir();
      await extractLayer(tarStream(entries), dir.path);
      await check(dir.path);
    });
  }
});

Deno.test("extractLayer refuses hostile layers and writes nothing outside", async (t) => {
  await using base = tempDir();
  const outside = `${base.path}/outside`;
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/secret`, "s");
  const before = await snapshot(outside);
  const passwd = await Deno.lstat("/etc/passwd");
  const canary = `davit-extract-test-${crypto.randomUUID()}`;

  const cases: [string, TarWriterEntry[], string, ((layer: string) => Promise<void>)?][] = [
    ["dot-dot", [{ name: "../x", data: "x" }], "../x"],
    ["dot-dot deep", [{ name: "../../etc/x", data: "x" }], "../../etc/x"],
    ["dot-dot after a directory", [{ name: "a/", type: "directory" }, { name: "a/../../x", data: "x" }], "a/../../x"],
    ["symlink to an absolute directory, then a file through it", [
      { name: "evil", type: "symlink", linkname: outside },
      { name: "evil/planted", data: "x" },
    ], "evil/planted"],
    ["symlink to /etc, then a file through it", [
      { name: "evil", type: "symlink", linkname: "/etc" },
      { name: `evil/${canary}`, data: "x" },
    ], `evil/${canary}`],
    ["symlink to .., then a directory through it", [
      { name: "up", type: "symlink", linkname: ".." },
      { name: "up/outside/new/", type: "directory" },
    ], "up/outside/new/"],
    ["chain of relative symlinks climbing out", [
      { name: "a/b/", type: "directory" },
      { name: "a/b/c", type: "symlink", linkname: "../.." },
      { name: "a/b/d", type: "symlink", linkname: "c/../outside" },
      { name: "a/b/d/x", data: "x" },
    ], "a/b/d/x"],
    ["symlink to / nested in a directory", [
      { name: "d/l", type: "symlink", linkname: "/" },
      { name: `d/l/etc/${canary}`, data: "x" },
    ], `d/l/etc/${canary}`],
    ["hardlink to /etc/passwd", [{ name: "pw", type: "hardlink", linkname: "/etc/passwd" }], "pw"],
    ["hardlink to ../outside/secret", [{ name: "h", type: "hardlink", linkname: "../outside/secret" }], "h"],
    ["hardlink through a symlink", [
      { name: "evil", type: "symlink", linkname: outside },
      { name: "h", type: "hardlink", linkname: "evil/secret" },
    ], "h"],
    ["whiteout through a symlink", [
      { name: "evil", type: "symlink", linkname: outside },
      { name: "evil/.wh.secret", data: "" },
    ], "evil/.wh.secret"],
    ["opaque marker through a symlink", [
      { name: "evil", type: "symlink", linkname: outside },
      { name: "evil/.wh..wh..opq", data: "" },
    ], "evil/.wh..wh..opq"],
    ["whiteout naming the parent", [{ name: "a/.wh...", data: "" }], "a/.wh..."],
    ["device through a symlink", [
      { name: "evil", type: "symlink", linkname: outside },
      { name: "evil/null", type: "char", devmajor: 1, devminor: 3 },
    ], "evil/null"],
    ["symlink through a symlink", [
      { name: "evil", type: "symlink", linkname: outside },
      { name: "evil/l", type: "symlink", linkname: "/" },
    ], "evil/l"],
  ];
  for (const [name, entries, entry] of cases) {
    await t.step(name, async () => {
      const layer = await Deno.makeTempDir({ dir: base.path });
      try {
        const err = await assertRejects(() => extractLayer(tarStream(entries), layer), InvalidArgument);
        assertStringIncludes(err.message, `layer entry ${JSON.stringify(entry)}`);
        assertEquals(await snapshot(outside), before);
        await assertRejects(() => Deno.lstat(`/etc/${canary}`), Deno.errors.NotFound);
        const pw = await Deno.lstat("/etc/passwd");
        assertEquals([pw.nlink, pw.mtime?.getTime()], [passwd.nlink, passwd.mtime?.getTime()]);
      } finally {
        await Deno.remove(layer, { recursive: true });
      }
    });
  }

  await t.step("a symlink already in the layer directory is not followed", async () => {
    const layer = await Deno.makeTempDir({ dir: base.path });
    try {
      await Deno.symlink(outside, `${layer}/usr`);
      const err = await assertRejects(
        () => extractLayer(tarStream([{ name: "usr/bin/sh", data: "x" }]), layer),
        InvalidArgument,
      );
      assertStringIncludes(err.message, 'layer entry "usr/bin/sh": path escapes the layer root');
      assertEquals(await snapshot(outside), before);
    } finally {
      await Deno.remove(layer, { recursive: true });
    }
  });

  const allowed: [string, TarWriterEntry[], (layer: string) => Promise<void>][] = [
    ["a directory entry replaces a planted symlink instead of following it", [
      { name: "evil", type: "symlink", linkname: outside },
      { name: "evil/", type: "directory", mode: 0o777 },
      { name: "evil/inside", data: "x" },
    ], async (layer) => assert((await Deno.lstat(`${layer}/evil`)).isDirectory)],
    ["a file entry replaces a planted symlink instead of writing through it", [
      { name: "evil", type: "symlink", linkname: `${outside}/secret` },
      { name: "evil", data: "mine" },
    ], async (layer) => assertEquals(await Deno.readTextFile(`${layer}/evil`), "mine")],
    ["a hardlink to a symlink links the symlink itself", [
      { name: "s", type: "symlink", linkname: `${outside}/secret` },
      { name: "h", type: "hardlink", linkname: "s" },
    ], async (layer) => assert((await Deno.lstat(`${layer}/h`)).isSymlink)],
    ["a symlink inside the layer may be used as a parent", [
      { name: "usr/lib/", type: "directory" },
      { name: "lib", type: "symlink", linkname: "usr/lib" },
      { name: "lib/libc.so", data: "elf" },
    ], async (layer) => assertEquals(await Deno.readTextFile(`${layer}/usr/lib/libc.so`), "elf")],
  ];
  for (const [name, entries, check] of allowed) {
    await t.step(name, async () => {
      const layer = await Deno.makeTempDir({ dir: base.path });
      try {
        await extractLayer(tarStream(entries), layer);
        await check(layer);
        assertEquals(await snapshot(outside), before);
      } finally {
        await Deno.remove(layer, { recursive: true });
      }
    });
  }
});

Deno.test("extractLayer stream handling", async (t) => {
  await t.step("digest of the uncompressed stream", async () => {
    await using dir = tempDir();
    const bytes = buildTar(LAYER);
    const res = await extractLayer(bytesStream(bytes, 1000), dir.path, { digest: true });
    const want = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    assertEquals(res.diffId, `sha256:${want}`);
  });
  await t.step("a truncated stream is refused", async () => {
    await using dir = tempDir();
    const bytes = buildTar([{ name: "f", data: "x".repeat(5000) }]).subarray(0, 3000);
    await assertRejects(() => extractLayer(bytesStream(bytes), dir.path), InvalidArgument, "unexpected end");
  });
  await t.step("an error cancels the source", async () => {
    await using dir = tempDir();
    let cancelled: unknown;
    const bytes = buildTar([{ name: "../x", data: "x" }, { name: "y", data: "y" }]);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.subarray(0, 1024));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    await assertRejects(() => extractLayer(stream, dir.path), InvalidArgument);
    assert(cancelled instanceof InvalidArgument);
  });
  await t.step("abort signal", async () => {
    await using dir = tempDir();
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await assertRejects(() => extractLayer(tarStream(LAYER), dir.path, { signal: ac.signal }), Error, "stop");
  });
  await t.step("missing destination", async () => {
    await assertRejects(() => extractLayer(tarStream([]), "/nonexistent/davit"), Error, "not an accessible directory");
  });
  await t.step("empty archive", async () => {
    await using dir = tempDir();
    assertEquals(await extractLayer(bytesStream(new Uint8Array(1024)), dir.path), { size: 1024, files: 0 });
  });
  await t.step("non-UTF-8-safe name bytes and unicode names", async () => {
    await using dir = tempDir();
    await extractLayer(tarStream([{ name: "ünï/cødé ☃", data: enc.encode("u") }]), dir.path);
    assertEquals(await Deno.readTextFile(`${dir.path}/ünï/cødé ☃`), "u");
  });
});
