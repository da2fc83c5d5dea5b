// Pod files: hostname/hosts/resolv.conf renderers (table tests), writers, and the /dev/shm tmpfs (needs root).
import { InvalidArgument } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import {
  mountPodShm,
  podFilePaths,
  removePodFiles,
  renderHostname,
  renderHosts,
  renderResolvConf,
  unmountPodShm,
  updatePodHosts,
  writePodFiles,
} from "./pod_files.ts";

const LOCALHOST = [
  "127.0.0.1\tlocalhost",
  "::1\tlocalhost ip6-localhost ip6-loopback",
  "fe00::0\tip6-localnet",
  "fe00::0\tip6-mcastprefix",
  "fe00::1\tip6-allnodes",
  "fe00::2\tip6-allrouters",
];

Deno.test("renderHosts", async (t) => {
  const cases: [string, Parameters<typeof renderHosts>[0], string[]][] = [
    ["before networking", { hostname: "web-0" }, LOCALHOST],
    ["one IP", { hostname: "web-0", ips: ["10.88.0.5"] }, [...LOCALHOST, "10.88.0.5\tweb-0"]],
    [
      "dual stack and extra entries",
      { hostname: "web-0", ips: ["10.88.0.5", "fd00::5"], extra: [{ ip: "10.0.0.1", names: ["db", "db.local"] }] },
      [...LOCALHOST, "10.88.0.5\tweb-0", "fd00::5\tweb-0", "10.0.0.1\tdb db.local"],
    ],
  ];
  for (const [name, input, lines] of cases) {
    await t.step(name, () => assertEquals(renderHosts(input), lines.join("\n") + "\n"));
  }
  await t.step("refuses whitespace in entries", () => {
    assertThrows(() => renderHosts({ hostname: "h", ips: ["10.0.0.1\n1.2.3.4 evil"] }), InvalidArgument);
  });
});

Deno.test("renderResolvConf", async (t) => {
  const cases: [string, Parameters<typeof renderResolvConf>[0], string][] = [
    ["empty", { servers: [], searches: [], options: [] }, ""],
    ["servers only", { servers: ["10.96.0.10"], searches: [], options: [] }, "nameserver 10.96.0.10\n"],
    [
      "kubelet-style",
      {
        servers: ["10.96.0.10", "fd00::a"],
        searches: ["default.svc.cluster.local", "svc.cluster.local"],
        options: ["ndots:5", "edns0"],
      },
      "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\n" +
      "options ndots:5 edns0\n",
    ],
  ];
  for (const [name, input, want] of cases) await t.step(name, () => assertEquals(renderResolvConf(input), want));
  await t.step("refuses injected lines", () => {
    assertThrows(
      () => renderResolvConf({ servers: ["1.1.1.1\nnameserver 6.6.6.6"], searches: [], options: [] }),
      InvalidArgument,
    );
  });
});

Deno.test("renderHostname", () => {
  assertEquals(renderHostname("web-0"), "web-0\n");
  assertThrows(() => renderHostname("a b"), InvalidArgument);
});

Deno.test("pod files: written, hosts updated in place, removed", async () => {
  const runroot = await Deno.makeTempDir({ prefix: "davit-podfiles-" });
  try {
    const hostResolv = `${runroot}/host-resolv.conf`;
    await Deno.writeTextFile(hostResolv, "nameserver 192.0.2.53\n");
    const paths = await writePodFiles(runroot, "p1", { hostname: "web-0", hostResolvConf: hostResolv });
    assertEquals(paths, podFilePaths(runroot, "p1"));
    assertEquals(await Deno.readTextFile(paths.hostname), "web-0\n");
    assertEquals(await Deno.readTextFile(paths.resolvConf), "nameserver 192.0.2.53\n");
    const inode = (await Deno.stat(paths.hosts)).ino;
    await updatePodHosts(runroot, "p1", { hostname: "web-0", ips: ["10.88.0.5"] });
    assertEquals((await Deno.stat(paths.hosts)).ino, inode, "bind mounts of the file must see the update");
    assert((await Deno.readTextFile(paths.hosts)).endsWith("10.88.0.5\tweb-0\n"));

    await writePodFiles(runroot, "p2", { hostname: "h", dns: { servers: ["10.96.0.10"], searches: [], options: [] } });
    assertEquals(await Deno.readTextFile(podFilePaths(runroot, "p2").resolvConf), "nameserver 10.96.0.10\n");

    await removePodFiles(runroot, "p1");
    await removePodFiles(runroot, "p1");
    assertEquals([...Deno.readDirSync(`${runroot}/pods/p1`)], []);
  } finally {
    await Deno.remove(runroot, { recursive: true });
  }
});

Deno.test("pod /dev/shm: a sized tmpfs, unmounted idempotently", async () => {
  const runroot = await Deno.makeTempDir({ prefix: "davit-podshm-" });
  const mountsUnder = () =>
    Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter((l) => l.split(" ")[4]?.startsWith(runroot));
  try {
    const path = await mountPodShm(runroot, "p1", { sizeBytes: 8 << 20 });
    assertEquals(await mountPodShm(runroot, "p1", { sizeBytes: 8 << 20 }), path);
    const [line, ...more] = mountsUnder();
    assertEquals(more, []);
    assert(line !== undefined && line.includes(` ${path} `) && line.includes(" - tmpfs shm "), line);
    assert(/size=8192k/.test(line) && /nosuid,nodev,noexec/.test(line), line);
    assertEquals((await Deno.stat(path)).mode! & 0o7777, 0o1777);
    await Deno.writeTextFile(`${path}/x`, "data");
    await assertRejects(() => mountPodShm(runroot, "p2", { sizeBytes: 0 }), InvalidArgument);
    await unmountPodShm(runroot, "p1");
    assertEquals(mountsUnder(), []);
    await unmountPodShm(runroot, "p1");
  } finally {
    await unmountPodShm(runroot, "p1").catch(() => {});
    await Deno.remove(runroot, { recursive: true });
  }
});
