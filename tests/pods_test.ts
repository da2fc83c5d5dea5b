// End to end: pod sandboxes through a real daemon: namespaces pinned without an infra container, hostname,
// sysctls, /dev/shm, cgroup, status, filters, idempotent stop/remove, retries, and crash recovery.
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import type { CriCallError, CriClient } from "./cri_client.ts";
import { LOOPBACK_NETWORK, spareMonitorPids, startDaemon, type TestDaemon } from "./daemon.ts";

function podConfig(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    metadata: { name, namespace: "test", uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    labels: { app: name, tier: "test" },
    annotations: { note: "made by pods_test" },
    ...extra,
  };
}

async function runPod(c: CriClient, name: string, extra: Record<string, unknown> = {}): Promise<string> {
  return (await c.call("RunPodSandbox", { config: podConfig(name, extra) })).pod_sandbox_id;
}

async function sh(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).trim();
}

const CGROUPS_AT_START = new Set(
  [...(() => {
    try {
      return Deno.readDirSync("/sys/fs/cgroup/memory/davit");
    } catch {
      return [];
    }
  })()].map((e) => e.name),
);

async function leftovers(d: TestDaemon): Promise<string[]> {
  const out: string[] = [];
  const mounts = await Deno.readTextFile("/proc/self/mountinfo");
  // The daemon keeps <runroot>/ns as one private bind mount while it runs (released at shutdown); more than one
  // would be a leak.
  const nsRoot = mounts.split("\n").filter((l) => l.split(" ")[4] === `${d.runroot}/ns`).length;
  if (nsRoot > 1) out.push(`mount: ${d.runroot}/ns stacked ${nsRoot} times`);
  for (const line of mounts.split("\n")) {
    const point = line.split(" ")[4] ?? "";
    if (line.includes(d.dir) && point !== `${d.runroot}/ns`) out.push(`mount: ${point}`);
  }
  for (const kind of ["net", "ipc", "uts"]) {
    for (const e of await Array.fromAsync(Deno.readDir(`${d.runroot}/ns/${kind}`)).catch(() => [])) {
      out.push(`ns ${kind}: ${e.name}`);
    }
  }
  const spares = spareMonitorPids(d.runroot);
  for (const e of await Array.fromAsync(Deno.readDir("/proc")).catch(() => [])) {
    if (!/^\d+$/.test(e.name) || spares.has(Number(e.name))) continue;
    const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (cmdline.includes("monitor") && cmdline.includes(d.runroot)) out.push(`monitor process ${e.name}`);
  }
  for (const e of await Array.fromAsync(Deno.readDir("/sys/fs/cgroup/memory/davit")).catch(() => [])) {
    // Only this file's pods count: other test files (or a crashed earlier run) may have pods of their own.
    if (e.isDirectory && !CGROUPS_AT_START.has(e.name)) out.push(`cgroup: ${e.name}`);
  }
  return out;
}

