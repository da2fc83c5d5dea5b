// End to end: PullImage through a real daemon from Debian's docker-registry on 127.0.0.1 (plain, basic auth,
// token auth, TLS), mirrors, policy, signatures, faults, hostile layers and concurrency.
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import type { CriCallError, CriClient } from "./cri_client.ts";
import { startDaemon, type TestDaemon } from "./daemon.ts";
import { startFaultyProxy, startRegistry } from "./fixtures/registry.ts";
import { big, busybox, corrupt, docker, hostile, layered, multiarch, signed, wrongDiffId } from "./fixtures/images.ts";
import { DAEMON_MIGRATIONS, IMAGE_STORE_MIGRATIONS, ImageStore, openDatabase, RootfsManager } from "../storage/mod.ts";
import { rootfsDifferences } from "./rootfs_check.ts";
import type { PushedImage } from "./fixtures/image_push.ts";

function registriesConf(
  entries: { location: string; insecure?: boolean; mirrors?: string[]; blocked?: boolean; prefix?: string }[],
  search: string[] = [],
): string {
  const lines = [`unqualified-search-registries = ${JSON.stringify(search)}`, ""];
  for (const e of entries) {
    lines.push("[[registry]]");
    if (e.prefix) lines.push(`prefix = "${e.prefix}"`);
    lines.push(`location = "${e.location}"`, `insecure = ${e.insecure ?? false}`, `blocked = ${e.blocked ?? false}`);
    for (const m of e.mirrors ?? []) lines.push("[[registry.mirror]]", `location = "${m}"`, "insecure = true");
    lines.push("");
  }
  return lines.join("\n");
}

async function daemonFor(files: Record<string, string>, args: string[] = []): Promise<TestDaemon> {
  return await startDaemon({ files, args });
}

async function pull(c: CriClient, image: string, auth?: Record<string, string>): Promise<string> {
  const res = await c.call("PullImage", { image: { image }, ...(auth ? { auth } : {}) }, { timeoutMs: 120_000 });
  return res.image_ref;
}

async function pullError(c: CriClient, image: string, auth?: Record<string, string>): Promise<CriCallError> {
  try {
    await pull(c, image, auth);
  } catch (err) {
    return err as CriCallError;
  }
  throw new Error(`pull of ${image} unexpectedly succeeded`);
}

/** Nothing half-made: no temporary work left, every layer directory recorded, no image recorded. */
async function assertNothingStored(d: TestDaemon): Promise<void> {
  const c = d.client();
  try {
    assertEquals((await c.call("ListImages", {})).images, []);
  } finally {
    c.close();
  }
  assertEquals([...Deno.readDirSync(`${d.root}/overlay/tmp`)], [], "no temporary layer left");
  assertEquals([...Deno.readDirSync(`${d.root}/overlay/layers`)], [], "no layer left");
}

