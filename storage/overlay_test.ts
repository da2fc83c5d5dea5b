// Tests for overlay mounts: pure option building, the Mounter seam with a recording fake, real mounts of extracted
// layers (whiteouts, opaque directories, read-only, hundreds of layers through both kernel APIs), and disk usage.
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { tarStream } from "../tests/tar_writer.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { extractLayer } from "./extract.ts";
import {
  diskUsage,
  LinuxMounter,
  type Mounter,
  mountOverlay,
  overlayConfigSteps,
  overlayMountData,
  type OverlayOptions,
  unmount,
  validateOverlay,
} from "./overlay.ts";

function tempDir(): { path: string } & AsyncDisposable {
  const path = Deno.makeTempDirSync({ prefix: "davit-overlay-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      // Whatever a failed test left mounted below the directory goes first.
      const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
        .map((l) => l.split(" ")[4] ?? "").filter((m) => m.startsWith(path + "/")).reverse();
      for (const m of mounts) await unmount(m, { detach: true });
      await Deno.remove(path, { recursive: true });
    },
  };
}

function mountedAt(target: string): string | undefined {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n").find((l) => l.split(" ")[4] === target);
}

const base: OverlayOptions = { lowerDirs: ["/l/1", "/l/0"], upperDir: "/u", workDir: "/w", target: "/t" };

Deno.test("overlay options", async (t) => {
  await t.step("fsconfig steps: one lowerdir+ per layer, top-most first", () => {
    assertEquals(overlayConfigSteps({ ...base, options: ["volatile", "metacopy=off"] }), [
      { key: "source", value: "overlay" },
      { key: "lowerdir+", value: "/l/1" },
      { key: "lowerdir+", value: "/l/0" },
      { key: "upperdir", value: "/u" },
      { key: "workdir", value: "/w" },
      { key: "volatile", flag: true },
      { key: "metacopy", value: "off" },
    ]);
  });
  await t.step("mount(2) data", () => {
    assertEquals(overlayMountData(base), "lowerdir=/l/1:/l/0,upperdir=/u,workdir=/w");
    assertEquals(
      overlayMountData(base, ["/proc/self/fd/9", "/proc/self/fd/10"]).split(",")[0],
      "lowerdir=/proc/self/fd/9:/proc/self/fd/10",
    );
  });
  const bad: [string, Partial<OverlayOptions>, string][] = [
    ["no layers", { lowerDirs: [] }, "at least one"],
    ["too many layers", { lowerDirs: Array.from({ length: 501 }, (_, i) => `/l/${i}`) }, "exceeds"],
    ["relative path", { upperDir: "u" }, "must be absolute"],
    ["colon in a layer path", { lowerDirs: ["/l/a:b"] }, "must be absolute"],
    ["comma in the target", { target: "/t,x" }, "must be absolute"],
    ["option smuggling a lowerdir", { options: ["lowerdir=/etc"] }, "not allowed"],
    ["option with a comma", { options: ["a=b,lowerdir=/x"] }, "not allowed"],
  ];
  for (const [name, patch, msg] of bad) {
    await t.step(name, () => void assertThrows(() => validateOverlay({ ...base, ...patch }), InvalidArgument, msg));
  }
});

Deno.test("mountOverlay and unmount go through the Mounter", async () => {
  const calls: unknown[] = [];
  const fake: Mounter = {
    mountOverlay(opts) {
      calls.push(["mount", opts]);
      return Promise.resolve();
    },
    unmount(target, opts) {
      calls.push(["unmount", target, opts]);
      return Promise.resolve(true);
    },
  };
  await mountOverlay({ ...base, readOnly: true }, { mounter: fake });
  assertEquals(await unmount("/t", { mounter: fake }), true);
  await unmount("/t", { mounter: fake, detach: true });
  await assertRejects(() => mountOverlay({ ...base, lowerDirs: [] }, { mounter: fake }), InvalidArgument);
  assertEquals(calls, [
    ["mount", { ...base, readOnly: true }],
    ["unmount", "/t", { detach: false }],
    ["unmount", "/t", { detach: true }],
  ]);
});

