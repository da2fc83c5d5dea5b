// Pod namespaces: the pure argv builder, then real pinned namespaces (needs root, util-linux, iproute2, runc)
// joined by a runc container, and removal that leaves no mount behind.
import { InvalidArgument } from "../lib/errors.ts";
import { MNT, umount2 } from "../lib/libc.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { makeBusyboxBundle } from "./oci_runtime_conformance.ts";
import {
  checkHostname,
  createPodNamespaces,
  listPinnedNamespaces,
  podNamespaceArgv,
  podNamespacePaths,
  removePodNamespaces,
} from "./pod_namespaces.ts";
import { planPodSysctls } from "./pod_sysctls.ts";
import { RuncLikeRuntime } from "./runc_like_runtime.ts";

const decoder = new TextDecoder();

Deno.test("podNamespacePaths", async (t) => {
  const cases: [string, object, string[]][] = [
    ["own namespaces", {}, ["net", "ipc", "uts"]],
    ["host network shares net and uts", { hostNetwork: true }, ["ipc"]],
    ["host IPC", { hostIpc: true }, ["net", "uts"]],
    ["both", { hostNetwork: true, hostIpc: true }, []],
  ];
  for (const [name, opts, kinds] of cases) {
    await t.step(name, () => {
      const paths = podNamespacePaths("/run/davit", "p1", opts);
      assertEquals(Object.keys(paths).sort(), [...kinds].sort());
      for (const k of kinds) assertEquals(paths[k as "net"], `/run/davit/ns/${k}/p1`);
    });
  }
  await t.step("bad pod ID", () => void assertThrows(() => podNamespacePaths("/r", "../x"), InvalidArgument));
});

Deno.test("podNamespaceArgv", async (t) => {
  await t.step("all namespaces, sysctls as arguments", () => {
    const argv = podNamespaceArgv(podNamespacePaths("/r", "p"), {
      hostname: "web-0",
      sysctls: planPodSysctls({ "net.ipv4.ip_forward": "1", "kernel.shmmni": "$(reboot)" }),
    });
    assertEquals(argv.slice(0, 5), ["unshare", "--net=/r/ns/net/p", "--ipc=/r/ns/ipc/p", "--uts=/r/ns/uts/p", "--"]);
    assertEquals(argv.slice(5, 7), ["sh", "-c"]);
    const script = argv[7] ?? "";
    assert(script.includes("/proc/sys/kernel/hostname") && script.includes("ip link set lo up"), script);
    assert(!script.includes("reboot") && !script.includes("web-0"), "values never go into the script");
    assertEquals(argv.slice(8), ["davit-pod-ns", "web-0", "net/ipv4/ip_forward", "1", "kernel/shmmni", "$(reboot)"]);
  });
  await t.step("IPC only: no hostname, no loopback, no sysctl loop", () => {
    const argv = podNamespaceArgv(podNamespacePaths("/r", "p", { hostNetwork: true }), {
      hostname: "h",
      sysctls: [],
      tools: { unshare: "/usr/bin/unshare", sh: "/bin/sh" },
    });
    assertEquals(argv, ["/usr/bin/unshare", "--ipc=/r/ns/ipc/p", "--", "/bin/sh", "-c", "set -e", "davit-pod-ns", "h"]);
  });
});

Deno.test("checkHostname", async (t) => {
  for (const ok of ["a", "web-0", "pod.example.com", "x".repeat(64)]) {
    await t.step(`ok ${ok.slice(0, 10)}`, () => checkHostname(ok));
  }
  for (const bad of ["", "-a", "a-", "a b", "a_b", "x".repeat(65), "a;reboot"]) {
    await t.step(
      `bad ${JSON.stringify(bad.slice(0, 10))}`,
      () => void assertThrows(() => checkHostname(bad), InvalidArgument),
    );
  }
});

