// The pure parts of the stats RPCs: the nano-cores rate, its cache, the filters and the usage messages.
import { assertEquals } from "../tests/assert.ts";
import { containerMatches, CpuSamples, nanoCores, podMatches, usageMessages } from "./stats.ts";

Deno.test("nanoCores", async (t) => {
  const cases: [string, [bigint, bigint] | undefined, [bigint, bigint], bigint | undefined][] = [
    ["first reading", undefined, [5_000n, 1_000n], undefined],
    ["one core busy", [0n, 0n], [1_000_000_000n, 1_000_000_000n], 1_000_000_000n],
    ["half a core over 2s", [1_000n, 10_000_000_000n], [1_000_001_000n, 12_000_000_000n], 500_000_000n],
    ["idle", [7n, 1n], [7n, 100n], 0n],
    ["time did not advance", [0n, 5n], [10n, 5n], undefined],
    ["usage went backwards", [100n, 0n], [50n, 10n], undefined],
  ];
  for (const [name, prev, cur, want] of cases) {
    await t.step(name, () => {
      const s = (v: [bigint, bigint]) => ({ usageNs: v[0], atNs: v[1] });
      assertEquals(nanoCores(prev && s(prev), s(cur)), want);
    });
  }
});

Deno.test("CpuSamples keeps the previous reading per key, bounded", () => {
  const samples = new CpuSamples({ max: 2 });
  assertEquals(samples.rate("a", { usageNs: 0n, atNs: 0n }), undefined);
  assertEquals(samples.rate("b", { usageNs: 0n, atNs: 0n }), undefined);
  assertEquals(samples.rate("a", { usageNs: 2_000n, atNs: 1_000n }), 2_000_000_000n);
  // "b" is now the least recently read: a third key evicts it.
  assertEquals(samples.rate("c", { usageNs: 0n, atNs: 0n }), undefined);
  assertEquals(samples.size, 2);
  assertEquals(samples.rate("b", { usageNs: 10n, atNs: 10n }), undefined);
  assertEquals(samples.rate("c", { usageNs: 5n, atNs: 10n }), 500_000_000n);
});

Deno.test("stats filters", async (t) => {
  const c = { id: "abc123", podId: "pod999", labels: { app: "web", tier: "front" } };
  const cases: [string, Parameters<typeof containerMatches>[1], boolean][] = [
    ["no filter", undefined, true],
    ["null filter", null, true],
    ["empty filter", { id: "", pod_sandbox_id: "", label_selector: {} }, true],
    ["ID prefix", { id: "abc" }, true],
    ["other ID", { id: "abd" }, false],
    ["pod", { pod_sandbox_id: "pod999" }, true],
    ["other pod", { pod_sandbox_id: "pod1" }, false],
    ["labels subset", { label_selector: { app: "web" } }, true],
    ["label value differs", { label_selector: { app: "db" } }, false],
    ["label missing", { label_selector: { zone: "a" } }, false],
    ["all together", { id: "abc123", pod_sandbox_id: "pod", label_selector: { tier: "front" } }, true],
  ];
  for (const [name, f, want] of cases) {
    await t.step(`container: ${name}`, () => assertEquals(containerMatches(c, f), want));
  }
  const p = { id: "pod999", labels: { team: "x" } };
  await t.step("pod: ID and labels", () => {
    assertEquals(podMatches(p, {}), true);
    assertEquals(podMatches(p, { id: "pod9" }), true);
    assertEquals(podMatches(p, { id: "pod8" }), false);
    assertEquals(podMatches(p, { label_selector: { team: "x" } }), true);
    assertEquals(podMatches(p, { label_selector: { team: "y" } }), false);
  });
});

Deno.test("usageMessages", async (t) => {
  await t.step("a cgroup that is gone gives timestamps only", () => {
    assertEquals(usageMessages({}, 5n, "k", new CpuSamples()), { cpu: { timestamp: "5" }, memory: { timestamp: "5" } });
  });
  await t.step("values as UInt64Value wrappers, the rate from the second reading on", () => {
    const samples = new CpuSamples();
    const st = { cpuUsageNs: 1_000n, memoryUsageBytes: 300, memoryWorkingSetBytes: 200, memoryRssBytes: 100 };
    const first = usageMessages(st, 1_000n, "k", samples);
    assertEquals(first.cpu, { timestamp: "1000", usage_core_nano_seconds: { value: "1000" } });
    assertEquals(first.memory, {
      timestamp: "1000",
      working_set_bytes: { value: "200" },
      usage_bytes: { value: "300" },
      rss_bytes: { value: "100" },
    });
    const second = usageMessages({ cpuUsageNs: 1_500n }, 2_000n, "k", samples);
    assertEquals(second.cpu.usage_nano_cores, { value: "500000000" });
  });
});
