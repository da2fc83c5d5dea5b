// End to end: a pod whose monitor is killed with SIGKILL stays truthful and usable. Its containers outlive the
// monitor; the daemon starts a new monitor, follows the old containers through runc's state (exit code unknown:
// 255, reason Error, a message saying why), stops them through runc, refuses what needs their lost stdio, runs new
// containers normally, and removes everything; the same after a daemon restart.
import { assert, assertEquals } from "./assert.ts";
import type { CriClient, Msg } from "./cri_client.ts";
import { spareMonitorPids, startDaemon, type TestDaemon } from "./daemon.ts";
import { container, exited, failure, type PodRef, registryFiles, status, waitFor } from "./cri_helpers.ts";
import { startRegistry } from "./fixtures/registry.ts";
import { busybox } from "./fixtures/images.ts";
import { UNKNOWN_EXIT_MESSAGE } from "../cri/orphans.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Pod = PodRef;

/** A process that exists and is not a zombie (this VM's init does not reap orphans: their zombies stay). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function monitorDir(d: TestDaemon, podId: string): string {
  return `${d.runroot}/mon/${podId.slice(0, 32)}`;
}

function monitorPid(d: TestDaemon, podId: string): number {
  // "PID START_TIME" (the start time tells the monitor from a later process with its pid).
  return Number(Deno.readTextFileSync(`${monitorDir(d, podId)}/monitor.pid`).trim().split(" ")[0]);
}

/** SIGKILLs the pod's monitor and waits until it is dead; returns its pid. */
async function killMonitor(d: TestDaemon, podId: string): Promise<number> {
  const pid = monitorPid(d, podId);
  assert(alive(pid), `monitor ${pid} runs`);
  Deno.kill(pid, "SIGKILL");
  await waitFor("the monitor to die", () => Promise.resolve(!alive(pid)));
  return pid;
}

interface Scene {
  pod: Pod;
  /** Exited with 5 before the monitor was killed: its exit file is the truth. */
  early: string;
  /** Exits with 3 four seconds after its start, while no monitor is its parent. */
  short: string;
  shortStartedAt: bigint;
  /** Runs until stopped. */
  sleeper: string;
  /** Created, never started. */
  idle: string;
  /** Host pids of the containers that outlive the monitor. */
  pids: number[];
}

async function prepare(c: CriClient, d: TestDaemon, image: string, name: string): Promise<Scene> {
  await c.call("PullImage", { image: { image } });
  const config = {
    metadata: { name, namespace: "test", uid: `uid-${name}` },
    hostname: name,
    log_directory: `${d.dir}/logs`,
  };
  const pod = { id: (await c.call("RunPodSandbox", { config })).pod_sandbox_id, config };
  const early = await container(c, pod, "early", image, ["sh", "-c", "echo early; exit 5"]);
  await c.call("StartContainer", { container_id: early });
  assertEquals((await exited(c, early)).exit_code, 5);
  const short = await container(c, pod, "short", image, ["sh", "-c", "sleep 4; exit 3"]);
  const sleeper = await container(c, pod, "sleeper", image, ["sleep", "1000"]);
  const idle = await container(c, pod, "idle", image, ["sleep", "1000"]);
  await c.call("StartContainer", { container_id: short });
  await c.call("StartContainer", { container_id: sleeper });
  const shortStartedAt = BigInt((await status(c, short)).started_at);
  const pids: number[] = [];
  for (const id of [short, sleeper, idle]) {
    const info = (await c.call("ContainerStatus", { container_id: id, verbose: true })).info;
    pids.push(JSON.parse(info.info).pid);
  }
  assert(pids.every((p) => p > 0 && alive(p)), `container processes run: ${pids}`);
  return { pod, early, short, shortStartedAt, sleeper, idle, pids };
}

