// End to end: shared PID namespaces through a real daemon and real runc. A pod with pid POD gets an infra process
// from the pause image (pulled by RunPodSandbox itself; here a busybox image whose command sleeps), its containers
// see each other and the infra as PID 1; a TARGET container joins another container's namespace; refusals carry the
// right codes; stop and remove, a pause image that cannot be pulled, and SIGKILL of the daemon mid-RunPodSandbox
// leave nothing behind.
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import type { CriClient, Msg } from "./cri_client.ts";
import { spareMonitorPids, startDaemon, type TestDaemon } from "./daemon.ts";
import { failure, type PodRef, registryFiles, removeAllPods, waitFor } from "./cri_helpers.ts";
import { startRegistry, type TestRegistry } from "./fixtures/registry.ts";
import { builtFromParts, busybox, BUSYBOX_PATH, busyboxLayer, pushImage } from "./fixtures/images.ts";
import { expectedTree, makeConfig, makeManifest } from "./fixtures/oci.ts";
import { pushPauseImage } from "./bench/pause_image.ts";

/** The pause image's command line as /proc shows it (Entrypoint /bin/sleep, Cmd 2147483647). */
const PAUSE_CMDLINE = "/bin/sleep 2147483647";

interface Env {
  reg: TestRegistry;
  bb: string;
  pause: string;
}

async function setup(reg: TestRegistry): Promise<Env> {
  const bb = (await busybox(reg)).reference;
  const pause = (await pushPauseImage(reg)).reference;
  return { reg, bb, pause };
}

function daemonFiles(env: Env, pauseImage = env.pause): Record<string, string> {
  return {
    ...registryFiles(env.reg),
    "etc/davit.conf.d/20-pause.toml": `[davit.image]\npause_image = "${pauseImage}"\n`,
  };
}

type Pod = PodRef;

async function runPod(c: CriClient, name: string, pid: string): Promise<Pod> {
  const config = {
    metadata: { name, namespace: "test", uid: `uid-${name}` },
    hostname: name,
    linux: { security_context: { namespace_options: { network: "POD", pid, ipc: "POD" } } },
  };
  return { id: (await c.call("RunPodSandbox", { config })).pod_sandbox_id, config };
}

async function run(c: CriClient, p: Pod, name: string, image: string, command: string[], ns: Msg): Promise<string> {
  const config = {
    metadata: { name },
    image: { image },
    command,
    linux: { security_context: { namespace_options: { network: "POD", ipc: "POD", ...ns } } },
  };
  const id = (await c.call("CreateContainer", { pod_sandbox_id: p.id, config, sandbox_config: p.config }))
    .container_id;
  await c.call("StartContainer", { container_id: id });
  return id;
}

/** The processes a container sees: pid -> command line, from its /proc (busybox has no ps). */
async function processes(c: CriClient, id: string): Promise<Map<number, string>> {
  const script = 'for p in /proc/[0-9]*; do printf "%s " "${p#/proc/}"; cat "$p/cmdline"; echo; done';
  const r = await c.call("ExecSync", { container_id: id, cmd: ["sh", "-c", script] });
  const out = new Map<number, string>();
  for (const line of new TextDecoder().decode(r.stdout).split("\n")) {
    const m = /^(\d+) (.*)$/.exec(line);
    if (m) out.set(Number(m[1]), m[2]!.replaceAll("\0", " ").trim());
  }
  return out;
}

async function containerPid(c: CriClient, id: string): Promise<number> {
  return JSON.parse((await c.call("ContainerStatus", { container_id: id, verbose: true })).info.info).pid;
}

async function podInfo(c: CriClient, id: string): Promise<Msg> {
  return JSON.parse((await c.call("PodSandboxStatus", { pod_sandbox_id: id, verbose: true })).info.info);
}

async function nsLink(pid: number): Promise<string> {
  return await Deno.readLink(`/proc/${pid}/ns/pid`);
}

async function runcKnows(): Promise<string[]> {
  const out = await new Deno.Command("runc", { args: ["--root", "/run/runc", "list", "-q"], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
}

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir)).catch(() => [])).map((e) => e.name);
}

const CGROUP_DIRS = ["/sys/fs/cgroup/memory/davit", "/sys/fs/cgroup/pids/davit", "/sys/fs/cgroup/davit"];

