// Tests for the libc FFI bindings: errno reporting, fd-relative calls, openat2 containment, xattrs, times.
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  AT,
  close,
  cstr,
  ErrnoError,
  errnoName,
  fchmod,
  fchown,
  isErrno,
  lgetxattr,
  linkat,
  llistxattr,
  lsetxattr,
  makedev,
  mkdirat,
  mknodat,
  O,
  openat,
  openat2,
  OwnedFd,
  readDirFd,
  readlinkat,
  RENAME,
  renameat,
  renameat2,
  RESOLVE,
  S_IF,
  symlinkat,
  unlinkat,
  utimensat,
  writeAll,
} from "./libc.ts";

function tempDir(): { path: string } & Disposable {
  const path = Deno.makeTempDirSync({ prefix: "davit-libc-" });
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

Deno.test("errno names and messages", async (t) => {
  const names: [number, string][] = [[2, "ENOENT"], [17, "EEXIST"], [18, "EXDEV"], [40, "ELOOP"], [9999, "errno 9999"]];
  for (const [n, name] of names) await t.step(name, () => assertEquals(errnoName(n), name));
  await t.step("a failed call throws ErrnoError naming the call and path", () => {
    const err = assertThrows(() => openat(AT.FDCWD, "/nonexistent/davit", O.RDONLY), ErrnoError);
    assert(err instanceof ErrnoError);
    assertEquals([err.code, err.errno, err.syscall], ["ENOENT", 2, "openat"]);
    assertEquals(err.message, 'openat "/nonexistent/davit": ENOENT (No such file or directory)');
    assert(isErrno(err, "ENOENT"));
    assert(!isErrno(err, "EEXIST"));
  });
  await t.step("strings with NUL are refused before reaching libc", () => {
    assertThrows(() => cstr("a\0b"), TypeError, "NUL");
    assertEquals([...cstr("ab")], [0x61, 0x62, 0]);
  });
});

Deno.test("makedev", async (t) => {
  const cases: [number, number, bigint][] = [[0, 0, 0n], [1, 3, 0x103n], [8, 1, 0x801n], [259, 65536, 0x10010300n], [
    4095,
    255,
    0xfffffn,
  ]];
  for (const [ma, mi, want] of cases) await t.step(`${ma}:${mi}`, () => assertEquals(makedev(ma, mi), want));
});

Deno.test("fd-relative file operations", () => {
  using dir = tempDir();
  using root = new OwnedFd(openat(AT.FDCWD, dir.path, O.RDONLY | O.DIRECTORY));
  mkdirat(root.fd, "d", 0o755);
  assertThrows(() => mkdirat(root.fd, "d", 0o755), ErrnoError, "EEXIST");

  using f = new OwnedFd(openat(root.fd, "d/f", O.WRONLY | O.CREAT | O.EXCL, 0o600));
  writeAll(f.fd, new TextEncoder().encode("xxhello").subarray(2));
  fchown(f.fd, 12, 34);
  fchmod(f.fd, 0o4711);
  f.close();
  f.close(); // idempotent
  const st = Deno.lstatSync(`${dir.path}/d/f`);
  assertEquals([Deno.readTextFileSync(`${dir.path}/d/f`), st.uid, st.gid, st.mode! & 0o7777], [
    "hello",
    12,
    34,
    0o4711,
  ]);

  symlinkat("../elsewhere", root.fd, "d/l");
  assertEquals(readlinkat(root.fd, "d/l"), "../elsewhere");
  linkat(root.fd, "d/f", root.fd, "hard", 0);
  assertEquals(Deno.lstatSync(`${dir.path}/hard`).nlink, 2);
  mknodat(root.fd, "null", S_IF.CHR | 0o666, makedev(1, 3));
  assertEquals(Deno.lstatSync(`${dir.path}/null`).rdev, 0x103);
  renameat(root.fd, "hard", root.fd, "hard2");
  assertThrows(() => renameat2(root.fd, "hard2", root.fd, "null", RENAME.NOREPLACE), ErrnoError, "EEXIST");
  utimensat(root.fd, "d/l", { sec: 10, nsec: 0 }, { sec: 20, nsec: 5_000_000 }, AT.SYMLINK_NOFOLLOW);
  assertEquals(Deno.lstatSync(`${dir.path}/d/l`).mtime?.getTime(), 20_005);

  assertEquals(readDirFd(root.fd).map((e) => e.name).sort(), ["d", "hard2", "null"]);
  unlinkat(root.fd, "hard2");
  unlinkat(root.fd, "d/l");
  unlinkat(root.fd, "d/f");
  unlinkat(root.fd, "d", AT.REMOVEDIR);
  assertEquals(readDirFd(root.fd).map((e) => e.name), ["null"]);
});

Deno.test("openat2 RESOLVE_BENEATH keeps lookups inside the directory", async (t) => {
  using dir = tempDir();
  Deno.mkdirSync(`${dir.path}/in/sub`, { recursive: true });
  Deno.symlinkSync("/etc", `${dir.path}/in/abs`);
  Deno.symlinkSync("..", `${dir.path}/in/up`);
  Deno.symlinkSync("sub", `${dir.path}/in/rel`);
  using root = new OwnedFd(openat(AT.FDCWD, `${dir.path}/in`, O.PATH | O.DIRECTORY));
  const resolve = RESOLVE.BENEATH | RESOLVE.NO_MAGICLINKS;
  for (const ok of ["sub", "rel", "sub/..", "."]) {
    await t.step(`allows ${ok}`, () => close(openat2(root.fd, ok, O.PATH, { resolve })));
  }
  for (const bad of ["..", "abs", "up", "up/in", "/etc", "sub/../.."]) {
    await t.step(
      `refuses ${bad}`,
      () => void assertThrows(() => openat2(root.fd, bad, O.PATH, { resolve }), ErrnoError, "EXDEV"),
    );
  }
});

Deno.test("xattrs", () => {
  using dir = tempDir();
  const p = `${dir.path}/f`;
  Deno.writeTextFileSync(p, "");
  lsetxattr(p, "user.one", new Uint8Array([1, 2, 3]));
  lsetxattr(p, "trusted.two", new TextEncoder().encode("y"));
  assertEquals(lgetxattr(p, "user.one"), new Uint8Array([1, 2, 3]));
  assertEquals(lgetxattr(p, "user.missing"), undefined);
  assertEquals(llistxattr(p).sort(), ["trusted.two", "user.one"]);
  assertThrows(() => lsetxattr(`${dir.path}/missing`, "user.x", new Uint8Array()), ErrnoError, "ENOENT");
});
