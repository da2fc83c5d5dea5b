// Pod cgroups: pure path, limit and stats logic (tables), then real creation and removal on this host's
// hierarchies (needs root; v1 and the unified tree on hybrid hosts).
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { type CgroupLayout, readCgroupLayout } from "./cgroup_layout.ts";
import {
  addProcessToCgroup,
  cgroupDirs,
  cgroupStats,
  checkCgroupManager,
  containerCgroupPath,
  createPodCgroup,
  normalizeCgroupPath,
  planLimitWrites,
  podCgroupPath,
  removeCgroup,
  sharesToWeight,
  statsFromFiles,
  subtreeControlWrite,
} from "./cgroups.ts";

Deno.test("cgroup paths", async (t) => {
  await t.step("normalised", () => {
    assertEquals(normalizeCgroupPath(""), "/");
    assertEquals(normalizeCgroupPath("kubepods//burstable/"), "/kubepods/burstable");
  });
  for (const bad of ["/a/../b", "/a/./b", "/a b", "/a\nb"]) {
    await t.step(
      `refused ${JSON.stringify(bad)}`,
      () => void assertThrows(() => normalizeCgroupPath(bad), InvalidArgument),
    );
  }
  await t.step("pod and container", () => {
    assertEquals(podCgroupPath("/kubepods/podabc", "p1"), "/kubepods/podabc/davit-pod-p1");
    assertEquals(containerCgroupPath("/kubepods/podabc", "c1"), "/kubepods/podabc/davit-c1");
    assertEquals(containerCgroupPath("", "c1"), "/davit-c1");
    assertEquals(containerCgroupPath("kubepods-pod1.slice", "c1", "systemd"), "kubepods-pod1.slice:davit:c1");
    assertEquals(containerCgroupPath("", "c1", "systemd"), "system.slice:davit:c1");
  });
});

const HYBRID: CgroupLayout = {
  kind: "hybrid",
  v1: [
    { mountPoint: "/sys/fs/cgroup/cpu", root: "/", controllers: ["cpu"] },
    { mountPoint: "/sys/fs/cgroup/systemd", root: "/", controllers: ["name=systemd"] },
  ],
  unified: { mountPoint: "/sys/fs/cgroup/unified", root: "/", controllers: ["hugetlb"] },
};

Deno.test("cgroupDirs", async (t) => {
  await t.step("hybrid: v1 carries limits, unified only tracks", () => {
    assertEquals(cgroupDirs(HYBRID, "/a/b").map((d) => [d.dir, d.version, d.limits]), [
      ["/sys/fs/cgroup/cpu/a/b", 1, true],
      ["/sys/fs/cgroup/systemd/a/b", 1, true],
      ["/sys/fs/cgroup/unified/a/b", 2, false],
    ]);
  });
  await t.step("v2", () => {
    const v2: CgroupLayout = {
      kind: "v2",
      v1: [],
      unified: { mountPoint: "/sys/fs/cgroup", root: "/", controllers: [] },
    };
    assertEquals(cgroupDirs(v2, "/").map((d) => [d.dir, d.limits]), [["/sys/fs/cgroup", true]]);
  });
});

Deno.test("planLimitWrites", async (t) => {
  const cases: [string, 1 | 2, Parameters<typeof planLimitWrites>[1], string[]][] = [
    ["nothing", 1, {}, []],
    ["v1 everything, period before quota", 1, {
      cpuShares: 512,
      cpuQuotaUs: 50000,
      cpuPeriodUs: 100000,
      memoryLimitBytes: 1 << 26,
      pidsLimit: 100,
      cpusetCpus: "0",
      cpusetMems: "0",
    }, [
      "cpu/cpu.shares=512",
      "cpu/cpu.cfs_period_us=100000",
      "cpu/cpu.cfs_quota_us=50000",
      "memory/memory.limit_in_bytes=67108864",
      "pids/pids.max=100",
      "cpuset/cpuset.cpus=0",
      "cpuset/cpuset.mems=0",
    ]],
    ["v1 unlimited", 1, { cpuQuotaUs: 0, pidsLimit: -1 }, ["cpu/cpu.cfs_quota_us=-1", "pids/pids.max=max"]],
    ["v2 everything", 2, { cpuShares: 1024, cpuQuotaUs: 50000, memoryLimitBytes: 1 << 26, pidsLimit: 100 }, [
      "unified/cpu.weight=39",
      "unified/cpu.max=50000 100000",
      "unified/memory.max=67108864",
      "unified/pids.max=100",
    ]],
    ["v2 period alone", 2, { cpuPeriodUs: 200000 }, ["unified/cpu.max=max 200000"]],
  ];
  for (const [name, version, r, want] of cases) {
    await t.step(name, () => {
      assertEquals(planLimitWrites(version, r).map((w) => `${w.controller}/${w.file}=${w.value}`), want);
    });
  }
});

