// End to end: `davit image import` of docker-save archives, OCI archives and OCI layouts, with the daemon stopped
// and running; the images are then served by the CRI ImageService and mount as container root filesystems.
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { startDaemon, testPathsToml } from "./daemon.ts";
import { selfCommand } from "../lib/self_exec.ts";
import { buildBusybox, buildLayered, writeDockerArchive, writeOciArchive, writeOciLayout } from "./fixtures/images.ts";
import { DAEMON_MIGRATIONS, IMAGE_STORE_MIGRATIONS, ImageStore, openDatabase, RootfsManager } from "../storage/mod.ts";
import { rootfsDifferences } from "./rootfs_check.ts";

async function davit(args: string[]) {
  const out = await selfCommand(args, { stdout: "piped", stderr: "piped", stdin: "null" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function setupDir(): Promise<{ dir: string; flags: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "davit-import-" });
  await Deno.mkdir(`${dir}/etc/davit.conf.d`, { recursive: true });
  await Deno.writeTextFile(`${dir}/etc/davit.toml`, "");
  await Deno.writeTextFile(`${dir}/etc/davit.conf.d/00-test-paths.toml`, testPathsToml(dir));
  return {
    dir,
    flags: [
      "--config",
      `${dir}/etc/davit.toml`,
      "--config-dir",
      `${dir}/etc/davit.conf.d`,
      "--root",
      `${dir}/root`,
      "--runroot",
      `${dir}/run`,
    ],
  };
}

Deno.test("davit image import without a daemon: docker-save, OCI archive and OCI layout", async (t) => {
  const { dir, flags } = await setupDir();
  try {
    const busybox = buildBusybox();
    const layered = buildLayered();
    await writeDockerArchive(`${dir}/busybox-docker.tar`, [{ image: busybox, name: "localhost/busybox:docker" }]);
    await writeOciArchive(`${dir}/layered-oci.tar`, [{ image: layered, name: "localhost/layered:oci" }]);
    await writeOciLayout(`${dir}/layout`, [{ image: busybox, name: "localhost/busybox:layout" }]);

    await t.step("docker save archive", async () => {
      const r = await davit(["image", "import", `${dir}/busybox-docker.tar`, ...flags]);
      assertEquals(r.code, 0, r.stderr);
      assertStringIncludes(r.stdout, busybox.configDigest);
      assertStringIncludes(r.stdout, "localhost/busybox:docker");
    });
    await t.step("OCI archive with whiteouts, devices, xattrs, a zstd layer", async () => {
      const r = await davit(["image", "import", `${dir}/layered-oci.tar`, ...flags]);
      assertEquals(r.code, 0, r.stderr);
      assertStringIncludes(r.stdout, layered.configDigest);
    });
    await t.step("OCI layout directory: same image, another name, no layer stored twice", async () => {
      const r = await davit(["image", "import", `${dir}/layout`, ...flags]);
      assertEquals(r.code, 0, r.stderr);
      const ls = JSON.parse((await davit(["image", "ls", "--json", ...flags])).stdout);
      const bb = ls.find((i: { id: string }) => i.id === busybox.configDigest);
      assertEquals(bb.repoTags.sort(), ["localhost/busybox:docker", "localhost/busybox:layout"]);
      const layers = [...Deno.readDirSync(`${dir}/root/overlay/layers`)];
      assertEquals(layers.length, new Set([...busybox.diffIds, ...layered.diffIds]).size);
    });
    await t.step("a missing file and a file that is no archive are clear errors", async () => {
      const missing = await davit(["image", "import", `${dir}/nope.tar`, ...flags]);
      assertEquals(missing.code, 1);
      assertStringIncludes(missing.stderr, `${dir}/nope.tar`);
      await Deno.writeTextFile(`${dir}/junk.tar`, "not a tar");
      const junk = await davit(["image", "import", `${dir}/junk.tar`, ...flags]);
      assertEquals(junk.code, 1);
      assert(junk.stderr.length > 0);
    });
    await t.step("a stored image mounts as an overlay root filesystem with the expected tree", async () => {
      const db = openDatabase(`${dir}/root/davit.db`, { daemon: DAEMON_MIGRATIONS, storage: IMAGE_STORE_MIGRATIONS });
      const rootfs = new RootfsManager(new ImageStore(db, `${dir}/root`), `${dir}/root`);
      try {
        const fs = await rootfs.mount("test-container", layered.configDigest);
        assertEquals(await rootfsDifferences(fs.path, layered.files, layered.absent), []);
        await Deno.writeTextFile(`${fs.path}/new-file`, "written in the container");
        assert((await rootfs.usage("test-container")).bytes > 0, "the write landed in the upper dir");
        assertEquals(
          await Deno.readTextFile(`${dir}/root/containers/test-container/upper/new-file`),
          "written in the container",
        );
      } finally {
        await rootfs.remove("test-container");
        db.close();
      }
      const mounts = await Deno.readTextFile("/proc/self/mountinfo");
      assert(!mounts.includes(`${dir}/root/containers`), "nothing left mounted");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("davit image import beside a running daemon; the daemon lists, inspects, pins and removes", async (t) => {
  await using d = await startDaemon({
    files: { "etc/davit.conf.d/10-pins.toml": '[davit.image]\npinned_images = ["localhost/pinned*"]\n' },
  });
  const flags = [
    "--config",
    `${d.dir}/etc/davit.toml`,
    "--config-dir",
    `${d.dir}/etc/davit.conf.d`,
    "--root",
    d.root,
    "--runroot",
    d.runroot,
  ];
  const busybox = buildBusybox();
  const archive = `${d.dir}/bb.tar`;
  await writeDockerArchive(archive, [
    { image: busybox, name: "localhost/busybox:1" },
    { image: busybox, name: "localhost/pinned-busybox:1" },
  ]);
  const r = await davit(["image", "import", archive, ...flags]);
  assertEquals(r.code, 0, r.stderr);
  using c = d.client();

  await t.step("ListImages and ImageStatus see the import at once", async () => {
    const list = await c.call("ListImages", {});
    assertEquals(list.images.length, 1);
    const img = list.images[0];
    assertEquals(img.id, busybox.configDigest);
    assertEquals(img.repo_tags.sort(), ["localhost/busybox:1", "localhost/pinned-busybox:1"]);
    assertEquals(img.pinned, true);
    const st = await c.call("ImageStatus", { image: { image: "localhost/busybox:1" }, verbose: true });
    assertEquals(st.image.id, busybox.configDigest);
    assert(Number(st.image.size) > 1_000_000);
    const info = JSON.parse(st.info.info);
    assertEquals(info.imageSpec.config.Cmd, ["sh"]);
  });
  await t.step("ImageStatus of an absent image is empty, not an error", async () => {
    const st = await c.call("ImageStatus", { image: { image: "localhost/absent:1" } });
    assertEquals(st.image, null);
  });
  await t.step("ImageStatus and RemoveImage without a name are INVALID_ARGUMENT naming the field", async () => {
    for (const method of ["ImageStatus", "RemoveImage"]) {
      const err = await c.call(method, { image: { image: "" } }).catch((e) => e);
      assertEquals(err.codeName, "INVALID_ARGUMENT");
      assertStringIncludes(err.message, "image.image");
    }
  });
  await t.step("a malformed reference is INVALID_ARGUMENT naming the input", async () => {
    const err = await c.call("ImageStatus", { image: { image: "Bad:Name!" } }).catch((e) => e);
    assertEquals(err.codeName, "INVALID_ARGUMENT");
    assertStringIncludes(err.message, "Bad:Name!");
  });
  await t.step("StreamImages sends the same images", async () => {
    const msgs = await c.stream("StreamImages", {});
    assertEquals(msgs.flatMap((m) => m.images).map((i) => i.id), [busybox.configDigest]);
  });
  await t.step("ImageFsInfo reports bytes and inodes of image and container storage", async () => {
    const fs = await c.call("ImageFsInfo", {});
    assertEquals(fs.image_filesystems[0].fs_id.mountpoint, `${d.root}/overlay`);
    assert(Number(fs.image_filesystems[0].used_bytes.value) > 1_000_000);
    assert(Number(fs.image_filesystems[0].inodes_used.value) > 10);
    assertEquals(fs.container_filesystems[0].fs_id.mountpoint, `${d.root}/containers`);
  });
  await t.step("removing one tag of a two-tag image only untags", async () => {
    await c.call("RemoveImage", { image: { image: "localhost/pinned-busybox:1" } });
    const st = await c.call("ImageStatus", { image: { image: busybox.configDigest } });
    assertEquals(st.image.repo_tags, ["localhost/busybox:1"]);
    assertEquals(st.image.pinned, false);
  });
  await t.step("removing the last tag removes the image and its layers; again is not an error", async () => {
    await c.call("RemoveImage", { image: { image: "localhost/busybox:1" } });
    assertEquals((await c.call("ListImages", {})).images, []);
    assertEquals([...Deno.readDirSync(`${d.root}/overlay/layers`)].length, 0);
    await c.call("RemoveImage", { image: { image: "localhost/busybox:1" } });
  });
});
