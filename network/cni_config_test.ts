/** Tests for network configuration parsing and selection from a directory. */
import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { checkNetworkConfig, configFileNames, parseNetworkConfig } from "./cni_config.ts";
import { findNetworkConfig } from "./config_dir.ts";
import { passthroughPlugin, RecordingCniExec } from "./recording_cni_exec.ts";

const BRIDGE = { type: "bridge", bridge: "cni0", ipam: { type: "host-local" } };

Deno.test("parseNetworkConfig accepts", async (t) => {
  const cases: { name: string; json: unknown; versions: string[]; plugins: string[]; check?: boolean; gc?: boolean }[] =
    [
      {
        name: "a 1.0.0 list",
        json: { cniVersion: "1.0.0", name: "n", plugins: [BRIDGE, { type: "portmap" }] },
        versions: ["1.0.0"],
        plugins: ["bridge", "portmap"],
      },
      {
        name: "0.3.0, 0.3.1, 0.4.0",
        json: { cniVersion: "0.3.0", cniVersions: ["0.3.1", "0.4.0"], name: "n", plugins: [BRIDGE] },
        versions: ["0.4.0", "0.3.1", "0.3.0"],
        plugins: ["bridge"],
      },
      {
        name: "1.1.0 with cniVersions, unsupported ones dropped, highest first",
        json: { cniVersion: "1.1.0", cniVersions: ["0.2.0", "1.0.0", "9.9.9"], name: "n", plugins: [BRIDGE] },
        versions: ["1.1.0", "1.0.0"],
        plugins: ["bridge"],
      },
      {
        name: "disableCheck and disableGC",
        json: { cniVersion: "1.1.0", name: "n", disableCheck: true, disableGC: true, plugins: [BRIDGE] },
        versions: ["1.1.0"],
        plugins: ["bridge"],
        check: true,
        gc: true,
      },
      {
        name: "a single plugin config is wrapped",
        json: { cniVersion: "0.4.0", name: "single", ...BRIDGE },
        versions: ["0.4.0"],
        plugins: ["bridge"],
      },
    ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const parsed = parseNetworkConfig(JSON.stringify(c.json));
      assert(parsed.ok, parsed.ok ? "" : parsed.reason);
      assertEquals(parsed.config.versions, c.versions);
      assertEquals(parsed.config.plugins.map((p) => p.type), c.plugins);
      assertEquals(parsed.config.disableCheck, c.check ?? false);
      assertEquals(parsed.config.disableGC, c.gc ?? false);
      assertEquals(parsed.config.raw.plugins, parsed.config.plugins);
    });
  }
  await t.step("wrapping keeps the plugin's own keys and the list's name and version", () => {
    const parsed = parseNetworkConfig(JSON.stringify({ cniVersion: "0.3.1", name: "single", ...BRIDGE }));
    assert(parsed.ok);
    assertEquals(parsed.config.raw.name, "single");
    assertEquals(parsed.config.raw.cniVersion, "0.3.1");
    assertEquals(parsed.config.plugins[0]?.bridge, "cni0");
  });
});

Deno.test("parseNetworkConfig refuses", async (t) => {
  const cases: [string, string, string][] = [
    ["not JSON", "{", "invalid JSON"],
    ["an array", "[]", "not a JSON object"],
    ["no name", JSON.stringify({ cniVersion: "1.0.0", plugins: [BRIDGE] }), 'missing "name"'],
    ["a bad name", JSON.stringify({ cniVersion: "1.0.0", name: "a/b", plugins: [BRIDGE] }), "characters outside"],
    ["no version", JSON.stringify({ name: "n", plugins: [BRIDGE] }), 'missing "cniVersion"'],
    ["an old version", JSON.stringify({ cniVersion: "0.2.0", name: "n", plugins: [BRIDGE] }), "0.2.0 is not supported"],
    ["empty plugins", JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [] }), '"plugins" is empty'],
    [
      "plugin without type",
      JSON.stringify({ cniVersion: "1.0.0", name: "n", plugins: [{}] }),
      'plugins[0] has no "type"',
    ],
    ["type with a slash", JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "../x" }), "is not a file name"],
    ["neither", JSON.stringify({ cniVersion: "1.0.0", name: "n" }), 'neither "plugins" nor "type"'],
    [
      "bad disableCheck",
      JSON.stringify({ cniVersion: "1.0.0", name: "n", disableCheck: "yes", plugins: [BRIDGE] }),
      '"disableCheck" must be a boolean',
    ],
    [
      "bad capabilities",
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "n",
        plugins: [{ type: "portmap", capabilities: { portMappings: 1 } }],
      }),
      "capabilities",
    ],
  ];
  for (const [name, text, reason] of cases) {
    await t.step(name, () => {
      const parsed = parseNetworkConfig(text);
      assert(!parsed.ok);
      assertStringIncludes(parsed.reason, reason);
    });
  }
  await t.step("checkNetworkConfig keeps its old contract", () => {
    assertEquals(checkNetworkConfig({ cniVersion: "0.4.0", name: "n", type: "bridge" }), {
      name: "n",
      cniVersion: "0.4.0",
    });
    assertEquals(checkNetworkConfig({ name: "n" }), { reason: 'missing "cniVersion"' });
  });
});

