/** Tests for NetworkConfigWatcher: readiness flips on directory changes (watch and poll) without a restart. */
import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { NetworkConfigWatcher, type NetworkReadiness } from "./config_watcher.ts";
import { passthroughPlugin, RecordingCniExec } from "./recording_cni_exec.ts";

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const CONF = JSON.stringify({ cniVersion: "1.0.0", name: "watched", type: "bridge" });

Deno.test("NetworkConfigWatcher", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "davit-cni-watch-" });
  const dir = `${root}/net.d`;
  const exec = new RecordingCniExec({ plugins: { bridge: passthroughPlugin({}), loopback: passthroughPlugin({}) } });
  const changes: NetworkReadiness[] = [];
  const watcher = new NetworkConfigWatcher({
    networkDir: dir,
    pluginDirs: ["/fake"],
    requiredPlugins: ["loopback"],
    exec,
    debounceMs: 30,
    pollMs: 100,
    onChange: (_c, r) => changes.push(r),
  });
  try {
    await watcher.loaded();
    await t.step("a missing directory: not ready, the message names it", () => {
      const r = watcher.ready();
      assertEquals([r.ok, r.reason], [false, "NetworkPluginNotReady"]);
      assertStringIncludes(r.message, `directory ${dir} does not exist`);
    });
    await t.step("the directory and a file appear: ready (polling, then watching)", async () => {
      await Deno.mkdir(dir);
      await Deno.writeTextFile(`${dir}/10-a.conf`, CONF);
      await waitFor("ready", () => watcher.ready().ok);
      assertEquals(watcher.current()?.config.name, "watched");
      assertEquals(watcher.current()?.path, `${dir}/10-a.conf`);
    });
    await t.step("the file is replaced by a broken one: not ready, with the reason", async () => {
      await Deno.writeTextFile(`${dir}/10-a.conf`, "{ broken");
      await waitFor("not ready", () => !watcher.ready().ok);
      assertStringIncludes(watcher.ready().message, `no valid CNI network configuration in ${dir}`);
      assertStringIncludes(watcher.ready().message, "10-a.conf: invalid JSON");
    });
    await t.step("an earlier file wins once valid", async () => {
      await Deno.writeTextFile(
        `${dir}/05-b.conflist`,
        JSON.stringify({
          cniVersion: "0.4.0",
          name: "early",
          plugins: [{ type: "bridge" }],
        }),
      );
      await waitFor("ready", () => watcher.ready().ok);
      assertEquals(watcher.current()?.config.name, "early");
    });
    await t.step("removing the files: not ready", async () => {
      await Deno.remove(`${dir}/05-b.conflist`);
      await Deno.remove(`${dir}/10-a.conf`);
      await waitFor("not ready", () => !watcher.ready().ok);
      assertEquals(watcher.current(), undefined);
    });
    await t.step("rescan on demand sees a change at once", async () => {
      await Deno.writeTextFile(`${dir}/20-c.json`, CONF);
      assert((await watcher.rescan()).ok);
    });
    await t.step("changes were reported", () => {
      assertEquals(changes.map((c) => c.ok), [false, true, false, true, false, true]);
    });
  } finally {
    await watcher.close();
    await Deno.remove(root, { recursive: true });
  }
});
