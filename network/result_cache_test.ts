/** Tests for the on-disk attachment cache: layout, atomic writes, listing, invalid entries, removal. */
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { CACHE_KIND, type CacheEntry, ResultCache } from "./result_cache.ts";

function entry(over: Partial<CacheEntry> = {}): CacheEntry {
  return {
    kind: CACHE_KIND,
    network: "podnet",
    containerId: "pod1",
    ifname: "eth0",
    netns: "/run/netns/pod1",
    version: "1.0.0",
    configPath: "/etc/cni/net.d/10.conflist",
    config: { cniVersion: "1.0.0", name: "podnet", plugins: [{ type: "bridge" }] },
    cniArgs: [["IgnoreUnknown", "1"]],
    capabilityArgs: {},
    state: "added",
    result: { cniVersion: "1.0.0", ips: [] },
    updated: "2026-01-01T00:00:00.000Z",
    ...over,
  };
}

Deno.test("ResultCache", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-cni-cache-" });
  const cache = new ResultCache(dir + "/");
  try {
    await t.step("layout: results/<container>/<network>/<ifname>.json, private", async () => {
      await cache.write(entry());
      const path = `${dir}/results/pod1/podnet/eth0.json`;
      assertEquals(cache.path("podnet", "pod1", "eth0"), path);
      assertEquals(JSON.parse(await Deno.readTextFile(path)), entry());
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    });
    await t.step("rewrites replace the entry", async () => {
      await cache.write(entry({ state: "adding" }));
      await cache.write(entry({ network: "other" }));
      const { entries, invalid } = await cache.list("pod1");
      assertEquals(entries.map((e) => [e.network, e.state]), [["other", "added"], ["podnet", "adding"]]);
      assertEquals(invalid, []);
      assertEquals(await cache.containers(), ["pod1"]);
    });
    await t.step("temporary leftovers are removed, invalid files reported", async () => {
      await Deno.writeTextFile(`${dir}/results/pod1/podnet/eth0.json.tmp-1234`, "{");
      await Deno.writeTextFile(`${dir}/results/pod1/podnet/eth1.json`, "{ torn");
      await Deno.writeTextFile(`${dir}/results/pod1/other/eth1.json`, JSON.stringify(entry({ network: "wrong" })));
      const { entries, invalid } = await cache.list("pod1");
      assertEquals(entries.length, 2);
      assertEquals(invalid, [`${dir}/results/pod1/other/eth1.json`, `${dir}/results/pod1/podnet/eth1.json`]);
      assert(!(await Deno.stat(`${dir}/results/pod1/podnet/eth0.json.tmp-1234`).then(() => true, () => false)));
      for (const p of invalid) await cache.removeFile(p);
    });
    await t.step("removal prunes empty directories and is idempotent", async () => {
      await cache.remove("podnet", "pod1", "eth0");
      assertEquals(await cache.containers(), ["pod1"]);
      await cache.remove("other", "pod1", "eth0");
      await cache.remove("other", "pod1", "eth0");
      assertEquals(await cache.containers(), []);
      assertEquals(await cache.list("pod1"), { entries: [], invalid: [] });
    });
    await t.step("names that would escape the layout are refused", () => {
      assertThrows(() => cache.path("../x", "pod1", "eth0"), RangeError);
      assertThrows(() => cache.path("n", "../pod", "eth0"), RangeError);
      assertThrows(() => cache.path("n", "pod1", "a/b"), RangeError);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
