// Tests for the streaming tar reader: field parsers (table tests) and whole archives cut at every chunk size.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { buildTar, entryBlocks, paxRecords, type TarWriterEntry } from "../tests/tar_writer.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { parseNumeric, parsePaxRecords, parsePaxTime, type TarHeader, TarParser } from "./tar_reader.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("parseNumeric", async (t) => {
  const cases: [string, number[], number][] = [
    ["octal with NUL", [...enc.encode("0000644"), 0], 0o644],
    ["octal with space", [...enc.encode("   755 "), 0], 0o755],
    ["empty", [0, 0, 0, 0, 0, 0, 0, 0], 0],
    ["base-256 positive", [0x80, 0, 0, 0, 0, 0, 0x01, 0x00], 256],
    ["base-256 negative", [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], -1],
    ["base-256 large uid", [0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff], 0x7fffffff],
  ];
  for (const [name, bytes, want] of cases) {
    await t.step(name, () => assertEquals(parseNumeric(new Uint8Array(bytes), 0, bytes.length), want));
  }
  await t.step("invalid digit", () => {
    assertThrows(() => parseNumeric(enc.encode("000089x0"), 0, 8), InvalidArgument, "octal");
  });
});

Deno.test("parsePaxRecords", async (t) => {
  await t.step("round trip with binary value", () => {
    const bin = new Uint8Array([0, 1, 2, 0x0a, 0xff]);
    const got = parsePaxRecords(paxRecords([["path", "a/b"], ["SCHILY.xattr.security.capability", bin]]));
    assertEquals(dec.decode(got.get("path")), "a/b");
    assertEquals(got.get("SCHILY.xattr.security.capability"), bin);
  });
  await t.step("value containing '='", () => {
    assertEquals(dec.decode(parsePaxRecords(enc.encode("12 a=b=c=de\n")).get("a")), "b=c=de");
  });
  const bad: [string, string][] = [
    ["length too long", "99 path=x\n"],
    ["missing newline", "10 path=xy"],
    ["no key", "7 =abc\n"],
    ["non-digit length", "1x path=a\n"],
  ];
  for (const [name, text] of bad) {
    await t.step(name, () => void assertThrows(() => parsePaxRecords(enc.encode(text)), InvalidArgument));
  }
});

Deno.test("parsePaxTime", async (t) => {
  const cases: [string, { sec: number; nsec: number }][] = [
    ["1700000000", { sec: 1700000000, nsec: 0 }],
    ["1700000000.5", { sec: 1700000000, nsec: 500000000 }],
    ["1.123456789123", { sec: 1, nsec: 123456789 }],
    ["-1.25", { sec: -2, nsec: 750000000 }],
    ["-3", { sec: -3, nsec: 0 }],
  ];
  for (const [text, want] of cases) await t.step(text, () => assertEquals(parsePaxTime(text), want));
  await t.step("garbage", () => void assertThrows(() => parsePaxTime("12a"), InvalidArgument));
});

interface Seen {
  header: TarHeader;
  body: string;
}