Deno.test("sharesToWeight", () => {
  assertEquals([2, 1024, 262144, 1].map(sharesToWeight), [1, 39, 10000, 1]);
});

Deno.test("subtreeControlWrite", async (t) => {
  const cases: [string, string[], string[], string][] = [
    [
      "all offered, none enabled",
      ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"],
      [],
      "+cpu +cpuset +io +memory +pids +hugetlb",
    ],
    ["some enabled", ["cpu", "memory", "pids"], ["cpu", "memory"], "+pids"],
    ["nothing missing", ["cpu"], ["cpu"], ""],
    ["nothing offered", [], [], ""],
  ];
  for (const [name, available, enabled, want] of cases) {
    await t.step(name, () => assertEquals(subtreeControlWrite(available, enabled), want));
  }
});

Deno.test("statsFromFiles", async (t) => {
  const cases: [string, Parameters<typeof statsFromFiles>[0], ReturnType<typeof statsFromFiles>][] = [
    ["empty", {}, {}],
    ["v1", {
      v1: {
        "cpuacct.usage": "123456789012345678\n",
        "memory.usage_in_bytes": "10485760\n",
        "memory.stat": "cache 4096\nrss 100\ntotal_rss 2097152\ntotal_inactive_file 1048576\n",
        "pids.current": "3\n",
      },
    }, {
      cpuUsageNs: 123456789012345678n,
      memoryUsageBytes: 10485760,
      memoryWorkingSetBytes: 9437184,
      memoryRssBytes: 2097152,
      pidsCurrent: 3,
    }],
    ["v2", {
      v2: {
        "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
        "memory.current": "8192\n",
        "memory.stat": "anon 4096\nfile 4096\ninactive_file 10000\n",
        "pids.current": "1\n",
      },
    }, {
      cpuUsageNs: 2500000n,
      memoryUsageBytes: 8192,
      memoryWorkingSetBytes: 0,
      memoryRssBytes: 4096,
      pidsCurrent: 1,
    }],
    ["hybrid: v1 first, v2 fills gaps", {
      v1: { "memory.usage_in_bytes": "100", "memory.stat": "" },
      v2: { "cpu.stat": "usage_usec 7\n", "memory.current": "999" },
    }, { cpuUsageNs: 7000n, memoryUsageBytes: 100, memoryWorkingSetBytes: 100 }],
  ];
  for (const [name, files, want] of cases) await t.step(name, () => assertEquals(statsFromFiles(files), want));
});