Deno.test("configFileNames keeps config extensions in lexical order", () => {
  assertEquals(
    configFileNames([
      "99-b.conf",
      "10-a.conflist",
      "README",
      "50-c.json",
      ".hidden.conf",
      "10-a.conflist.bak",
      "0.conf",
    ]),
    ["0.conf", "10-a.conflist", "50-c.json", "99-b.conf"],
  );
});

Deno.test("findNetworkConfig", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-cni-conf-" });
  const exec = new RecordingCniExec({ plugins: { bridge: passthroughPlugin({}), portmap: passthroughPlugin({}) } });
  const write = (name: string, v: unknown) =>
    Deno.writeTextFile(`${dir}/${name}`, typeof v === "string" ? v : JSON.stringify(v));
  try {
    await t.step("a missing directory is named in the reason", async () => {
      const r = await findNetworkConfig(`${dir}/nope`);
      assert(!r.ok);
      assertStringIncludes(r.reason, `${dir}/nope does not exist`);
    });
    await t.step("an empty directory", async () => {
      const r = await findNetworkConfig(dir + "/");
      assert(!r.ok);
      assertEquals(r.reason, `no valid CNI network configuration in ${dir}`);
    });
    await write("05-broken.conflist", "{ nope");
    await write("10-missing-plugin.conflist", { cniVersion: "1.0.0", name: "m", plugins: [{ type: "flannel" }] });
    await write("20-good.conf", { cniVersion: "1.0.0", name: "good", ...BRIDGE });
    await write("30-later.conflist", { cniVersion: "1.0.0", name: "later", plugins: [BRIDGE, { type: "portmap" }] });
    await t.step("first valid file in lexical order; failures skipped with reasons", async () => {
      const r = await findNetworkConfig(dir, { pluginDirs: ["/plugins"], exec });
      assert(r.ok, r.ok ? "" : r.reason);
      assertEquals([r.path, r.name, r.cniVersion], [`${dir}/20-good.conf`, "good", "1.0.0"]);
      assertEquals(r.skipped.map((s) => s.path), [`${dir}/05-broken.conflist`, `${dir}/10-missing-plugin.conflist`]);
      assertStringIncludes(r.skipped[0]!.reason, "invalid JSON");
      assertStringIncludes(r.skipped[1]!.reason, 'plugin "flannel" not found in /plugins');
    });
    await t.step("without plugin directories binaries are not checked", async () => {
      const r = await findNetworkConfig(dir);
      assert(r.ok);
      assertEquals(r.name, "m");
    });
    await t.step("the default network is selected by name", async () => {
      const r = await findNetworkConfig(dir, { pluginDirs: ["/plugins"], exec, defaultNetwork: "later" });
      assert(r.ok);
      assertEquals(r.name, "later");
      const none = await findNetworkConfig(dir, { pluginDirs: ["/plugins"], exec, defaultNetwork: "absent" });
      assert(!none.ok);
      assertStringIncludes(none.reason, `for network "absent" in ${dir}`);
      assertStringIncludes(none.reason, "05-broken.conflist: invalid JSON");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