/** Every pod or container ID a daemon's log names (IDs of pods whose RunPodSandbox was cut short included). */
function idsIn(log: string): string[] {
  return [...new Set(log.match(/\b[0-9a-f]{64}\b/g) ?? [])];
}

/**
 * Everything of `ids` (pods and containers) or of the daemon's directories still on the host. Scoped by ID and
 * directory: other tests on the host may have pods, cgroups and runc containers of their own meanwhile.
 */
async function leftovers(d: TestDaemon, ids: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const line of (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")) {
    const point = line.split(" ")[4] ?? "";
    // The daemon keeps <runroot>/ns as one private bind mount while it runs.
    if (line.includes(d.dir) && point !== `${d.runroot}/ns`) out.push(`mount: ${point}`);
  }
  for (const kind of ["net", "ipc", "uts"]) {
    for (const e of await entries(`${d.runroot}/ns/${kind}`)) out.push(`ns ${kind}: ${e}`);
  }
  for (const e of await entries(`${d.root}/containers`)) out.push(`rootfs: ${e}`);
  for (const e of await entries(`${d.runroot}/containers`)) out.push(`bundle: ${e}`);
  const spares = spareMonitorPids(d.runroot);
  for (const e of await entries("/proc")) {
    if (!/^\d+$/.test(e) || spares.has(Number(e))) continue;
    const cmdline = (await Deno.readTextFile(`/proc/${e}/cmdline`).catch(() => "")).replaceAll("\0", " ").trim();
    if (cmdline.includes("monitor") && cmdline.includes(d.runroot)) out.push(`monitor process ${e}`);
    if (cmdline === PAUSE_CMDLINE) out.push(`infra process ${e}`);
  }
  const known = await runcKnows();
  for (const id of new Set([...ids, ...idsIn(d.logs())])) {
    if (known.includes(id)) out.push(`runc state: ${id}`);
    for (const dir of CGROUP_DIRS) {
      for (const name of [`davit-pod-${id}`, `davit-${id}`]) {
        if (await Deno.stat(`${dir}/${name}`).then(() => true, () => false)) out.push(`cgroup: ${dir}/${name}`);
      }
    }
  }
  return out;
}

