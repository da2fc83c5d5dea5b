/**
 * Compares an extracted or mounted root filesystem with what a fixture image promises: types, modes, owners,
 * contents, link targets, device numbers and xattrs of every expected path, and the absence of removed ones.
 * @module
 */
import { createHash } from "node:crypto";
import type { ExpectedFile } from "./fixtures/images.ts";

/** Lists every difference between `root` and the expectation (empty when they agree). */
export async function rootfsDifferences(
  root: string,
  files: Map<string, ExpectedFile>,
  absent: readonly string[] = [],
): Promise<string[]> {
  const problems: string[] = [];
  for (const [path, want] of files) {
    const full = `${root}${path}`;
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(full);
    } catch {
      problems.push(`${path}: missing`);
      continue;
    }
    const type = st.isSymlink
      ? "symlink"
      : st.isDirectory
      ? "dir"
      : st.isFile
      ? "file"
      : st.isFifo
      ? "fifo"
      : st.isCharDevice
      ? "char"
      : st.isBlockDevice
      ? "block"
      : "other";
    const wantType = want.type === "hardlink" ? "file" : want.type;
    if (type !== wantType) {
      problems.push(`${path}: is ${type}, expected ${wantType}`);
      continue;
    }
    if (type !== "symlink" && ((st.mode ?? 0) & 0o7777) !== want.mode) {
      problems.push(`${path}: mode ${((st.mode ?? 0) & 0o7777).toString(8)}, expected ${want.mode.toString(8)}`);
    }
    if (st.uid !== want.uid || st.gid !== want.gid) {
      problems.push(`${path}: owner ${st.uid}:${st.gid}, expected ${want.uid}:${want.gid}`);
    }
    if (want.sha256 !== undefined && type === "file") {
      const sum = createHash("sha256").update(await Deno.readFile(full)).digest("hex");
      if (sum !== want.sha256) problems.push(`${path}: content differs`);
    }
    if (want.type === "symlink" && want.linkname !== undefined) {
      const target = await Deno.readLink(full);
      if (target !== want.linkname) problems.push(`${path}: links to ${target}, expected ${want.linkname}`);
    }
    if (want.type === "hardlink" && want.linkname !== undefined) {
      const other = await Deno.lstat(`${root}${want.linkname}`).catch(() => undefined);
      if (!other || other.ino !== st.ino) problems.push(`${path}: not a hard link of ${want.linkname}`);
    }
    if ((want.type === "char" || want.type === "block") && st.rdev !== null) {
      const major = Math.floor(st.rdev / 256) & 0xfff, minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
      if (major !== want.devmajor || minor !== want.devminor) {
        problems.push(`${path}: device ${major}:${minor}, expected ${want.devmajor}:${want.devminor}`);
      }
    }
    for (const [name, value] of Object.entries(want.xattrs ?? {})) {
      const out = await new Deno.Command("getfattr", {
        args: ["--only-values", "-h", "-n", name, full],
        stdout: "piped",
        stderr: "null",
      }).output();
      const got = new TextDecoder().decode(out.stdout);
      if (got !== value) {
        problems.push(`${path}: xattr ${name}=${JSON.stringify(got)}, expected ${JSON.stringify(value)}`);
      }
    }
  }
  for (const path of absent) {
    if (await Deno.lstat(`${root}${path}`).then(() => true, () => false)) problems.push(`${path}: should be absent`);
  }
  return problems;
}
