// End to end: the stats RPCs through a real daemon with real runc and cgroups: CPU time and its rate, memory,
// writable-layer usage, the filters, pod-level process counts, and NOT_FOUND for unknown IDs.
import { assert, assertEquals } from "./assert.ts";
import type { Msg } from "./cri_client.ts";
import { startDaemon } from "./daemon.ts";
import { failure, registryFiles, removeAllPods, waitFor } from "./cri_helpers.ts";
import { startRegistry } from "./fixtures/registry.ts";
import { busybox } from "./fixtures/images.ts";

const MB5 = 5 * 1024 * 1024;

Deno.test("container and pod stats", async (t) => {
  const reg = await startRegistry();
  try {
    const bb = (await busybox(reg)).reference;
    await using d = await startDaemon({
      files: {
        ...registryFiles(reg),
      },
    });
    using c = d.client();
    await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
    await c.call("PullImage", { image: { image: bb } });
    const logDir = `${d.dir}/logs`;
    const pod = async (name: string, labels: Msg = {}) => {
      const config = { metadata: { name, namespace: "test", uid: `uid-${name}` }, log_directory: logDir, labels };
      return { id: (await c.call("RunPodSandbox", { config })).pod_sandbox_id as string, config };
    };
    const container = async (p: { id: string; config: Msg }, name: string, script: string, labels: Msg) => {
      const config = {
        metadata: { name },
        image: { image: bb },
        log_path: `${name}.log`,
        command: ["sh", "-c", script],
        labels,
      };
      const id = (await c.call("CreateContainer", { pod_sandbox_id: p.id, config, sandbox_config: p.config }))
        .container_id as string;
      await c.call("StartContainer", { container_id: id });
      return id;
    };
    const stats = async (id: string): Promise<Msg> => (await c.call("ContainerStats", { container_id: id })).stats;

    const p = await pod("stats", { team: "a" });
    const other = await pod("other", { team: "b" });
    // The trap lets a stop end the loop at once rather than after the grace period.
    const busy = await container(p, "busy", "trap 'exit 0' TERM; while :; do :; done", { role: "busy" });
    const writer = await container(
      p,
      "writer",
      "dd if=/dev/zero of=/big bs=1048576 count=5 && touch /done && exec sleep 3600",
      { role: "writer" },
    );
    const idle = await container(other, "idle", "exec sleep 3600", { role: "idle" });

    await t.step("ContainerStats: CPU time grows, the rate appears on the second call, memory in use", async () => {
      const first = await stats(busy);
      assertEquals(first.attributes.id, busy);
      assertEquals(first.attributes.metadata.name, "busy");
      assertEquals(first.attributes.labels, { role: "busy" });
      const cpu1 = first.cpu.usage_core_nano_seconds.value;
      assert(cpu1 > 0, `CPU time ${cpu1}`);
      assert(first.cpu.timestamp > 0);
      await new Promise((r) => setTimeout(r, 500));
      const second = await stats(busy);
      const cpu2 = second.cpu.usage_core_nano_seconds.value;
      assert(cpu2 > cpu1, `CPU time grew: ${cpu1} -> ${cpu2}`);
      // A busy loop uses about one core; allow for a loaded host.
      const rate = second.cpu.usage_nano_cores?.value ?? 0;
      assert(rate > 50_000_000, `usage_nano_cores ${rate}`);
      assert(second.memory.working_set_bytes.value > 0, `working set ${JSON.stringify(second.memory)}`);
      assert(second.memory.usage_bytes.value > 0);
    });

    await t.step("ContainerStats: the writable layer holds the 5 MB file", async () => {
      const s = await waitFor(
        "the writer's 5 MB",
        async () => {
          const s = await stats(writer);
          return s.writable_layer?.used_bytes?.value >= MB5 && s.writable_layer.inodes_used.value >= 2 ? s : undefined;
        },
        20_000,
        100,
      );
      assertEquals(s.writable_layer.fs_id.mountpoint, `${d.dir}/root/containers`);
      assert(s.writable_layer.timestamp > 0);
    });

    await t.step("ListContainerStats filters by pod, label and ID", async () => {
      const ids = async (filter: Msg) =>
        ((await c.call("ListContainerStats", { filter })).stats as Msg[]).map((s) => s.attributes.id).sort();
      assertEquals(await ids({}), [busy, writer, idle].sort());
      assertEquals(await ids({ pod_sandbox_id: p.id }), [busy, writer].sort());
      assertEquals(await ids({ pod_sandbox_id: other.id }), [idle]);
      assertEquals(await ids({ label_selector: { role: "writer" } }), [writer]);
      assertEquals(await ids({ pod_sandbox_id: other.id, label_selector: { role: "writer" } }), []);
      assertEquals(await ids({ id: busy }), [busy]);
      const all = (await c.call("ListContainerStats", {})).stats as Msg[];
      assert(all.every((s) => s.cpu.timestamp > 0));
    });

    await t.step("PodSandboxStats: the pod's cgroup, both containers, process count", async () => {
      const s = (await c.call("PodSandboxStats", { pod_sandbox_id: p.id })).stats;
      assertEquals(s.attributes.id, p.id);
      assertEquals(s.attributes.metadata.name, "stats");
      assertEquals(s.attributes.labels, { team: "a" });
      assertEquals((s.linux.containers as Msg[]).map((x) => x.attributes.id).sort(), [busy, writer].sort());
      assert(s.linux.process.process_count.value >= 2, `process count ${s.linux.process.process_count.value}`);
      assert(s.linux.cpu.usage_core_nano_seconds.value > 0);
      assert(s.linux.memory.working_set_bytes.value > 0);
    });

    await t.step("ListPodSandboxStats filters by ID and label", async () => {
      const ids = async (filter: Msg) =>
        ((await c.call("ListPodSandboxStats", { filter })).stats as Msg[]).map((s) => s.attributes.id).sort();
      assertEquals(await ids({}), [p.id, other.id].sort());
      assertEquals(await ids({ label_selector: { team: "b" } }), [other.id]);
      assertEquals(await ids({ id: p.id }), [p.id]);
      assertEquals(await ids({ label_selector: { team: "c" } }), []);
    });

    await t.step("unknown IDs are NOT_FOUND, naming them", async () => {
      const e1 = await failure(c.call("ContainerStats", { container_id: "nosuchcontainer" }));
      assertEquals(e1.codeName, "NOT_FOUND");
      assert(e1.details.includes("nosuchcontainer"), e1.details);
      const e2 = await failure(c.call("PodSandboxStats", { pod_sandbox_id: "nosuchpod" }));
      assertEquals(e2.codeName, "NOT_FOUND");
      assert(e2.details.includes("nosuchpod"), e2.details);
    });

    await t.step("an exited container still answers, with its attributes", async () => {
      await c.call("StopContainer", { container_id: busy, timeout: 5 });
      const s = await stats(busy);
      assertEquals(s.attributes.id, busy);
      assert(s.cpu.timestamp > 0);
    });

    for (const id of [p.id, other.id]) await c.call("RemovePodSandbox", { pod_sandbox_id: id });
    assertEquals((await c.call("ListContainerStats", {})).stats, []);
  } finally {
    await reg.stop();
  }
});