Deno.test("shared PID namespaces: pid POD through an infra process, pid TARGET, refusals, stop and remove", async (t) => {
  await using reg = await startRegistry();
  const env = await setup(reg);
  await using d = await startDaemon({ files: daemonFiles(env) });
  using c = d.client();
  await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
  await c.call("PullImage", { image: { image: env.bb } });
  const ids: string[] = [];

  let shared: Pod = { id: "", config: {} };
  let infraPid = 0;
  await t.step("RunPodSandbox with pid POD pulls the pause image and starts the infra process", async () => {
    assertEquals((await c.call("ImageStatus", { image: { image: env.pause } })).image, null);
    shared = await runPod(c, "shared", "POD");
    ids.push(shared.id);
    assert((await c.call("ImageStatus", { image: { image: env.pause } })).image !== null);
    const info = await podInfo(c, shared.id);
    infraPid = info.infra.pid;
    assert(infraPid > 0, JSON.stringify(info));
    assertEquals(info.infra.id, shared.id);
    const cmdline = await Deno.readTextFile(`/proc/${infraPid}/cmdline`);
    assertEquals(cmdline.replaceAll("\0", " ").trim(), PAUSE_CMDLINE);
    // In a PID namespace of its own, inside the pod's network namespace.
    assert((await nsLink(infraPid)) !== (await Deno.readLink("/proc/self/ns/pid")));
    assertEquals((await Deno.stat(`/proc/${infraPid}/ns/net`)).ino, (await Deno.stat(info.namespaces.net)).ino);
    // Internal: not a container anyone lists.
    assertEquals((await c.call("ListContainers", {})).containers, []);
  });

  let a = "", b = "";
  await t.step("two pid POD containers see each other's processes, and PID 1 is the infra", async () => {
    a = await run(c, shared, "a", env.bb, ["sleep", "1001"], { pid: "POD" });
    b = await run(c, shared, "b", env.bb, ["sleep", "1002"], { pid: "POD" });
    ids.push(a, b);
    for (const id of [a, b]) {
      const seen = await processes(c, id);
      assertEquals(seen.get(1), PAUSE_CMDLINE);
      const cmds = [...seen.values()];
      assert(cmds.includes("sleep 1001") && cmds.includes("sleep 1002"), JSON.stringify([...seen]));
      assertEquals(await nsLink(await containerPid(c, id)), await nsLink(infraPid));
    }
    assertEquals((await c.call("ListContainers", {})).containers.map((x: Msg) => x.id).sort(), [a, b].sort());
  });

  await t.step("a pid CONTAINER container of the same pod sees only itself", async () => {
    const own = await run(c, shared, "own", env.bb, ["sleep", "1003"], { pid: "CONTAINER" });
    ids.push(own);
    const seen = await processes(c, own);
    assertEquals(seen.get(1), "sleep 1003");
    assert(![...seen.values()].includes(PAUSE_CMDLINE));
  });

  let plain: Pod = { id: "", config: {} };
  let app = "";
  await t.step("pid TARGET joins the target container's PID namespace", async () => {
    plain = await runPod(c, "plain", "CONTAINER");
    ids.push(plain.id);
    assertEquals((await podInfo(c, plain.id)).infra, undefined);
    app = await run(c, plain, "app", env.bb, ["sleep", "3003"], { pid: "CONTAINER" });
    const debug = await run(c, plain, "debug", env.bb, ["sleep", "4004"], { pid: "TARGET", target_id: app });
    ids.push(app, debug);
    const seen = await processes(c, debug);
    assertEquals(seen.get(1), "sleep 3003");
    assert([...seen.values()].includes("sleep 4004"));
    assertEquals(await nsLink(await containerPid(c, debug)), await nsLink(await containerPid(c, app)));
    // A target given by a unique ID prefix works too, and a target in the shared pod reaches the infra's namespace.
    const viaPrefix = await run(c, shared, "debug-a", env.bb, ["sleep", "4005"], {
      pid: "TARGET",
      target_id: a.slice(0, 12),
    });
    ids.push(viaPrefix);
    assertEquals((await processes(c, viaPrefix)).get(1), PAUSE_CMDLINE);
  });

  await t.step("refusals: missing, stopped or foreign targets; POD in a pod without a shared namespace", async () => {
    const create = (p: Pod, name: string, ns: Msg) =>
      c.call("CreateContainer", {
        pod_sandbox_id: p.id,
        config: {
          metadata: { name },
          image: { image: env.bb },
          command: ["sleep", "1"],
          linux: { security_context: { namespace_options: ns } },
        },
        sandbox_config: p.config,
      });
    const missing = await failure(create(plain, "t-missing", { pid: "TARGET", target_id: "0badc0de" }));
    assertEquals(missing.codeName, "NOT_FOUND");
    assertStringIncludes(missing.details, "target_id");
    assertStringIncludes(missing.details, "0badc0de");
    const empty = await failure(create(plain, "t-empty", { pid: "TARGET" }));
    assertEquals(empty.codeName, "INVALID_ARGUMENT");
    assertStringIncludes(empty.details, "target_id");
    const foreign = await failure(create(plain, "t-foreign", { pid: "TARGET", target_id: a }));
    assertEquals(foreign.codeName, "FAILED_PRECONDITION");
    assertStringIncludes(foreign.details, a);
    const stoppedId = await run(c, plain, "stopped", env.bb, ["sleep", "1000"], { pid: "CONTAINER" });
    ids.push(stoppedId);
    await c.call("StopContainer", { container_id: stoppedId, timeout: 0 });
    const stopped = await failure(create(plain, "t-stopped", { pid: "TARGET", target_id: stoppedId }));
    assertEquals(stopped.codeName, "FAILED_PRECONDITION");
    assertStringIncludes(stopped.details, stoppedId);
    assertStringIncludes(stopped.details, "exited");
    const noShared = await failure(create(plain, "p-noshared", { pid: "POD" }));
    assertEquals(noShared.codeName, "FAILED_PRECONDITION");
    assertStringIncludes(noShared.details, "pid POD");
    // Nothing of the refused containers stays behind.
    const names = (await c.call("ListContainers", {})).containers.map((x: Msg) => x.metadata.name);
    assertEquals(names.filter((n: string) => n.startsWith("t-") || n.startsWith("p-")), []);
  });

  await t.step("StopPodSandbox stops the containers, then the infra; RemovePodSandbox leaves nothing", async () => {
    await c.call("StopPodSandbox", { pod_sandbox_id: shared.id });
    for (const id of [a, b]) {
      assertEquals((await c.call("ContainerStatus", { container_id: id })).status.state, "CONTAINER_EXITED");
    }
    await waitFor(
      "the infra process to go",
      async () => !(await Deno.stat(`/proc/${infraPid}`).then(() => 1, () => 0)),
    );
    assertEquals((await podInfo(c, shared.id)).infra.stopped, true);
    // Creating a container in a stopped pod is refused (the pod is not ready).
    const late = await failure(c.call("CreateContainer", {
      pod_sandbox_id: shared.id,
      config: { metadata: { name: "late" }, image: { image: env.bb }, command: ["true"] },
      sandbox_config: shared.config,
    }));
    assertEquals(late.codeName, "FAILED_PRECONDITION");
    await c.call("StopPodSandbox", { pod_sandbox_id: shared.id });
    await c.call("RemovePodSandbox", { pod_sandbox_id: shared.id });
    await c.call("RemovePodSandbox", { pod_sandbox_id: shared.id });
    await c.call("RemovePodSandbox", { pod_sandbox_id: plain.id });
    assertEquals((await c.call("ListPodSandbox", {})).items, []);
    assertEquals(await leftovers(d, ids), []);
  });

  await t.step("the pause image is in use while an infra runs from it", async () => {
    const p = await runPod(c, "inuse", "POD");
    ids.push(p.id);
    const img = (await c.call("ImageStatus", { image: { image: env.pause } })).image;
    const err = await failure(c.call("RemoveImage", { image: { image: img.id } }));
    assertEquals(err.codeName, "FAILED_PRECONDITION");
    assertStringIncludes(err.details, p.id);
    await c.call("RemovePodSandbox", { pod_sandbox_id: p.id });
    assertEquals(await leftovers(d, ids), []);
  });
});

