// Monitor processes shared by pods, end to end through the CRI with real runc and busybox: with
// monitor_pods_per_process = 2, the daemon keeps a spare monitor ready, the first pod lands on it (no process
// start-up on RunPodSandbox), the second pod joins the same process, a third goes to a new spare. A pod removed
// leaves its neighbour's container running and logging; a daemon killed with SIGKILL and restarted reads the
// placement back from the pid files and puts the next pod on the process with room. Once every pod is gone and
// the daemon stopped, no monitor process is left.
import { assert, assertEquals, assertNotEquals } from "./assert.ts";
import type { CriClient } from "./cri_client.ts";
import { spareMonitorPids, startDaemon, type TestDaemon } from "./daemon.ts";
import { container, logLines, pod, type PodRef, registryFiles, removeAllPods, status, waitFor } from "./cri_helpers.ts";
import { startRegistry } from "./fixtures/registry.ts";
import { busybox } from "./fixtures/images.ts";

const COUNTER = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done";

function monitorPid(d: TestDaemon, podId: string): number {
  return Number(Deno.readTextFileSync(`${d.runroot}/mon/${podId.slice(0, 32)}/monitor.pid`).split(" ")[0]);
}

/** Pids of live monitor processes started by this daemon (by their command line). */
function monitorProcesses(d: TestDaemon): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      const state = Deno.readTextFileSync(`/proc/${e.name}/stat`).split(") ")[1]?.[0];
      if (cmdline.includes("monitor") && cmdline.includes(d.runroot) && state !== "Z") out.push(Number(e.name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function oneSpare(d: TestDaemon): Promise<number> {
  return await waitFor("a spare monitor with its pid file", () => {
    const pids = [...spareMonitorPids(d.runroot)].filter((pid) => {
      try {
        return Deno.readDirSync(`${d.runroot}/mon`).some((e) =>
          e.name.startsWith("spare-") &&
          Deno.readTextFileSync(`${d.runroot}/mon/${e.name}/monitor.pid`).startsWith(`${pid} `)
        );
      } catch {
        return false;
      }
    });
    return Promise.resolve(pids.length === 1 ? pids[0] : undefined);
  });
}

async function lineCount(path: string): Promise<number> {
  return (await logLines(path)).length;
}

async function growing(path: string): Promise<void> {
  const before = await lineCount(path);
  await waitFor(`${path} to grow`, async () => (await lineCount(path)) >= before + 3);
}

Deno.test("monitor processes shared by pods: placement, a neighbour removed, a daemon restart", async (t) => {
  await using reg = await startRegistry();
  const files = {
    ...registryFiles(reg),
    "etc/davit.conf.d/50-sharing.toml": "[davit.runtime]\nmonitor_pods_per_process = 2\n",
  };
  const first = await startDaemon({ files });
  const dir = first.dir;
  const logDir = `${dir}/pod-logs-sharing`;
  let c: CriClient = first.client();
  let d: TestDaemon = first;
  try {
    const image = (await busybox(reg)).reference;
    await c.call("PullImage", { image: { image } });
    let a: PodRef, b: PodRef, pc: PodRef;
    let shared = 0, third = 0;
    let bLog = "";

    await t.step("the first pod lands on the spare, the second joins it, a third gets a new spare", async () => {
      const spare = await oneSpare(d);
      a = await pod(c, "share-a", logDir);
      assertEquals(monitorPid(d, a.id), spare);
      b = await pod(c, "share-b", logDir);
      shared = monitorPid(d, b.id);
      assertEquals(shared, spare);
      // The process is full (2 pods): a new spare is started for the next pod.
      const next = await oneSpare(d);
      assertNotEquals(next, shared);
      pc = await pod(c, "share-c", logDir);
      third = monitorPid(d, pc.id);
      assertEquals(third, next);
    });

    await t.step("containers of two pods on one process log; removing one pod leaves the other running", async () => {
      const ca = await container(c, a!, "count-a", image, ["sh", "-c", COUNTER]);
      const cb = await container(c, b!, "count-b", image, ["sh", "-c", COUNTER]);
      await c.call("StartContainer", { container_id: ca });
      await c.call("StartContainer", { container_id: cb });
      bLog = `${logDir}/count-b.log`;
      await growing(`${logDir}/count-a.log`);
      await growing(bLog);
      await c.call("StopPodSandbox", { pod_sandbox_id: a!.id });
      await c.call("RemovePodSandbox", { pod_sandbox_id: a!.id });
      assertEquals((await status(c, cb)).state, "CONTAINER_RUNNING");
      await growing(bLog);
      assertEquals(monitorPid(d, b!.id), shared);
      // Every line is whole and in order: nothing lost while the neighbour went away.
      const lines = await logLines(bLog);
      lines.forEach(([stream, tag, text], i) => assertEquals([stream, tag, text], ["stdout", "F", `line-${i}`]));
    });

    await t.step("a daemon killed and restarted puts the next pod on a process with room", async () => {
      c.close();
      d.kill("SIGKILL");
      await d.status;
      d = await startDaemon({ dir, files: {} });
      c = d.client();
      await growing(bLog);
      const pd = await pod(c, "share-d", logDir);
      // Both processes have room for one more (pod b's and pod c's): either takes it, no new one is started.
      assert([shared, third].includes(monitorPid(d, pd.id)), `${monitorPid(d, pd.id)} is not ${shared} or ${third}`);
      const cd = await container(c, pd, "echo-d", image, ["sh", "-c", "echo hello-d"]);
      await c.call("StartContainer", { container_id: cd });
      await waitFor("echo-d to exit", async () => (await status(c, cd)).state === "CONTAINER_EXITED");
      assertEquals(await logLines(`${logDir}/echo-d.log`), [["stdout", "F", "hello-d"]]);
    });

    await t.step("ten pods at once are packed two to a process", async () => {
      const many = await Promise.all(Array.from({ length: 10 }, (_, i) => pod(c, `burst-${i}`, logDir)));
      const all = (await c.call("ListPodSandbox", {})).items.map((x: { id: string }) => x.id);
      assertEquals(all.length, 13);
      const perPid = new Map<number, number>();
      for (const id of all) perPid.set(monitorPid(d, id), (perPid.get(monitorPid(d, id)) ?? 0) + 1);
      // 13 pods: six full processes and one with a single pod; none over its 2.
      assert([...perPid.values()].every((n) => n <= 2), JSON.stringify([...perPid]));
      assertEquals([...perPid.values()].filter((n) => n === 1).length, 1, JSON.stringify([...perPid]));
      for (const p of many) {
        assertEquals((await c.call("PodSandboxStatus", { pod_sandbox_id: p.id })).status.state, "SANDBOX_READY");
      }
    });

    await t.step("with every pod removed and the daemon stopped, no monitor process is left", async () => {
      await removeAllPods(c);
      assertEquals((await c.call("ListPodSandbox", {})).items, []);
      // One process stays as the spare while the daemon runs.
      await waitFor("only the spare left", () => Promise.resolve(monitorProcesses(d).length === 1));
      c.close();
      assertEquals(await d.stop(), 0);
      await waitFor("the spare to exit", () => Promise.resolve(monitorProcesses(d).length === 0));
      const left = [...Deno.readDirSync(`${d.runroot}/mon`)].map((e) => e.name);
      assertEquals(left, []);
    });
  } finally {
    await removeAllPods(c).catch(() => {});
    c.close();
    await d[Symbol.asyncDispose]();
    if (d !== first) await first.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    assert(monitorProcesses(d).length === 0, "no monitor process left");
  }
});