Deno.test("pod lifecycle: run, inspect, list, stop, remove", async (t) => {
  await using d = await startDaemon({ files: LOOPBACK_NETWORK });
  using c = d.client();
  let id = "";
  await t.step(
    "RunPodSandbox pins net/ipc/uts namespaces with the hostname and sysctls, no infra process",
    async () => {
      id = await runPod(c, "web", {
        linux: { sysctls: { "net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "1024" } },
      });
      assertEquals(id.length, 64);
      const net = `${d.runroot}/ns/net/${id}`;
      assertEquals(await sh(["nsenter", `--uts=${d.runroot}/ns/uts/${id}`, "hostname"]), "web");
      assertEquals(await sh(["nsenter", `--net=${net}`, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]), "80");
      assertEquals(await sh(["nsenter", `--ipc=${d.runroot}/ns/ipc/${id}`, "cat", "/proc/sys/kernel/shmmni"]), "1024");
      assertStringIncludes(await sh(["nsenter", `--net=${net}`, "ip", "-o", "link", "show", "lo"]), "UP");
      assert((await Deno.readTextFile(`${d.runroot}/pods/${id}/hostname`)).startsWith("web"));
      assertStringIncludes(await Deno.readTextFile("/proc/self/mountinfo"), `${d.runroot}/pods/${id}/shm`);
    },
  );
  await t.step("PodSandboxStatus reports state, metadata, labels, namespace options, handler", async () => {
    const st = await c.call("PodSandboxStatus", { pod_sandbox_id: id, verbose: true });
    assertEquals(st.status.state, "SANDBOX_READY");
    assertEquals(st.status.metadata.name, "web");
    assertEquals(st.status.labels, { app: "web", tier: "test" });
    assertEquals(st.status.annotations, { note: "made by pods_test" });
    assertEquals(st.status.runtime_handler, "runc");
    assertEquals(st.status.linux.namespaces.options.network, "POD");
    assert(Number(BigInt(st.status.created_at) / 1_000_000n) > Date.now() - 60_000);
    assertStringIncludes(JSON.parse(st.info.info).namespaces.net, id);
  });
  await t.step("a retried RunPodSandbox gets the same pod, not a name conflict", async () => {
    assertEquals(await runPod(c, "web"), id);
  });
  await t.step("ListPodSandbox filters by ID prefix, state and labels; StreamPodSandboxes agrees", async () => {
    const other = await runPod(c, "db");
    assertEquals((await c.call("ListPodSandbox", {})).items.length, 2);
    assertEquals(
      (await c.call("ListPodSandbox", { filter: { id: id.slice(0, 12) } })).items.map((p: { id: string }) => p.id),
      [id],
    );
    assertEquals(
      (await c.call("ListPodSandbox", { filter: { label_selector: { app: "db" } } })).items.map((p: { id: string }) =>
        p.id
      ),
      [other],
    );
    const streamed = await c.stream("StreamPodSandboxes", {});
    assertEquals(streamed.flatMap((m) => m.pod_sandboxes).length, 2);
    await c.call("StopPodSandbox", { pod_sandbox_id: other });
    const ready = await c.call("ListPodSandbox", { filter: { state: { state: "SANDBOX_READY" } } });
    assertEquals(ready.items.map((p: { id: string }) => p.id), [id]);
    await c.call("RemovePodSandbox", { pod_sandbox_id: other });
  });
  await t.step("StopPodSandbox and RemovePodSandbox are idempotent and release everything", async () => {
    await c.call("StopPodSandbox", { pod_sandbox_id: id });
    await c.call("StopPodSandbox", { pod_sandbox_id: id });
    assertEquals((await c.call("PodSandboxStatus", { pod_sandbox_id: id })).status.state, "SANDBOX_NOTREADY");
    await c.call("RemovePodSandbox", { pod_sandbox_id: id });
    await c.call("RemovePodSandbox", { pod_sandbox_id: id });
    await c.call("StopPodSandbox", { pod_sandbox_id: id });
    assertEquals(await leftovers(d), []);
    const err = await c.call("PodSandboxStatus", { pod_sandbox_id: id }).catch((e) => e as CriCallError);
    assertEquals(err.codeName, "NOT_FOUND");
  });
});

Deno.test("pod validation: each bad field is INVALID_ARGUMENT naming it, and nothing is left", async (t) => {
  await using d = await startDaemon({ files: LOOPBACK_NETWORK });
  using c = d.client();
  const cases: [string, Record<string, unknown>, string, string?][] = [
    ["no metadata", { metadata: null }, "config.metadata"],
    ["empty name", { metadata: { name: "", namespace: "n", uid: "u" } }, "config.metadata.name"],
    ["bad hostname", { hostname: "Not_A_Host" }, "config.hostname"],
    ["relative log directory", { log_directory: "logs" }, "config.log_directory"],
    ["non-namespaced sysctl", { linux: { sysctls: { "vm.swappiness": "10" } } }, "vm.swappiness"],
    ["unknown runtime handler", {}, "no-such-handler", "no-such-handler"],
  ];
  for (const [name, extra, mentions, handler] of cases) {
    await t.step(name, async () => {
      const err = await c.call("RunPodSandbox", { config: podConfig("bad", extra), runtime_handler: handler ?? "" })
        .catch((e) => e as CriCallError);
      assertEquals(err.codeName, "INVALID_ARGUMENT", err.message);
      assertStringIncludes(err.message, mentions);
      assertEquals((await c.call("ListPodSandbox", {})).items, []);
      assertEquals(await leftovers(d), []);
    });
  }
});

Deno.test("pods survive a daemon restart; SIGKILL during RunPodSandbox leaks nothing", async (t) => {
  const first = await startDaemon({ files: LOOPBACK_NETWORK });
  try {
    const c1 = first.client();
    const keep = await runPod(c1, "keep");
    c1.close();
    first.kill("SIGKILL");
    await first.status;
    await t.step("a pod made before a crash is still ready after restart", async () => {
      await using second = await startDaemon({ dir: first.dir });
      using c = second.client();
      assertEquals((await c.call("PodSandboxStatus", { pod_sandbox_id: keep })).status.state, "SANDBOX_READY");
      await c.call("RemovePodSandbox", { pod_sandbox_id: keep });
    });
    for (const delay of [0, 5, 15, 30, 60]) {
      await t.step(`killed ${delay} ms into RunPodSandbox, then restarted`, async () => {
        const d = await startDaemon({ dir: first.dir });
        const c = d.client();
        const call = c.call("RunPodSandbox", { config: podConfig(`crash-${delay}`) }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, delay));
        d.kill("SIGKILL");
        await d.status;
        await call;
        c.close();
        await using again = await startDaemon({ dir: first.dir });
        using c2 = again.client();
        for (const p of (await c2.call("ListPodSandbox", {})).items) {
          // A pod that was finished before the kill is whole: remove it the normal way.
          assertEquals(p.state, "SANDBOX_READY");
          await c2.call("RemovePodSandbox", { pod_sandbox_id: p.id });
        }
        assertEquals(await leftovers(again), []);
      });
    }
  } finally {
    await first.stop();
    await Deno.remove(first.dir, { recursive: true }).catch(() => {});
  }
});
