/** Tests for plugin chain orchestration (ADD/DEL/CHECK/GC, version negotiation) against the recording fake. */
import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { addNetwork, type ChainContext, checkNetwork, delNetwork, gcNetwork, negotiateVersion } from "./chain.ts";
import { type NetworkConfigList, parseNetworkConfigObject } from "./cni_config.ts";
import type { Attachment } from "./plugin_request.ts";
import { passthroughPlugin, pluginError, pluginOk, RecordingCniExec } from "./recording_cni_exec.ts";

const NS = "/run/davit/netns/p1";
const BRIDGE_RESULT = {
  interfaces: [{ name: "eth0", sandbox: NS }],
  ips: [{ address: "10.88.0.9/16", gateway: "10.88.0.1", interface: 0 }],
  routes: [{ dst: "0.0.0.0/0" }],
  dns: {},
};

function list(version: string, types: string[], extra: Record<string, unknown> = {}): NetworkConfigList {
  const parsed = parseNetworkConfigObject({
    cniVersion: version,
    name: "podnet",
    ...extra,
    plugins: types.map((type) => ({ type, ...(type === "portmap" ? { capabilities: { portMappings: true } } : {}) })),
  });
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.config;
}

const ATT: Attachment = {
  containerId: "pod1",
  netns: NS,
  ifname: "eth0",
  cniArgs: [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]],
  capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
};

function setup(plugins: ConstructorParameters<typeof RecordingCniExec>[0] = {}) {
  const exec = new RecordingCniExec({
    plugins: {
      bridge: passthroughPlugin(BRIDGE_RESULT),
      portmap: passthroughPlugin({}),
      tuning: passthroughPlugin({}),
      ...plugins.plugins,
    },
  });
  const ctx: ChainContext = { exec, pluginDirs: ["/opt/cni/bin", "/usr/lib/cni"], timeoutMs: 1000, path: "/usr/bin" };
  return { exec, ctx };
}

Deno.test("ADD over the chain", async (t) => {
  await t.step("in order, prevResult from the previous plugin, none for the first", async () => {
    const { exec, ctx } = setup();
    const out = await addNetwork(
      { config: list("1.0.0", ["bridge", "tuning", "portmap"]), version: "1.0.0" },
      ATT,
      ctx,
    );
    assert(out.ok);
    assertEquals(exec.sequence, ["ADD bridge", "ADD tuning", "ADD portmap"]);
    assert(!("prevResult" in exec.calls[0]!.config));
    assertEquals((exec.calls[1]!.config.prevResult as Record<string, unknown>).ips, BRIDGE_RESULT.ips);
    assertEquals(exec.calls[2]!.config.runtimeConfig, { portMappings: ATT.capabilityArgs.portMappings });
    assertEquals(exec.calls[0]!.env.CNI_ARGS, "IgnoreUnknown=1;K8S_POD_NAME=web");
    assertEquals(exec.calls[0]!.env.CNI_IFNAME, "eth0");
    assertEquals(exec.calls[0]!.path, "/opt/cni/bin/bridge");
    assertEquals(out.parsed.ips[0]?.address, "10.88.0.9/16");
  });
  await t.step("a result in another version is converted before being passed on", async () => {
    const { exec, ctx } = setup({
      plugins: { bridge: () => pluginOk({ ...BRIDGE_RESULT, cniVersion: "1.0.0" }) },
    });
    const out = await addNetwork({ config: list("0.4.0", ["bridge", "portmap"]), version: "0.4.0" }, ATT, ctx);
    assert(out.ok);
    const prev = exec.calls[1]!.config.prevResult as { cniVersion: string; ips: { version: string }[] };
    assertEquals(prev.cniVersion, "0.4.0");
    assertEquals(prev.ips[0]?.version, "4");
  });
  await t.step("a failure stops the chain and reports the last good result", async () => {
    const { exec, ctx } = setup({ plugins: { tuning: () => pluginError(7, "bad sysctl", "net.x") } });
    const out = await addNetwork(
      { config: list("1.0.0", ["bridge", "tuning", "portmap"]), version: "1.0.0" },
      ATT,
      ctx,
    );
    assert(!out.ok);
    assertEquals(exec.sequence, ["ADD bridge", "ADD tuning"]);
    assertStringIncludes(out.error.message, 'CNI plugin "tuning" ADD on network "podnet" for container "pod1" failed');
    assertStringIncludes(out.error.message, "bad sysctl: net.x");
    assertEquals((out.partialResult?.ips as unknown[]).length, 1);
  });
  await t.step("an invalid result is an error naming the plugin", async () => {
    const { ctx } = setup({ plugins: { bridge: () => pluginOk({ cniVersion: "1.0.0", ips: [{ address: "x" }] }) } });
    const out = await addNetwork({ config: list("1.0.0", ["bridge"]), version: "1.0.0" }, ATT, ctx);
    assert(!out.ok);
    assertStringIncludes(out.error.message, 'CNI plugin "bridge" ADD on network "podnet" returned an invalid result');
    assert(!out.partialResult);
  });
  await t.step("a missing binary is an error naming the directories searched", async () => {
    const { ctx } = setup();
    const out = await addNetwork({ config: list("1.0.0", ["bridge", "flannel"]), version: "1.0.0" }, ATT, ctx);
    assert(!out.ok);
    assertStringIncludes(
      out.error.message,
      'CNI plugin "flannel" of network "podnet" not found in /opt/cni/bin, /usr/lib/cni',
    );
  });
});

