/** Tests for CniManager with the recording fake: set-up, rollback, cache use on teardown, check, readiness, GC. */
import { AlreadyExists, FailedPrecondition, NotFound } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { CniManager } from "./cni_manager.ts";
import { type FakePlugin, passthroughPlugin, pluginError, pluginOk, RecordingCniExec } from "./recording_cni_exec.ts";
import type { CacheEntry } from "./result_cache.ts";

const BRIDGE_RESULT = {
  interfaces: [{ name: "eth0", sandbox: "/ns" }],
  ips: [{ address: "10.88.0.9/16", gateway: "10.88.0.1", interface: 0 }, { address: "fd00::9/64", interface: 0 }],
  routes: [],
  dns: {},
};

const CONFIG = {
  cniVersion: "1.0.0",
  name: "podnet",
  plugins: [
    { type: "bridge", bridge: "cni0", capabilities: { ipRanges: true }, ipam: { type: "host-local" } },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};

function pod(id: string, netnsPath = `/run/netns/${id}`) {
  return {
    id,
    name: `name-${id}`,
    namespace: "default",
    uid: `uid-${id}`,
    netnsPath,
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "TCP" }],
  };
}

async function fixture(plugins: Record<string, FakePlugin> = {}) {
  const root = await Deno.makeTempDir({ prefix: "davit-cni-mgr-" });
  const netDir = `${root}/net.d`;
  await Deno.mkdir(netDir);
  const deadNetns = new Set<string>();
  const exec = new RecordingCniExec({
    plugins: {
      loopback: (c) =>
        c.command === "VERSION" ? pluginOk({ supportedVersions: ["0.4.0", "1.0.0"] }) : passthroughPlugin({
          interfaces: [{ name: "lo", sandbox: "/ns" }],
          ips: [{ address: "127.0.0.1/8", interface: 0 }],
        })(c),
      bridge: passthroughPlugin(BRIDGE_RESULT),
      portmap: passthroughPlugin({}),
      ...plugins,
    },
    netns: (p) => p !== "" && !deadNetns.has(p),
  });
  const writeConfig = (c: unknown = CONFIG) => Deno.writeTextFile(`${netDir}/10-podnet.conflist`, JSON.stringify(c));
  const mgr = new CniManager({
    networkDir: netDir,
    pluginDirs: ["/fake/bin"],
    cacheDir: `${root}/cni-cache`,
    exec,
    watch: false,
    pollMs: 60_000,
  });
  const readEntry = async (id: string, network = "podnet"): Promise<CacheEntry | undefined> => {
    try {
      return JSON.parse(await Deno.readTextFile(`${root}/cni-cache/results/${id}/${network}/eth0.json`));
    } catch {
      return undefined;
    }
  };
  return {
    root,
    netDir,
    exec,
    mgr,
    deadNetns,
    writeConfig,
    readEntry,
    [Symbol.asyncDispose]: async () => {
      await mgr.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

Deno.test("CniManager readiness", async (t) => {
  await using f = await fixture();
  await f.mgr.loaded();
  await t.step("not ready without a configuration, naming the directory", () => {
    const s = f.mgr.status();
    assertEquals([s.ok, s.reason], [false, "NetworkPluginNotReady"]);
    assertStringIncludes(s.message, `no valid CNI network configuration in ${f.netDir}`);
  });
  await t.step("setUpPod refuses while not ready", async () => {
    const err = await assertRejects(() => f.mgr.setUpPod(pod("p0")), FailedPrecondition, "Cannot set up the network");
    assertStringIncludes(err.message, f.netDir);
  });
  await t.step("ready after a rescan", async () => {
    await f.writeConfig();
    assertEquals(await f.mgr.rescan(), { ok: true, reason: "", message: "" });
    assertEquals(f.mgr.currentNetwork(), { name: "podnet", path: `${f.netDir}/10-podnet.conflist` });
  });
  await t.step("not ready when the loopback plugin is missing", async () => {
    f.exec.plugins.delete("loopback");
    const s = await f.mgr.rescan();
    assert(!s.ok);
    assertStringIncludes(s.message, 'CNI plugin "loopback" not found in /fake/bin');
  });
});

Deno.test("CniManager set-up, check, teardown", async (t) => {
  await using f = await fixture();
  await f.writeConfig();
  await f.mgr.loaded();
  await t.step("set-up brings lo up, runs the chain, records the attachment", async () => {
    const res = await f.mgr.setUpPod(pod("p1"));
    assertEquals(res.ips, ["10.88.0.9", "fd00::9"]);
    assertEquals(res.network, "podnet");
    assertEquals(f.exec.sequence, ["VERSION loopback", "ADD loopback", "ADD bridge", "ADD portmap"]);
    assertEquals(f.exec.calls[1]!.env.CNI_IFNAME, "lo");
    assertEquals(f.exec.calls[1]!.config.cniVersion, "1.0.0");
    assertEquals(f.exec.calls[2]!.env.CNI_ARGS!.split(";").slice(0, 3), [
      "IgnoreUnknown=1",
      "K8S_POD_NAMESPACE=default",
      "K8S_POD_NAME=name-p1",
    ]);
    const entry = await f.readEntry("p1");
    assertEquals(entry?.state, "added");
    assertEquals(entry?.config, CONFIG);
    assertEquals(entry?.netns, "/run/netns/p1");
    assertEquals(entry?.capabilityArgs, { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] });
    assertEquals((entry?.result?.ips as unknown[]).length, 2);
  });
  await t.step("a second set-up of the same pod is refused", async () => {
    await assertRejects(() => f.mgr.setUpPod(pod("p1")), AlreadyExists, "already attached");
  });
  await t.step("cachedStatus reads the result back", async () => {
    assertEquals((await f.mgr.cachedStatus("p1"))?.ips, ["10.88.0.9", "fd00::9"]);
    assertEquals(await f.mgr.cachedStatus("nope"), undefined);
    assertEquals(await f.mgr.cachedPods(), ["p1"]);
  });
  await t.step("check runs CHECK with the cached result", async () => {
    f.exec.calls.length = 0;
    await f.mgr.checkPod(pod("p1"));
    assertEquals(f.exec.sequence, ["CHECK bridge", "CHECK portmap"]);
    assertEquals((f.exec.calls[0]!.config.prevResult as { ips: unknown[] }).ips.length, 2);
    await assertRejects(() => f.mgr.checkPod(pod("zz")), NotFound);
  });
  await t.step("teardown after a configuration change uses the cached configuration", async () => {
    await f.writeConfig({ cniVersion: "1.0.0", name: "othernet", plugins: [{ type: "bridge", bridge: "br9" }] });
    await f.mgr.rescan();
    f.exec.calls.length = 0;
    await f.mgr.tearDownPod(pod("p1"));
    assertEquals(f.exec.sequence, ["DEL portmap", "DEL bridge", "DEL loopback"]);
    const del = f.exec.calls[1]!;
    assertEquals([del.config.name, del.config.bridge, del.env.CNI_NETNS], ["podnet", "cni0", "/run/netns/p1"]);
    assertEquals((del.config.prevResult as { ips: unknown[] }).ips.length, 2);
    assertEquals(f.exec.calls[0]!.config.runtimeConfig, {
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
    });
    assertEquals(await f.readEntry("p1"), undefined);
    assertEquals(await f.mgr.cachedPods(), []);
  });
  await t.step("teardown again, without a cache entry, DELs with the current configuration", async () => {
    f.exec.calls.length = 0;
    await f.mgr.tearDownPod({ id: "p1", name: "name-p1", namespace: "default", uid: "uid-p1" });
    assertEquals(f.exec.sequence, ["DEL bridge"]);
    assertEquals(f.exec.calls[0]!.config.name, "othernet");
    assert(!("CNI_NETNS" in f.exec.calls[0]!.env));
  });
  await t.step("a namespace already gone is not passed to DEL and lo is left alone", async () => {
    await f.writeConfig();
    await f.mgr.rescan();
    await f.mgr.setUpPod(pod("p2"));
    f.deadNetns.add("/run/netns/p2");
    f.exec.calls.length = 0;
    await f.mgr.tearDownPod(pod("p2"));
    assertEquals(f.exec.sequence, ["DEL portmap", "DEL bridge"]);
    for (const c of f.exec.calls) assert(!("CNI_NETNS" in c.env));
    await assertRejects(() => f.mgr.checkPod(pod("p2")), NotFound);
  });
  await t.step("the pod CIDR reaches plugins declaring ipRanges", async () => {
    f.mgr.setPodCidr("10.244.7.0/24");
    f.exec.calls.length = 0;
    await f.mgr.setUpPod(pod("p3"));
    const add = f.exec.calls.find((c) => c.command === "ADD" && c.type === "bridge")!;
    assertEquals(add.config.runtimeConfig, { ipRanges: [[{ subnet: "10.244.7.0/24" }]] });
    f.mgr.setPodCidr("");
    await f.mgr.tearDownPod(pod("p3"));
  });
});

Deno.test("CniManager set-up failures", async (t) => {
  let portmapAdd: FakePlugin = () => pluginError(7, "bad port");
  let bridgeDel: FakePlugin = () => pluginOk();
  await using f = await fixture({
    portmap: (c) => (c.command === "ADD" ? portmapAdd(c) : pluginOk()),
    bridge: (c) => (c.command === "DEL" ? bridgeDel(c) : passthroughPlugin(BRIDGE_RESULT)(c)),
  });
  await f.writeConfig();
  await f.mgr.loaded();
  await t.step("a plugin failing midway: DEL over the whole chain, nothing cached, the plugin's error", async () => {
    const err = await assertRejects(() => f.mgr.setUpPod(pod("p1")), Error, 'CNI plugin "portmap" ADD');
    assertStringIncludes(err.message, "bad port (CNI error code 7, invalid network config)");
    assertEquals(f.exec.sequence.slice(-4), ["ADD bridge", "ADD portmap", "DEL portmap", "DEL bridge"]);
    const del = f.exec.calls.at(-1)!;
    assertEquals((del.config.prevResult as { ips: unknown[] }).ips.length, 2, "the partial result is passed");
    assertEquals(await f.readEntry("p1"), undefined);
    assertEquals(await f.mgr.cachedPods(), []);
  });
  await t.step("when the rollback fails too, the interrupted entry stays for teardown", async () => {
    bridgeDel = () => pluginError(5, "disk");
    await assertRejects(() => f.mgr.setUpPod(pod("p2")), Error, "bad port");
    assertEquals((await f.readEntry("p2"))?.state, "adding");
    bridgeDel = () => pluginOk();
    f.exec.calls.length = 0;
    await f.mgr.tearDownPod(pod("p2"));
    assertEquals(f.exec.sequence, ["DEL portmap", "DEL bridge", "DEL loopback"]);
    assertEquals(await f.readEntry("p2"), undefined);
  });
  await t.step("an interrupted entry is undone before a new set-up", async () => {
    bridgeDel = () => pluginError(5, "disk");
    await assertRejects(() => f.mgr.setUpPod(pod("p3")), Error, "bad port");
    bridgeDel = () => pluginOk();
    portmapAdd = passthroughPlugin({});
    f.exec.calls.length = 0;
    const res = await f.mgr.setUpPod(pod("p3"));
    assertEquals(res.ips[0], "10.88.0.9");
    assertEquals(f.exec.sequence, ["DEL portmap", "DEL bridge", "ADD loopback", "ADD bridge", "ADD portmap"]);
    assertEquals((await f.readEntry("p3"))?.state, "added");
  });
  await t.step("teardown errors surface and keep the entry", async () => {
    bridgeDel = () => pluginError(11, "busy");
    const err = await assertRejects(() => f.mgr.tearDownPod(pod("p3")), Error, "busy");
    assertStringIncludes(err.message, 'CNI plugin "bridge" DEL');
    assertEquals((await f.readEntry("p3"))?.state, "added");
    bridgeDel = () => pluginOk();
    await f.mgr.tearDownPod(pod("p3"));
    assertEquals(await f.readEntry("p3"), undefined);
  });
});

Deno.test("CniManager gc", async (t) => {
  await using f = await fixture();
  await f.writeConfig({ ...CONFIG, cniVersion: "1.1.0" });
  await f.mgr.loaded();
  for (const id of ["a1", "a2", "a3"]) await f.mgr.setUpPod(pod(id));
  await t.step("stale attachments are torn down, then GC runs with the valid ones", async () => {
    f.exec.calls.length = 0;
    await f.mgr.gc(["a2", "a3", "unknown"]);
    const dels = f.exec.calls.filter((c) => c.command === "DEL" && c.type !== "loopback");
    assertEquals(dels.map((c) => c.env.CNI_CONTAINERID), ["a1", "a1"]);
    const gcs = f.exec.calls.filter((c) => c.command === "GC");
    assertEquals(gcs.map((c) => c.type), ["bridge", "portmap"]);
    assertEquals(gcs[0]!.config["cni.dev/valid-attachments"], [
      { containerID: "a2", ifname: "eth0" },
      { containerID: "a3", ifname: "eth0" },
    ]);
    assertEquals(await f.mgr.cachedPods(), ["a2", "a3"]);
  });
  await t.step("operations on different pods run concurrently, on one pod one at a time", async () => {
    let inFlight = 0;
    let max = 0;
    f.exec.plugins.set("portmap", async (c) => {
      inFlight++;
      max = Math.max(max, inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight--;
      return c.command === "ADD" ? pluginOk(c.config.prevResult) : pluginOk();
    });
    const results = await Promise.allSettled([
      f.mgr.setUpPod(pod("b1")),
      f.mgr.setUpPod(pod("b1")),
      f.mgr.setUpPod(pod("b2")),
    ]);
    assertEquals(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
    assertEquals(max, 2);
  });
});