function readAll(bytes: Uint8Array, chunk: number): Seen[] {
  const seen: Seen[] = [];
  const parser = new TarParser({
    entry(header) {
      const item = { header, body: "" };
      seen.push(item);
      const parts: Uint8Array[] = [];
      return {
        write: (c) => parts.push(c.slice()),
        close: () => item.body = dec.decode(concat(parts)),
      };
    },
  });
  for (let off = 0; off < bytes.length; off += chunk) parser.push(bytes.subarray(off, off + chunk));
  parser.finish();
  return seen;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const longName = "d/" + "x".repeat(150) + "/" + "y".repeat(120);
const ENTRIES: TarWriterEntry[] = [
  { name: "dir/", type: "directory", mode: 0o1777, uid: 5, gid: 6, mtime: 1234 },
  { name: "dir/file", data: "hello", mode: 0o4755, mtime: { sec: 1600000000, nsec: 123 } },
  { name: "dir/empty", data: "" },
  { name: "dir/big", data: "z".repeat(70000) },
  { name: "dir/link", type: "symlink", linkname: "/etc/passwd" },
  { name: "dir/hard", type: "hardlink", linkname: "dir/file" },
  { name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
  { name: "dev/sda", type: "block", devmajor: 8, devminor: 0 },
  { name: "fifo", type: "fifo" },
  { name: longName, data: "pax long", uid: 3_000_000, gid: 4_000_000 },
  { name: longName + "g", data: "gnu long", gnu: true, type: "file" },
  { name: "sym-long", type: "symlink", linkname: "t".repeat(200), gnu: true },
  { name: "x", data: "", xattrs: { "user.a": "1", "trusted.b": new Uint8Array([0, 255]) } },
];

Deno.test("TarParser reads every entry type at any chunk size", async (t) => {
  const bytes = buildTar(ENTRIES);
  for (const chunk of [1, 7, 511, 512, 513, 4096, 65536, bytes.length]) {
    await t.step(`chunk ${chunk}`, () => {
      const seen = readAll(bytes, chunk);
      assertEquals(seen.map((s) => s.header.name), ENTRIES.map((e) => e.name));
      const h = (i: number) => seen[i]!.header;
      assertEquals([h(0).type, h(0).mode, h(0).uid, h(0).gid, h(0).mtime], ["directory", 0o1777, 5, 6, {
        sec: 1234,
        nsec: 0,
      }]);
      assertEquals([h(1).mode, h(1).mtime, seen[1]!.body], [0o4755, { sec: 1600000000, nsec: 123 }, "hello"]);
      assertEquals(seen[2]!.body, "");
      assertEquals(seen[3]!.body.length, 70000);
      assertEquals([h(4).type, h(4).linkname], ["symlink", "/etc/passwd"]);
      assertEquals([h(5).type, h(5).linkname, h(5).size], ["hardlink", "dir/file", 0]);
      assertEquals([h(6).type, h(6).devmajor, h(6).devminor], ["char", 1, 3]);
      assertEquals([h(7).type, h(7).devmajor], ["block", 8]);
      assertEquals(h(8).type, "fifo");
      assertEquals([h(9).uid, h(9).gid, seen[9]!.body], [3_000_000, 4_000_000, "pax long"]);
      assertEquals(seen[10]!.body, "gnu long");
      assertEquals(h(11).linkname, "t".repeat(200));
      assertEquals(h(12).xattrs, new Map([["user.a", enc.encode("1")], ["trusted.b", new Uint8Array([0, 255])]]));
    });
  }
});

Deno.test("TarParser edge cases", async (t) => {
  await t.step("pre-POSIX directory: typeflag NUL and trailing slash", () => {
    const bytes = buildTar([{ name: "old/", typeflag: "\0" }, { name: "f", typeflag: "\0", data: "x" }]);
    assertEquals(readAll(bytes, 512).map((s) => s.header.type), ["directory", "file"]);
  });
  await t.step("global pax records apply to later entries, local ones win", () => {
    const g = paxRecords([["uid", "77"], ["gid", "88"]]);
    const gh = entryBlocks({ name: "g", typeflag: "g", data: g, type: "file" });
    const bytes = concat([...gh, ...entryBlocks({ name: "a", pax: { gid: "9" } }), new Uint8Array(1024)]);
    const [a] = readAll(bytes, 100);
    assertEquals([a!.header.uid, a!.header.gid], [77, 9]);
  });
  await t.step("LIBARCHIVE.xattr records", () => {
    const bytes = buildTar([{ name: "a", pax: { "LIBARCHIVE.xattr.user.x%3Dy": btoa("v") } }]);
    assertEquals(readAll(bytes, 512)[0]!.header.xattrs, new Map([["user.x=y", enc.encode("v")]]));
  });
  await t.step("archive without end marker ending on a header boundary", () => {
    const bytes = concat(entryBlocks({ name: "a", data: "1" }));
    assertEquals(readAll(bytes, 512).length, 1);
  });
  await t.step("data after the end marker is ignored", () => {
    const bytes = concat([buildTar([{ name: "a" }]), enc.encode("garbage")]);
    assertEquals(readAll(bytes, 3).length, 1);
  });
  const bad: [string, Uint8Array, string][] = [
    ["truncated body", buildTar([{ name: "a", data: "x".repeat(600) }]).subarray(0, 700), "unexpected end"],
    ["truncated header", buildTar([{ name: "a" }]).subarray(0, 300), "unexpected end"],
    [
      "bad checksum",
      (() => {
        const b = buildTar([{ name: "a" }]);
        b[0] = 0x62;
        return b;
      })(),
      "checksum",
    ],
    ["sparse file", buildTar([{ name: "s", typeflag: "S" }]), "unsupported type"],
    ["pax sparse", buildTar([{ name: "s", pax: { "GNU.sparse.major": "1" } }]), "sparse"],
    ["not a tar", enc.encode("x".repeat(2048)), "checksum"],
  ];
  for (const [name, bytes, msg] of bad) {
    await t.step(name, () => void assertThrows(() => readAll(bytes, 512), InvalidArgument, msg));
  }
});