async function run(args: string[]): Promise<string> {
  const out = await new Deno.Command(args[0]!, { args: args.slice(1), stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

function mountsUnder(dir: string): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter((l) => l.split(" ")[4]?.startsWith(dir));
}

Deno.test("pod namespaces: pinned, joined by a runc container, removed", async (t) => {
  const runroot = await Deno.makeTempDir({ prefix: "davit-podns-" });
  const podId = "p" + crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const runtime = new RuncLikeRuntime({ name: "runc", path: "/usr/sbin/runc", root: `${runroot}/runc` });
  const cid = `davit-podns-${podId}`;
  try {
    const paths = await createPodNamespaces(runroot, podId, {
      hostname: "pod-one",
      sysctls: { "net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "1000" },
    });

    await t.step("pinned and set up", async () => {
      assertEquals(Object.keys(paths).sort(), ["ipc", "net", "uts"]);
      assertEquals(mountsUnder(`${runroot}/ns/`).length, 3);
      assertEquals((await run(["nsenter", `--uts=${paths.uts}`, "hostname"])).trim(), "pod-one");
      const links = await run(["nsenter", `--net=${paths.net}`, "ip", "-o", "link"]);
      assertEquals(links.trim().split("\n").length, 1, links);
      assert(/^1: lo: <LOOPBACK,UP,LOWER_UP>/.test(links), links);
      const port = await run(["nsenter", `--net=${paths.net}`, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]);
      assertEquals(port.trim(), "80");
      assertEquals((await run(["nsenter", `--ipc=${paths.ipc}`, "cat", "/proc/sys/kernel/shmmni"])).trim(), "1000");
      assert(Deno.readTextFileSync("/proc/sys/kernel/shmmni").trim() !== "1000", "the host's value is untouched");
      // The namespace directory is a private mount.
      const nsMount = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").find((l) =>
        l.split(" ")[4] === `${runroot}/ns`
      );
      assert(nsMount !== undefined && !nsMount.includes("shared:"), nsMount);
    });

    await t.step("a second create of the same pod is AlreadyExists", async () => {
      await assertRejects(() => createPodNamespaces(runroot, podId, { hostname: "x" }), Error, "already has");
    });

    await t.step("listPinnedNamespaces", async () => {
      const list = await listPinnedNamespaces(runroot);
      assertEquals(list.map((p) => [p.podId, p.kind, p.mounted]), [
        [podId, "ipc", true],
        [podId, "net", true],
        [podId, "uts", true],
      ]);
    });

    await t.step("a runc container joining them sees the pod's hostname, links and sysctls", async () => {
      const bundle = await makeBusyboxBundle(`${runroot}/bundle`, {
        args: ["sleep", "1000"],
        edit: (c) => {
          delete c.hostname;
          c.linux.namespaces = [
            { type: "pid" },
            { type: "mount" },
            { type: "network", path: paths.net },
            { type: "ipc", path: paths.ipc },
            { type: "uts", path: paths.uts },
          ];
        },
      });
      await runtime.create(cid, { bundle, pidFile: `${runroot}/pid` });
      await runtime.start(cid);
      const sh = async (script: string) =>
        decoder.decode((await runtime.exec(cid, { args: ["sh", "-c", script] })).stdout).trim();
      assertEquals(await sh("hostname"), "pod-one");
      assertEquals(await sh("ip -o link | cut -d: -f2"), "lo");
      assertEquals(await sh("cat /proc/sys/kernel/shmmni"), "1000");
      const inode = (await Deno.stat(paths.net!)).ino;
      assertEquals(await sh("readlink /proc/self/ns/net"), `net:[${inode}]`);
      await runtime.delete(cid, { force: true });
    });

    await t.step("removal unmounts and deletes, idempotently", async () => {
      await removePodNamespaces(runroot, podId);
      assertEquals(mountsUnder(`${runroot}/ns/`), []);
      assertEquals(await listPinnedNamespaces(runroot), []);
      await removePodNamespaces(runroot, podId);
    });

    await t.step("a leftover file with nothing mounted is listed and removed", async () => {
      Deno.writeFileSync(`${runroot}/ns/net/stale`, new Uint8Array(0));
      assertEquals((await listPinnedNamespaces(runroot)).map((p) => [p.podId, p.mounted]), [["stale", false]]);
      await removePodNamespaces(runroot, "stale");
      assertEquals(await listPinnedNamespaces(runroot), []);
    });

    await t.step("host network and IPC: nothing to pin", async () => {
      assertEquals(
        await createPodNamespaces(runroot, "hostpod", { hostname: "h", hostNetwork: true, hostIpc: true }),
        {},
      );
      await assertRejects(
        () => createPodNamespaces(runroot, "hostpod", { hostname: "h", hostNetwork: true, sysctls: { "net.x": "1" } }),
        InvalidArgument,
      );
    });

    await t.step("a failing setup leaves nothing pinned", async () => {
      await assertRejects(
        () => createPodNamespaces(runroot, "bad", { hostname: "h", sysctls: { "net.ipv4.no_such_sysctl": "1" } }),
        Error,
        "Cannot create namespaces",
      );
      assertEquals(mountsUnder(`${runroot}/ns/`), []);
      assertEquals(await listPinnedNamespaces(runroot), []);
    });
  } finally {
    await runtime.delete(cid, { force: true }).catch(() => {});
    await removePodNamespaces(runroot, podId);
    try {
      umount2(`${runroot}/ns`, MNT.DETACH);
    } catch {
      // never mounted
    }
    assertEquals(mountsUnder(runroot), []);
    await Deno.remove(runroot, { recursive: true });
  }
});