/** What the pod left behind after RemovePodSandbox. */
async function leftovers(d: TestDaemon, scene: Scene, ids: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const pid of scene.pids) if (alive(pid)) out.push(`process ${pid}`);
  const runc = await new Deno.Command("runc", { args: ["--root", "/run/runc", "list", "-q"], stdout: "piped" })
    .output();
  const known = new TextDecoder().decode(runc.stdout).split("\n");
  for (const id of ids) if (known.includes(id)) out.push(`runc state of ${id}`);
  for (const line of (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")) {
    const point = line.split(" ")[4] ?? "";
    // The daemon keeps <runroot>/ns as one bind mount while it runs.
    if (point.startsWith(d.dir) && point !== `${d.runroot}/ns`) out.push(`mount ${point}`);
  }
  for (const ctl of await Array.fromAsync(Deno.readDir("/sys/fs/cgroup"))) {
    const dir = `/sys/fs/cgroup/${ctl.name}/davit/davit-pod-${scene.pod.id}`;
    if (await Deno.stat(dir).then(() => true, () => false)) out.push(`cgroup ${dir}`);
  }
  if (await Deno.stat(monitorDir(d, scene.pod.id)).then(() => true, () => false)) out.push("monitor directory");
  // The process that served the pod may stay on as the daemon's spare, serving no pod.
  const spares = spareMonitorPids(d.runroot);
  for (const e of await Array.fromAsync(Deno.readDir("/proc"))) {
    if (!/^\d+$/.test(e.name) || !alive(Number(e.name)) || spares.has(Number(e.name))) continue;
    const cmdline = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (cmdline.includes("monitor") && cmdline.includes(scene.pod.id)) out.push(`monitor process ${e.name}`);
  }
  return out;
}

/** Removes the pod when the scope ends, whatever happened in the steps (pods outlive daemons by design). */
function podRemover(c: CriClient, podId: string): AsyncDisposable {
  return {
    [Symbol.asyncDispose]: async () => {
      await c.call("RemovePodSandbox", { pod_sandbox_id: podId }).catch(() => {});
    },
  };
}

/** The checks both tests make once the monitor is dead and the short container has had time to end. */
async function checkAfterCrash(t: Deno.TestContext, c: CriClient, d: TestDaemon, scene: Scene, image: string) {
  await t.step("the sleeper runs; an exit recorded before the crash keeps its real code", async () => {
    assertEquals((await status(c, scene.sleeper)).state, "CONTAINER_RUNNING");
    const early = await status(c, scene.early);
    assertEquals([early.state, early.exit_code, early.reason], ["CONTAINER_EXITED", 5, "Error"]);
    assertEquals((await status(c, scene.idle)).state, "CONTAINER_CREATED");
  });
  await t.step("the short container's exit: code 255, reason Error, a message saying why", async () => {
    const s = await exited(c, scene.short);
    assertEquals([s.exit_code, s.reason], [255, "Error"]);
    assert(s.message.startsWith(UNKNOWN_EXIT_MESSAGE), s.message);
    const finished = BigInt(s.finished_at);
    assert(
      finished >= scene.shortStartedAt + 3_900_000_000n,
      `finished ${finished - scene.shortStartedAt} ns after start`,
    );
  });
  await t.step("attach, reopening the log and starting the never-started one are refused; exec works", async () => {
    const att = await failure(c.call("Attach", { container_id: scene.sleeper, stdout: true }));
    assertEquals(att.codeName, "FAILED_PRECONDITION");
    assert(att.message.includes("monitor"), att.message);
    const reopen = await failure(c.call("ReopenContainerLog", { container_id: scene.sleeper }));
    assertEquals(reopen.codeName, "FAILED_PRECONDITION");
    const start = await failure(c.call("StartContainer", { container_id: scene.idle }));
    assertEquals(start.codeName, "FAILED_PRECONDITION");
    assert(start.message.includes("monitor"), start.message);
    const r = await c.call("ExecSync", { container_id: scene.sleeper, cmd: ["echo", "still here"], timeout: 10 });
    assertEquals(new TextDecoder().decode(r.stdout), "still here\n");
  });
  await t.step("StopContainer stops the sleeper through runc: SIGTERM, then SIGKILL after the timeout", async () => {
    const t0 = Date.now();
    await c.call("StopContainer", { container_id: scene.sleeper, timeout: 2 });
    const took = Date.now() - t0;
    // sleep is the init of its pid namespace and has no SIGTERM handler: only SIGKILL ends it.
    assert(took >= 1900, `stop took ${took} ms`);
    const s = await status(c, scene.sleeper);
    assertEquals([s.state, s.exit_code, s.reason], ["CONTAINER_EXITED", 255, "Error"]);
    assert(s.message.includes("StopContainer sent SIGTERM, then SIGKILL"), s.message);
    assert(!alive(scene.pids[1]!), "the sleeper's process is gone");
    await c.call("StopContainer", { container_id: scene.sleeper, timeout: 2 });
  });
  await t.step("a new container runs and logs normally through the new monitor", async () => {
    const id = await container(c, scene.pod, "after", image, ["sh", "-c", "echo after the crash; exit 4"]);
    await c.call("StartContainer", { container_id: id });
    const s = await exited(c, id);
    assertEquals([s.exit_code, s.reason, s.message], [4, "Error", ""]);
    const log = await Deno.readTextFile(s.log_path);
    assert(/^\S+ stdout F after the crash\n$/.test(log), log);
    assert(alive(monitorPid(d, scene.pod.id)), "a monitor serves the pod again");
  });
}