Deno.test("DEL over the chain", async (t) => {
  const prev = { cniVersion: "1.0.0", ...BRIDGE_RESULT };
  await t.step("reverse order, each plugin gets the final ADD result", async () => {
    const { exec, ctx } = setup();
    await delNetwork({ config: list("1.0.0", ["bridge", "tuning", "portmap"]), version: "1.0.0" }, ATT, ctx, {
      prevResult: prev,
    });
    assertEquals(exec.sequence, ["DEL portmap", "DEL tuning", "DEL bridge"]);
    for (const c of exec.calls) assertEquals(c.config.prevResult, prev);
    assertEquals(exec.calls[0]!.config.runtimeConfig, { portMappings: ATT.capabilityArgs.portMappings });
  });
  await t.step("0.3.1 has no prevResult on DEL", async () => {
    const { exec, ctx } = setup();
    await delNetwork({ config: list("0.3.1", ["bridge"]), version: "0.3.1" }, ATT, ctx, { prevResult: prev });
    assert(!("prevResult" in exec.calls[0]!.config));
  });
  await t.step("a gone namespace is not passed", async () => {
    const { exec, ctx } = setup();
    await delNetwork({ config: list("1.0.0", ["bridge"]), version: "1.0.0" }, { ...ATT, netns: "" }, ctx);
    assert(!("CNI_NETNS" in exec.calls[0]!.env));
  });
  await t.step("by spec the first error halts", async () => {
    const { exec, ctx } = setup({ plugins: { portmap: () => pluginError(11, "locked") } });
    let err: Error | undefined;
    await delNetwork({ config: list("1.0.0", ["bridge", "portmap"]), version: "1.0.0" }, ATT, ctx).catch((
      e,
    ) => (err = e));
    assertStringIncludes(err?.message ?? "", "locked");
    assertEquals(exec.sequence, ["DEL portmap"]);
  });
  await t.step("continueOnError still runs the rest and reports every error", async () => {
    const { exec, ctx } = setup({
      plugins: { portmap: () => pluginError(11, "locked"), bridge: () => pluginError(5, "io") },
    });
    let err: Error | undefined;
    await delNetwork({ config: list("1.0.0", ["bridge", "tuning", "portmap"]), version: "1.0.0" }, ATT, ctx, {
      continueOnError: true,
    }).catch((e) => (err = e));
    assertEquals(exec.sequence, ["DEL portmap", "DEL tuning", "DEL bridge"]);
    assertStringIncludes(err?.message ?? "", "locked");
    assertStringIncludes(err?.message ?? "", "io");
  });
});