Deno.test("an infra process that dies takes its pod out of ready; the pod is then stopped and removed cleanly", async () => {
  await using reg = await startRegistry();
  const env = await setup(reg);
  await using d = await startDaemon({ files: daemonFiles(env) });
  using c = d.client();
  await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
  await c.call("PullImage", { image: { image: env.bb } });
  const p = await runPod(c, "doomed", "POD");
  const ctr = await run(c, p, "app", env.bb, ["sleep", "1005"], { pid: "POD" });
  const infraPid = (await podInfo(c, p.id)).infra.pid;
  const state = async () => (await c.call("PodSandboxStatus", { pod_sandbox_id: p.id })).status.state;
  assertEquals(await state(), "SANDBOX_READY");
  Deno.kill(infraPid, "SIGKILL");
  // The PID namespace's init is gone: the kernel kills the container in it too.
  await waitFor("the container to be reported exited", async () => {
    const st = (await c.call("ContainerStatus", { container_id: ctr })).status;
    return st.state === "CONTAINER_EXITED" ? st : undefined;
  });
  assertEquals(await state(), "SANDBOX_NOTREADY");
  const notReady = await c.call("ListPodSandbox", { filter: { state: { state: "SANDBOX_NOTREADY" } } });
  assertEquals(notReady.items.map((x: Msg) => x.id), [p.id]);
  assertEquals((await c.call("ListPodSandbox", { filter: { state: { state: "SANDBOX_READY" } } })).items, []);
  assertStringIncludes(d.logs(), "infra process died");
  await c.call("StopPodSandbox", { pod_sandbox_id: p.id });
  await c.call("RemovePodSandbox", { pod_sandbox_id: p.id });
  assertEquals(await leftovers(d, [p.id, ctr]), []);
});

Deno.test("a pause image that cannot be pulled refuses pid POD pods only, naming pause_image", async () => {
  await using reg = await startRegistry();
  const env = await setup(reg);
  // Nothing listens on port 1: the node is as good as air-gapped for this image.
  const unreachable = "127.0.0.1:1/pause:3.10";
  await using d = await startDaemon({ files: daemonFiles(env, unreachable) });
  using c = d.client();
  await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
  const err = await failure(runPod(c, "airgapped", "POD"));
  assert(["FAILED_PRECONDITION", "UNAVAILABLE"].includes(err.codeName), err.message);
  assertStringIncludes(err.details, "pause_image");
  assertStringIncludes(err.details, unreachable);
  assertEquals((await c.call("ListPodSandbox", {})).items, []);
  // Pods that do not share a PID namespace never need the pause image.
  const p = await runPod(c, "unshared", "CONTAINER");
  await c.call("RemovePodSandbox", { pod_sandbox_id: p.id });
  assertEquals(await leftovers(d, [p.id]), []);
});