async function twoLayers(root: string): Promise<OverlayOptions> {
  for (const d of ["l0", "l1", "upper", "work", "merged"]) await Deno.mkdir(`${root}/${d}`);
  await extractLayer(
    tarStream([
      { name: "keep", data: "keep" },
      { name: "gone", data: "gone" },
      { name: "etc/", type: "directory" },
      { name: "etc/old-a", data: "a" },
      { name: "etc/old-b", data: "b" },
      { name: "var/lib/x", data: "x" },
    ]),
    `${root}/l0`,
  );
  await extractLayer(
    tarStream([
      { name: ".wh.gone", data: "" },
      { name: "etc/.wh..wh..opq", data: "" },
      { name: "etc/new", data: "new" },
      { name: "var/lib/.wh.x", data: "" },
      { name: "var/lib/y", data: "y" },
    ]),
    `${root}/l1`,
  );
  return {
    lowerDirs: [`${root}/l1`, `${root}/l0`],
    upperDir: `${root}/upper`,
    workDir: `${root}/work`,
    target: `${root}/merged`,
  };
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

for (const api of ["fsconfig", "legacy"] as const) {
  Deno.test(`overlay of extracted layers (${api}): whiteouts and opaque directories`, async () => {
    await using dir = tempDir();
    const opts = await twoLayers(dir.path);
    const mounter = new LinuxMounter({ api });
    await mountOverlay(opts, { mounter });
    try {
      const m = opts.target;
      assertEquals(await names(m), ["etc", "keep", "var"]);
      assertEquals(await names(`${m}/etc`), ["new"], "the opaque directory hides the lower contents");
      assertEquals(await names(`${m}/var/lib`), ["y"], "the whiteout hides the lower file");
      await Deno.writeTextFile(`${m}/keep`, "changed");
      assertEquals(await Deno.readTextFile(`${opts.upperDir}/keep`), "changed");
      assertEquals(await Deno.readTextFile(`${opts.lowerDirs[1]}/keep`), "keep");
    } finally {
      assertEquals(await unmount(opts.target, { mounter }), true);
    }
    assertEquals(mountedAt(opts.target), undefined);
    assertEquals(await unmount(opts.target, { mounter }), false, "unmount is idempotent");
  });
}

Deno.test("read-only overlay", async () => {
  await using dir = tempDir();
  const opts = await twoLayers(dir.path);
  await mountOverlay({ ...opts, readOnly: true });
  try {
    assert(mountedAt(opts.target)?.includes(" ro,"));
    await assertRejects(() => Deno.writeTextFile(`${opts.target}/keep`, "x"));
  } finally {
    await unmount(opts.target);
  }
});

for (const [api, count] of [["fsconfig", 200], ["legacy", 150]] as const) {
  Deno.test(`overlay of ${count} layers with long paths (${api})`, async () => {
    await using dir = tempDir();
    const long = `${dir.path}/${"layers-with-a-rather-long-directory-name-".repeat(3)}`;
    const lowerDirs: string[] = [];
    for (let i = 0; i < count; i++) {
      const l = `${long}/${String(i).padStart(4, "0")}-${"x".repeat(40)}/diff`;
      await Deno.mkdir(l, { recursive: true });
      await Deno.writeTextFile(`${l}/file-${i}`, String(i));
      await Deno.writeTextFile(`${l}/shared`, String(i));
      lowerDirs.unshift(l); // the last layer written is the top-most
    }
    for (const d of ["upper", "work", "merged"]) await Deno.mkdir(`${dir.path}/${d}`);
    const opts = {
      lowerDirs,
      upperDir: `${dir.path}/upper`,
      workDir: `${dir.path}/work`,
      target: `${dir.path}/merged`,
    };
    assert(overlayMountData(opts).length > 4096, "the options would not fit in one page");
    const mounter = new LinuxMounter({ api });
    await mountOverlay(opts, { mounter });
    try {
      assertEquals((await names(opts.target)).length, count + 1);
      assertEquals(await Deno.readTextFile(`${opts.target}/shared`), String(count - 1));
      assertEquals(await Deno.readTextFile(`${opts.target}/file-0`), "0");
    } finally {
      await unmount(opts.target, { mounter });
    }
  });
}

Deno.test("mount errors name the target", async () => {
  await using dir = tempDir();
  const opts = {
    lowerDirs: [`${dir.path}/missing`],
    upperDir: `${dir.path}/u`,
    workDir: `${dir.path}/w`,
    target: dir.path,
  };
  for (const api of ["fsconfig", "legacy"] as const) {
    await assertRejects(
      () => mountOverlay(opts, { mounter: new LinuxMounter({ api }) }),
      InvalidArgument,
      `Cannot mount overlay of 1 layers on ${JSON.stringify(dir.path)}`,
    );
  }
});

Deno.test("diskUsage counts hardlinks once and does not follow symlinks", async () => {
  await using dir = tempDir();
  const d = dir.path;
  await Deno.mkdir(`${d}/sub/deeper`, { recursive: true });
  await Deno.writeFile(`${d}/sub/a`, new Uint8Array(100_000).fill(1));
  await Deno.link(`${d}/sub/a`, `${d}/sub/deeper/a-link`);
  await Deno.writeFile(`${d}/b`, new Uint8Array(10).fill(1));
  await Deno.symlink("/usr", `${d}/usr-link`);
  const usage = await diskUsage(d);
  // root, sub, deeper, a (twice linked, once counted), b, usr-link
  assertEquals(usage.inodes, 6);
  let want = 0;
  for (const p of ["", "/sub", "/sub/deeper", "/sub/a", "/b", "/usr-link"]) {
    want += (await Deno.lstat(d + p)).blocks! * 512;
  }
  assertEquals(usage.bytes, want);
  assert(usage.bytes >= 100_000 && usage.bytes < 10_000_000);
});