Deno.test("CHECK and GC", async (t) => {
  const prev = { cniVersion: "1.0.0", ...BRIDGE_RESULT };
  await t.step("CHECK runs in order with the ADD result", async () => {
    const { exec, ctx } = setup();
    assert(await checkNetwork({ config: list("1.0.0", ["bridge", "portmap"]), version: "1.0.0" }, ATT, ctx, prev));
    assertEquals(exec.sequence, ["CHECK bridge", "CHECK portmap"]);
    assertEquals(exec.calls[1]!.config.prevResult, prev);
  });
  await t.step("CHECK is skipped before 0.4.0 and with disableCheck", async () => {
    const { exec, ctx } = setup();
    assert(!(await checkNetwork({ config: list("0.3.1", ["bridge"]), version: "0.3.1" }, ATT, ctx, prev)));
    const disabled = list("1.0.0", ["bridge"], { disableCheck: true });
    assert(!(await checkNetwork({ config: disabled, version: "1.0.0" }, ATT, ctx, prev)));
    assertEquals(exec.calls.length, 0);
  });
  await t.step("CHECK errors surface", async () => {
    const { ctx } = setup({ plugins: { portmap: () => pluginError(100, "chain missing") } });
    let err: Error | undefined;
    await checkNetwork({ config: list("1.0.0", ["bridge", "portmap"]), version: "1.0.0" }, ATT, ctx, prev)
      .catch((e) => (err = e));
    assertStringIncludes(err?.message ?? "", 'CNI plugin "portmap" CHECK on network "podnet"');
  });
  await t.step("GC (1.1.0) runs every plugin with the valid attachments, continuing past errors", async () => {
    const { exec, ctx } = setup({ plugins: { bridge: () => pluginError(5, "io") } });
    let err: Error | undefined;
    await gcNetwork({ config: list("1.1.0", ["bridge", "portmap"]), version: "1.1.0" }, [
      { containerID: "pod1", ifname: "eth0" },
    ], ctx).catch((e) => (err = e));
    assertEquals(exec.sequence, ["GC bridge", "GC portmap"]);
    assertEquals(exec.calls[1]!.config["cni.dev/valid-attachments"], [{ containerID: "pod1", ifname: "eth0" }]);
    assert(!("CNI_CONTAINERID" in exec.calls[1]!.env));
    assertStringIncludes(err?.message ?? "", "io");
  });
  await t.step("GC is skipped before 1.1.0 and with disableGC", async () => {
    const { exec, ctx } = setup();
    assert(!(await gcNetwork({ config: list("1.0.0", ["bridge"]), version: "1.0.0" }, [], ctx)));
    assert(!(await gcNetwork({ config: list("1.1.0", ["bridge"], { disableGC: true }), version: "1.1.0" }, [], ctx)));
    assertEquals(exec.calls.length, 0);
  });
});

Deno.test("negotiateVersion", async (t) => {
  const { ctx } = setup();
  const probed: string[] = [];
  const probe = (_path: string, type: string) => {
    probed.push(type);
    return Promise.resolve(type === "portmap" ? ["0.4.0", "1.0.0"] : ["0.4.0", "1.0.0", "1.1.0"]);
  };
  await t.step("a single declared version is used as is, without probing", async () => {
    assertEquals(await negotiateVersion(list("1.1.0", ["bridge", "portmap"]), ctx, probe), "1.1.0");
    assertEquals(probed, []);
  });
  await t.step("several: the highest every plugin supports", async () => {
    const config = list("1.1.0", ["bridge", "portmap"], { cniVersions: ["1.0.0", "0.4.0"] });
    assertEquals(await negotiateVersion(config, ctx, probe), "1.0.0");
    assertEquals(probed, ["bridge", "portmap"]);
  });
  await t.step("none in common is an error listing what each plugin supports", async () => {
    const config = list("1.1.0", ["bridge", "portmap"], { cniVersions: ["0.3.1"] });
    let err: Error | undefined;
    await negotiateVersion(config, ctx, probe).catch((e) => (err = e));
    assertStringIncludes(err?.message ?? "", "portmap: 0.4.0, 1.0.0");
  });
});
