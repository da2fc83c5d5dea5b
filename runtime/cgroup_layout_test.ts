// cgroup layout detection from mountinfo and /proc/cgroups text.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { type CgroupLayout, parseCgroupLayout, parseMountInfo, readCgroupLayout } from "./cgroup_layout.ts";

const PROC_CGROUPS_V1 = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	2	1	1
blkio	7	1	1
memory	4	44	1
devices	5	1	1
freezer	6	1	1
net_cls	0	1	1
perf_event	0	1	1
net_prio	0	1	1
hugetlb	0	1	1
pids	8	1	1
rdma	0	1	0
`;

const mi = (lines: string[]) => lines.map((l, i) => `${30 + i} 1 0:${30 + i} ${l}`).join("\n");

/** This VM: v1 controllers (cpu and cpuacct apart), name=systemd, cgroup2 at /sys/fs/cgroup/unified. */
const HYBRID = mi([
  "/ /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "/ /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "/ /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
  "/ /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset",
  "/ /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "/ /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
  "/ /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd",
  "/ /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
]);

Deno.test("parseCgroupLayout", async (t) => {
  const cases: [string, string, string, CgroupLayout][] = [
    ["hybrid (this VM's shape)", HYBRID, PROC_CGROUPS_V1, {
      kind: "hybrid",
      v1: [
        { mountPoint: "/sys/fs/cgroup/cpu", root: "/", controllers: ["cpu"] },
        { mountPoint: "/sys/fs/cgroup/cpuacct", root: "/", controllers: ["cpuacct"] },
        { mountPoint: "/sys/fs/cgroup/cpuset", root: "/", controllers: ["cpuset"] },
        { mountPoint: "/sys/fs/cgroup/memory", root: "/", controllers: ["memory"] },
        { mountPoint: "/sys/fs/cgroup/pids", root: "/", controllers: ["pids"] },
        { mountPoint: "/sys/fs/cgroup/systemd", root: "/", controllers: ["name=systemd"] },
      ],
      unified: { mountPoint: "/sys/fs/cgroup/unified", root: "/", controllers: [] },
    }],
    [
      "v2 only",
      mi([
        "/ /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
      ]),
      "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t0\t90\t1\nmemory\t0\t90\t1\n",
      { kind: "v2", v1: [], unified: { mountPoint: "/sys/fs/cgroup", root: "/", controllers: [] } },
    ],
    [
      "v1 only, co-mounted cpu,cpuacct and net_cls,net_prio, a disabled controller dropped",
      mi([
        "/ /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
        "/ /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio",
        "/ /sys/fs/cgroup/rdma rw - cgroup cgroup rw,rdma",
      ]),
      PROC_CGROUPS_V1,
      {
        kind: "v1",
        v1: [
          { mountPoint: "/sys/fs/cgroup/cpu,cpuacct", root: "/", controllers: ["cpu", "cpuacct"] },
          { mountPoint: "/sys/fs/cgroup/net_cls,net_prio", root: "/", controllers: ["net_cls", "net_prio"] },
        ],
      },
    ],
    [
      "a hierarchy mounted twice: the /sys/fs/cgroup mount wins",
      mi([
        "/ /mnt/my\\040memory rw - cgroup cgroup rw,memory",
        "/kubepods /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
      ]),
      PROC_CGROUPS_V1,
      { kind: "v1", v1: [{ mountPoint: "/sys/fs/cgroup/memory", root: "/kubepods", controllers: ["memory"] }] },
    ],
  ];
  for (const [name, mountinfo, procCgroups, want] of cases) {
    await t.step(name, () => assertEquals(parseCgroupLayout(mountinfo, procCgroups), want));
  }
  await t.step("no cgroup filesystem", () => {
    assertThrows(() => parseCgroupLayout(mi(["/ / rw - ext4 /dev/vda rw"]), ""), Error, "no cgroup filesystem");
  });
});

Deno.test("parseMountInfo: optional fields and escapes", () => {
  const [m] = parseMountInfo(
    "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue",
  );
  assertEquals(m, {
    id: 36,
    parentId: 35,
    device: "98:0",
    root: "/mnt1",
    mountPoint: "/mnt 2",
    options: ["rw", "noatime"],
    optional: ["master:1", "shared:2"],
    fsType: "ext3",
    source: "/dev/root",
    superOptions: ["rw", "errors=continue"],
  });
});

Deno.test("readCgroupLayout on this host", async () => {
  const layout = await readCgroupLayout();
  // Whatever the host, the unified mount's controllers come from its cgroup.controllers file.
  if (layout.unified) {
    const text = await Deno.readTextFile(`${layout.unified.mountPoint}/cgroup.controllers`);
    assertEquals(layout.unified.controllers, text.split(/\s+/).filter(Boolean));
  }
  assertEquals(layout.kind === "v2" ? layout.v1 : [], []);
});