Deno.test("a pause image with nothing to run fails RunPodSandbox cleanly, network included", async () => {
  await using reg = await startRegistry();
  const env = await setup(reg);
  const layer = busyboxLayer();
  const config = makeConfig([layer.diffId], { config: { Env: [BUSYBOX_PATH] } });
  const idle = builtFromParts("idle", makeManifest([layer], config), expectedTree([layer.entries]));
  const ref = (await pushImage(reg, idle, { name: "idle", tag: "1" })).reference;
  await using d = await startDaemon({ files: daemonFiles(env, ref) });
  using c = d.client();
  await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
  const err = await failure(runPod(c, "idle", "POD"));
  assertEquals(err.codeName, "FAILED_PRECONDITION");
  assertStringIncludes(err.details, "pause_image");
  assertEquals((await c.call("ListPodSandbox", {})).items, []);
  // The loopback plugin ran beside the infra's creation; its DEL ran in the rollback.
  assertStringIncludes(d.logs(), "command=DEL");
  assertEquals(await leftovers(d, []), []);
});

Deno.test("SIGKILL of the daemon during RunPodSandbox of a pid POD pod leaks nothing", async (t) => {
  await using reg = await startRegistry();
  const env = await setup(reg);
  const first = await startDaemon({ files: daemonFiles(env) });
  const dir = first.dir;
  try {
    {
      using c = first.client();
      // Pulled beforehand, so the kills land in the infra's creation rather than in the pull.
      await c.call("PullImage", { image: { image: env.pause } });
    }
    await first.stop();
    const logs: string[] = [];
    // Kill points: fixed delays, and the moments the infra's pieces appear (root filesystem, bundle, runtime state).
    const triggers: [string, (d: TestDaemon) => Promise<boolean>][] = [
      ...[0, 30, 80, 150, 250, 400].map((ms): [string, (d: TestDaemon) => Promise<boolean>] => {
        let start = 0;
        return [`${ms} ms in`, () => {
          start ||= Date.now();
          return Promise.resolve(Date.now() - start >= ms);
        }];
      }),
      ["when the infra's root filesystem appears", async (d) => (await entries(`${d.root}/containers`)).length > 0],
      ["when the infra's bundle appears", async (d) => (await entries(`${d.runroot}/containers`)).length > 0],
      ["when runc knows the infra", async (d) => {
        const pods = idsIn(d.logs());
        return (await runcKnows()).some((id) => pods.includes(id));
      }],
    ];
    for (const [i, [name, ready]] of triggers.entries()) {
      await t.step(`killed ${name}, then restarted`, async () => {
        const d = await startDaemon({ dir, files: daemonFiles(env) });
        const c = d.client();
        const call = runPod(c, `crash-${i}`, "POD").catch(() => undefined);
        const deadline = Date.now() + 10_000;
        while (!(await ready(d)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
        d.kill("SIGKILL");
        await d.status;
        logs.push(d.logs());
        await call;
        c.close();
        await using again = await startDaemon({ dir, files: daemonFiles(env) });
        using c2 = again.client();
        const pods = (await c2.call("ListPodSandbox", {})).items;
        for (const p of pods) {
          // A pod finished before the kill is whole, with a running infra: remove it the normal way.
          assertEquals(p.state, "SANDBOX_READY");
          assert((await podInfo(c2, p.id)).infra.pid > 0);
          await c2.call("RemovePodSandbox", { pod_sandbox_id: p.id });
        }
        const left = await leftovers(again, logs.flatMap(idsIn));
        if (name.includes("appears")) {
          // These kill points come well before the pod is ready: recovery, not RemovePodSandbox, undid the infra.
          assertStringIncludes(again.logs(), "removing a pod whose creation was interrupted");
        }
        assertEquals(left, [], again.logs().slice(-4000));
      });
    }
  } finally {
    await first.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