Deno.test("checkCgroupManager", async () => {
  await checkCgroupManager("cgroupfs");
  const err = await assertRejects(
    () => checkCgroupManager("systemd", { systemdDir: "/nonexistent/run/systemd/system" }),
    FailedPrecondition,
  );
  assertEquals(err.message, 'cgroup_manager = "systemd" needs systemd as init, which is not running; use "cgroupfs"');
  const dir = await Deno.makeTempDir();
  try {
    await checkCgroupManager("systemd", { systemdDir: dir });
  } finally {
    await Deno.remove(dir);
  }
});

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("pod cgroup on this host: created in every hierarchy, used, removed", async (t) => {
  const layout = await readCgroupLayout();
  const parent = `/davit-test-${crypto.randomUUID().slice(0, 8)}`;
  const sleeper = new Deno.Command("sleep", { args: ["60"], stdout: "null", stderr: "null" }).spawn();
  try {
    const path = await createPodCgroup(parent, "p1", {
      layout,
      resources: { cpuShares: 512, memoryLimitBytes: 64 << 20, pidsLimit: 50, cpuQuotaUs: 50000, cpuPeriodUs: 100000 },
    });
    assertEquals(path, `${parent}/davit-pod-p1`);
    const dirs = cgroupDirs(layout, path);

    await t.step("a directory in every hierarchy", async () => {
      assert(dirs.length > 0);
      for (const d of dirs) assert(await exists(d.dir), d.dir);
      if (layout.kind === "hybrid") assert(dirs.some((d) => d.version === 2), "the unified tree too");
    });

    await t.step("limits written; v1 cpuset copied from the parent", () => {
      const read = (c: string, f: string) => {
        const d = dirs.find((d) => (d.version === 1 ? d.controllers.includes(c) : layout.kind === "v2"));
        return d ? Deno.readTextFileSync(`${d.dir}/${f}`).trim() : undefined;
      };
      if (layout.kind === "v2") {
        assertEquals(read("memory", "memory.max"), String(64 << 20));
        assertEquals(read("cpu", "cpu.max"), "50000 100000");
      } else {
        assertEquals(read("cpu", "cpu.shares"), "512");
        assertEquals(read("cpu", "cpu.cfs_quota_us"), "50000");
        assertEquals(read("memory", "memory.limit_in_bytes"), String(64 << 20));
        assertEquals(read("pids", "pids.max"), "50");
        const cpuset = layout.v1.find((h) => h.controllers.includes("cpuset"));
        if (cpuset) {
          const root = Deno.readTextFileSync(`${cpuset.mountPoint}/cpuset.cpus`).trim();
          assertEquals(read("cpuset", "cpuset.cpus"), root);
          assertEquals(Deno.readTextFileSync(`${cpuset.mountPoint}${parent}/cpuset.cpus`).trim(), root);
        }
      }
    });

    await t.step("a process moved in shows in the stats", async () => {
      await addProcessToCgroup(path, sleeper.pid, { layout });
      for (const d of dirs) {
        assertEquals(Deno.readTextFileSync(`${d.dir}/cgroup.procs`).trim(), String(sleeper.pid), d.dir);
      }
      const stats = await cgroupStats(path, { layout });
      assertEquals(stats.pidsCurrent, 1);
      assert(stats.cpuUsageNs !== undefined && stats.cpuUsageNs >= 0n);
      assert(stats.memoryUsageBytes !== undefined && stats.memoryWorkingSetBytes !== undefined);
    });

    await t.step("removal waits for tasks, and gives up with the PIDs named", async () => {
      const err = await assertRejects(() => removeCgroup(path, { layout, timeoutMs: 100 }), FailedPrecondition);
      assert(err.message.includes(`processes ${sleeper.pid} are still in it`), err.message);
      setTimeout(() => sleeper.kill("SIGKILL"), 100);
      await removeCgroup(path, { layout, timeoutMs: 3000 });
      await sleeper.status;
      for (const d of dirs) assert(!(await exists(d.dir)), d.dir);
    });

    await t.step("idempotent; the parent with a nested child goes leaf-first", async () => {
      await removeCgroup(path, { layout });
      await createPodCgroup(parent, "p2", { layout });
      await Deno.mkdir(`${cgroupDirs(layout, podCgroupPath(parent, "p2"))[0]!.dir}/nested`);
      await removeCgroup(parent, { layout });
      for (const d of cgroupDirs(layout, parent)) assert(!(await exists(d.dir)), d.dir);
    });

    await t.step("the root is refused", async () => {
      await assertRejects(() => removeCgroup("/", { layout }), InvalidArgument);
    });
  } finally {
    try {
      sleeper.kill("SIGKILL");
    } catch {
      // already killed
    }
    await sleeper.status;
    await removeCgroup(parent, { layout, timeoutMs: 3000 });
  }
});