async function assertRootfs(d: TestDaemon, img: PushedImage): Promise<void> {
  const db = openDatabase(`${d.root}/davit.db`, { daemon: DAEMON_MIGRATIONS, storage: IMAGE_STORE_MIGRATIONS });
  const rootfs = new RootfsManager(new ImageStore(db, d.root), d.root);
  const id = `check-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const fs = await rootfs.mount(id, img.configDigest);
    assertEquals(await rootfsDifferences(fs.path, img.files, img.absent), []);
  } finally {
    await rootfs.remove(id);
    db.close();
  }
}

Deno.test("pull from a plain loopback registry: OCI, layered, multi-arch, Docker schema 2, short names", async (t) => {
  await using reg = await startRegistry();
  const bb = await busybox(reg);
  const lay = await layered(reg);
  const multi = await multiarch(reg);
  const dock = await docker(reg);
  await using d = await daemonFor({
    "etc/containers/registries.conf": registriesConf([{ location: reg.host, insecure: true }], [reg.host]),
  });
  using c = d.client();
  await t.step("busybox by tag answers the image ID and records tag and digest", async () => {
    assertEquals(await pull(c, bb.reference), bb.configDigest);
    const st = await c.call("ImageStatus", { image: { image: bb.reference } });
    assertEquals(st.image.repo_tags, [bb.reference]);
    assertEquals(st.image.repo_digests, [`${bb.repository}@${bb.manifestDigest}`]);
    await assertRootfs(d, bb);
  });
  await t.step("by digest", async () => {
    assertEquals(await pull(c, bb.digestReference), bb.configDigest);
  });
  await t.step("whiteouts, opaque dirs, hardlinks, devices, xattrs, gzip + zstd + plain layers", async () => {
    assertEquals(await pull(c, lay.reference), lay.configDigest);
    await assertRootfs(d, lay);
  });
  await t.step("an OCI index resolves to the host platform", async () => {
    assertEquals(await pull(c, multi.reference), multi.configDigest);
    await assertRootfs(d, multi);
  });
  await t.step("Docker schema 2 with its config (user, workdir)", async () => {
    assertEquals(await pull(c, dock.reference), dock.configDigest);
    const st = await c.call("ImageStatus", { image: { image: dock.reference } });
    assertEquals(st.image.username, "app");
    await assertRootfs(d, dock);
  });
  await t.step("a short name resolves through unqualified-search-registries", async () => {
    assertEquals(await pull(c, "busybox:latest"), bb.configDigest);
  });
  await t.step("an image the registry lacks is NOT_FOUND naming it", async () => {
    const err = await pullError(c, `${reg.host}/nothing-here:1`);
    assertEquals(err.codeName, "NOT_FOUND");
    assertStringIncludes(err.message, "nothing-here");
  });
  await t.step("a malformed name is INVALID_ARGUMENT naming it", async () => {
    const err = await pullError(c, "UPPER/Case:tag");
    assertEquals(err.codeName, "INVALID_ARGUMENT");
    assertStringIncludes(err.message, "UPPER/Case:tag");
  });
});

Deno.test("auth: token and basic challenges, kubelet credentials, global auth file; secrets never leak", async (t) => {
  await t.step("token auth with credentials from the request", async () => {
    await using reg = await startRegistry({ auth: "token" });
    const bb = await busybox(reg);
    await using d = await daemonFor({
      "etc/containers/registries.conf": registriesConf([{ location: reg.host, insecure: true }]),
    });
    using c = d.client();
    const denied = await pullError(c, bb.reference);
    assertEquals(denied.codeName, "PERMISSION_DENIED", denied.message);
    const wrong = await pullError(c, bb.reference, { username: reg.username!, password: "not-the-password-xyz" });
    assertEquals(wrong.codeName, "PERMISSION_DENIED", wrong.message);
    assert(!wrong.message.includes("not-the-password-xyz"), "the password is not in the error");
    assert(!d.logs().includes("not-the-password-xyz"), "the password is not in the logs");
    const before = reg.tokenRequests();
    assertEquals(await pull(c, bb.reference, { username: reg.username!, password: reg.password! }), bb.configDigest);
    assert(reg.tokenRequests() - before <= 2, "tokens are reused across the blobs of one pull");
    assert(!d.logs().includes(reg.password!), "the password is not in the logs");
  });
  await t.step("basic auth from the global auth file", async () => {
    await using reg = await startRegistry({ auth: "basic" });
    const bb = await busybox(reg);
    const auth = btoa(`${reg.username}:${reg.password}`);
    await using d = await daemonFor({
      "etc/containers/registries.conf": registriesConf([{ location: reg.host, insecure: true }]),
      "etc/containers/auth.json": JSON.stringify({ auths: { [reg.host]: { auth } } }),
      "etc/davit.conf.d/20-auth.toml": "", // filled below: needs the test dir
    }).then(async (first) => {
      // The auth file path is only known once the directory exists: restart with it configured.
      await first.stop();
      await Deno.writeTextFile(
        `${first.dir}/etc/davit.conf.d/20-auth.toml`,
        `[davit.image]\nglobal_auth_file = "${first.dir}/etc/containers/auth.json"\n`,
      );
      return await startDaemon({ dir: first.dir });
    });
    try {
      using c = d.client();
      assertEquals(await pull(c, bb.reference), bb.configDigest);
    } finally {
      await Deno.remove(d.dir, { recursive: true }).catch(() => {});
    }
  });
  await t.step("TLS with the CA from certs.d; without it the pull fails", async () => {
    await using reg = await startRegistry({ tls: true });
    const bb = await busybox(reg);
    await using plain = await daemonFor({});
    using c0 = plain.client();
    const untrusted = await pullError(c0, bb.reference);
    assert(["UNAVAILABLE", "PERMISSION_DENIED", "INTERNAL"].includes(untrusted.codeName), untrusted.message);
    const ca = await Deno.readTextFile(reg.caFile!);
    await using d = await daemonFor({ [`etc/containers/certs.d/${reg.host}/ca.crt`]: ca });
    using c = d.client();
    assertEquals(await pull(c, bb.reference), bb.configDigest);
  });
});

Deno.test("registries.conf: mirrors first, then the primary; blocked registries refused", async (t) => {
  await using primary = await startRegistry();
  await using mirror = await startRegistry();
  const onMirror = await busybox(mirror, { name: "busybox", tag: "mirrored" });
  const deadHost = "127.0.0.1:9"; // discard port: nothing listens
  await using d = await daemonFor({
    "etc/containers/registries.conf": registriesConf([
      { prefix: "example.invalid", location: deadHost, insecure: true, mirrors: [mirror.host] },
      { location: primary.host, insecure: true, blocked: true },
    ]),
  });
  using c = d.client();
  await t.step("an image only on the mirror is pulled from it and keeps its requested name", async () => {
    assertEquals(await pull(c, "example.invalid/busybox:mirrored"), onMirror.configDigest);
    const st = await c.call("ImageStatus", { image: { image: "example.invalid/busybox:mirrored" } });
    assertEquals(st.image.repo_tags, ["example.invalid/busybox:mirrored"]);
  });
  await t.step("a blocked registry is PERMISSION_DENIED naming it", async () => {
    const err = await pullError(c, `${primary.host}/busybox:1`);
    assertEquals(err.codeName, "PERMISSION_DENIED");
    assertStringIncludes(err.message, "blocked");
  });
});

Deno.test("signature policy: reject, and cosign signatures checked with a public key", async (t) => {
  await using reg = await startRegistry();
  const s = await signed(reg);
  const policy = (keyPath: string) =>
    JSON.stringify({
      default: [{ type: "reject" }],
      transports: {
        docker: {
          [`${reg.host}/signed`]: [{ type: "sigstoreSigned", keyPath, signedIdentity: { type: "matchRepository" } }],
        },
      },
    });
  const first = await daemonFor({
    "etc/containers/registries.conf": registriesConf([{ location: reg.host, insecure: true }]),
  });
  await first.stop();
  await Deno.writeTextFile(`${first.dir}/etc/containers/key.pub`, s.publicKeyPem);
  await Deno.writeTextFile(`${first.dir}/etc/containers/policy.json`, policy(`${first.dir}/etc/containers/key.pub`));
  await using d = await startDaemon({ dir: first.dir });
  using c = d.client();
  try {
    await t.step("the signed image is accepted", async () => {
      assertEquals(await pull(c, s.signed.reference), s.signed.configDigest);
    });
    await t.step("an unsigned image is refused by the sigstoreSigned requirement, nothing stored", async () => {
      const err = await pullError(c, s.unsigned.reference);
      assertEquals(err.codeName, "PERMISSION_DENIED");
      assertStringIncludes(err.message, "sigstoreSigned");
      const st = await c.call("ImageStatus", { image: { image: s.unsigned.reference } });
      assertEquals(st.image, null);
    });
    await t.step("an image signed with another key is refused", async () => {
      const err = await pullError(c, s.wrongKey.reference);
      assertEquals(err.codeName, "PERMISSION_DENIED");
    });
    await t.step("the default reject requirement refuses everything else, naming it", async () => {
      await busybox(reg);
      const err = await pullError(c, `${reg.host}/busybox:latest`);
      assertEquals(err.codeName, "PERMISSION_DENIED");
      assertStringIncludes(err.message, '"reject"');
    });
  } finally {
    await Deno.remove(first.dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("broken and hostile images fail with a clear error and store nothing", async (t) => {
  await using reg = await startRegistry();
  const sentinel = await Deno.makeTempDir({ prefix: "davit-sentinel-" });
  try {
    await Deno.writeTextFile(`${sentinel}/hardlink-target`, "do not link me\n");
    const bad = await corrupt(reg);
    const wrong = await wrongDiffId(reg);
    const h = await hostile(reg, { sentinelDir: sentinel });
    await using d = await daemonFor({
      "etc/containers/registries.conf": registriesConf([{ location: reg.host, insecure: true }]),
    });
    using c = d.client();
    await t.step("a blob whose bytes do not match its digest", async () => {
      const err = await pullError(c, bad.reference);
      assertStringIncludes(err.message, "digest");
      await assertNothingStored(d);
    });
    await t.step("a layer whose uncompressed digest is not the config's diff_id", async () => {
      const err = await pullError(c, wrong.reference);
      assertStringIncludes(err.message, "diff_id");
      await assertNothingStored(d);
    });
    const { crossLayerSymlink, ...refused } = h.images;
    await t.step("a symlink planted by an earlier layer is not followed by a later one", async () => {
      // Each layer is extracted into a directory of its own, so the later layer's "link/pwned" is a plain path
      // inside that layer: the image is stored and its files stay inside its root filesystem.
      assertEquals(await pull(c, crossLayerSymlink.reference), crossLayerSymlink.configDigest);
      await c.call("RemoveImage", { image: { image: crossLayerSymlink.reference } });
      await assertNothingStored(d);
    });
    for (const [name, img] of Object.entries(refused)) {
      await t.step(`hostile layer: ${name}`, async () => {
        const err = await pullError(c, img.reference);
        assertEquals(err.codeName, "INVALID_ARGUMENT", err.message);
        await assertNothingStored(d);
      });
    }
    await t.step("nothing was written outside", async () => {
      for (const p of h.mustNotExist) assert(!(await Deno.lstat(p).then(() => true, () => false)), `${p} exists`);
      assertEquals((await Deno.lstat(h.hardlinkTarget)).nlink, 1);
      assertEquals((await Deno.lstat("/etc/passwd")).nlink, 1);
      const besideTmp = `${d.root}/overlay/${h.shallowEscapeName}`;
      assert(!(await Deno.lstat(besideTmp).then(() => true, () => false)));
      assertEquals([...Deno.readDirSync(sentinel)].map((e) => e.name), ["hardlink-target"]);
    });
  } finally {
    await Deno.remove(sentinel, { recursive: true });
  }
});

Deno.test("network faults: resume after a dropped connection, no-progress timeout, one fetch per blob", async (t) => {
  await using reg = await startRegistry();
  const img = await big(reg, {
    totalMB: 24,
    layers: 3,
    cacheDir: "/var/tmp/davit-test-cache",
    name: "big",
    tag: "faults",
  });
  await t.step("a blob response cut midway resumes with a Range request", async () => {
    await using proxy = startFaultyProxy(reg, { dropAfterBytes: 1_000_000, dropTimes: 1 });
    await using d = await daemonFor({
      "etc/containers/registries.conf": registriesConf([{ location: proxy.host, insecure: true }]),
    });
    using c = d.client();
    assertEquals(await pull(c, `${proxy.host}/big:faults`), img.configDigest);
    const ranged = proxy.requests().filter((r) => r.range !== undefined && r.digest);
    assert(ranged.length >= 1, "at least one resumed request carried Range");
  });
  await t.step("a stalled download is cancelled after pull_progress_timeout", async () => {
    await using proxy = startFaultyProxy(reg, { stallAfterBytes: 100_000 });
    await using d = await daemonFor({
      "etc/containers/registries.conf": registriesConf([{ location: proxy.host, insecure: true }]),
      "etc/davit.conf.d/30-progress.toml": '[davit.image]\npull_progress_timeout = "2s"\n',
    });
    using c = d.client();
    const err = await pullError(c, `${proxy.host}/big:faults`);
    assertEquals(err.codeName, "DEADLINE_EXCEEDED", err.message);
    assertStringIncludes(err.message, "no progress");
    await assertNothingStored(d);
  });
  await t.step("concurrent pulls of overlapping images fetch each blob once", async () => {
    await using proxy = startFaultyProxy(reg, {});
    const a = await busybox(reg, { name: "share-a", tag: "1" });
    await busybox(reg, { name: "share-b", tag: "1" });
    await using d = await daemonFor({
      "etc/containers/registries.conf": registriesConf([{ location: proxy.host, insecure: true }]),
    });
    using c = d.client();
    const refs = [
      `${proxy.host}/share-a:1`,
      `${proxy.host}/share-b:1`,
      `${proxy.host}/share-a:1`,
      `${proxy.host}/big:faults`,
    ];
    const ids = await Promise.all(refs.map((r) => pull(c, r)));
    assertEquals(ids[0], a.configDigest);
    for (const [digest, n] of Object.entries(proxy.blobGetCounts())) {
      assertEquals(n, 1, `blob ${digest} fetched ${n} times`);
    }
  });
});

Deno.test("SIGKILL mid-pull leaves no half layer after restart", async () => {
  await using reg = await startRegistry();
  await big(reg, { totalMB: 64, layers: 4, cacheDir: "/var/tmp/davit-test-cache", name: "big", tag: "kill" });
  await using proxy = startFaultyProxy(reg, { stallAfterBytes: 8_000_000 });
  const first = await daemonFor({
    "etc/containers/registries.conf": registriesConf([{ location: proxy.host, insecure: true }]),
  });
  try {
    const c = first.client();
    const pulling = c.call("PullImage", { image: { image: `${proxy.host}/big:kill` } }).catch(() => undefined);
    // Wait until some layer bytes have landed in a temporary directory, then kill.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && [...Deno.readDirSync(`${first.root}/overlay/tmp`)].length === 0) {
      await new Promise((r) => setTimeout(r, 20));
    }
    first.kill("SIGKILL");
    await first.status;
    await pulling;
    c.close();
    await using second = await startDaemon({ dir: first.dir });
    assertEquals([...Deno.readDirSync(`${second.root}/overlay/tmp`)], []);
    assertEquals([...Deno.readDirSync(`${second.root}/overlay/layers`)], []);
    using c2 = second.client();
    assertEquals((await c2.call("ListImages", {})).images, []);
  } finally {
    await first.stop();
    await Deno.remove(first.dir, { recursive: true }).catch(() => {});
  }
});