/** The last step of both tests. */
async function removeAndCheck(t: Deno.TestContext, c: CriClient, d: TestDaemon, scene: Scene, count: number) {
  await t.step("RemovePodSandbox removes everything", async () => {
    const ids = (await c.call("ListContainers", {})).containers.map((x: Msg) => x.id);
    assertEquals(ids.length, count);
    await c.call("RemovePodSandbox", { pod_sandbox_id: scene.pod.id });
    assertEquals((await c.call("ListContainers", {})).containers, []);
    assertEquals(await leftovers(d, scene, ids), []);
  });
}

Deno.test("a pod's monitor killed with SIGKILL: its containers are followed through runc", async (t) => {
  const reg = await startRegistry();
  try {
    await using d = await startDaemon({ files: registryFiles(reg) });
    using c = d.client();
    const image = (await busybox(reg)).reference;
    const scene = await prepare(c, d, image, "crash");
    await using _pod = podRemover(c, scene.pod.id);
    const old = await killMonitor(d, scene.pod.id);
    await t.step("ContainerStatus still answers, and a new monitor serves the pod", async () => {
      assertEquals((await status(c, scene.sleeper)).state, "CONTAINER_RUNNING");
      const pid = monitorPid(d, scene.pod.id);
      assert(pid !== old && alive(pid), `new monitor ${pid}`);
    });
    await t.step("the short container's end is noticed by the background check, without a call", async () => {
      // Nobody looks at it until well after it ended; its finish time still comes from the 2 s poll.
      await sleep(Math.max(0, Number(scene.shortStartedAt / 1_000_000n) + 9000 - Date.now()));
      const s = await status(c, scene.short);
      const after = BigInt(s.finished_at) - scene.shortStartedAt;
      assert(after >= 3_900_000_000n && after <= 7_000_000_000n, `finished ${after} ns after its start`);
    });
    await checkAfterCrash(t, c, d, scene, image);
    await t.step("killed again, with CreateContainer the first call: it starts a new monitor", async () => {
      const before = await killMonitor(d, scene.pod.id);
      const id = await container(c, scene.pod, "again", image, ["sh", "-c", "echo again"]);
      const pid = monitorPid(d, scene.pod.id);
      assert(pid !== before && alive(pid), `new monitor ${pid}`);
      await c.call("StartContainer", { container_id: id });
      const s = await exited(c, id);
      assertEquals([s.exit_code, s.reason], [0, "Completed"]);
      assert(/^\S+ stdout F again\n$/.test(await Deno.readTextFile(s.log_path)));
      // Exited before the second kill: its exit file is still the truth.
      const after = (await c.call("ListContainers", { filter: { pod_sandbox_id: scene.pod.id } })).containers
        .find((x: Msg) => x.metadata.name === "after");
      const st = await status(c, after.id);
      assertEquals([st.exit_code, st.message], [4, ""]);
    });
    await removeAndCheck(t, c, d, scene, 6);
  } finally {
    await reg.stop();
  }
});

Deno.test("a pod's monitor killed, then the daemon killed and restarted: the same truth", async (t) => {
  const reg = await startRegistry();
  const first = await startDaemon({ files: registryFiles(reg) });
  try {
    const image = (await busybox(reg)).reference;
    const c1 = first.client();
    const scene = await prepare(c1, first, image, "crash2");
    c1.close();
    await killMonitor(first, scene.pod.id);
    first.kill("SIGKILL");
    await first.status;
    // The short container ends while neither a daemon nor its monitor runs.
    await sleep(Math.max(0, Number(scene.shortStartedAt / 1_000_000n) + 5000 - Date.now()));
    await using second = await startDaemon({ dir: first.dir });
    using c = second.client();
    await using _pod = podRemover(c, scene.pod.id);
    await checkAfterCrash(t, c, second, scene, image);
    await removeAndCheck(t, c, second, scene, 5);
  } finally {
    await first.stop();
    await Deno.remove(first.dir, { recursive: true }).catch(() => {});
    await reg.stop();
  }
});
