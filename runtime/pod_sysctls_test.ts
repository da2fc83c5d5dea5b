// Which pod sysctls are namespaced and allowed, which are refused and why.
import { InvalidArgument } from "../lib/errors.ts";
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { parseSysctlList, planPodSysctls, sysctlNamespace } from "./pod_sysctls.ts";

Deno.test("sysctlNamespace", async (t) => {
  const cases: [string, string | undefined][] = [
    ["net.ipv4.ip_forward", "net"],
    ["net.core.somaxconn", "net"],
    ["net/ipv4/conf/eth0.100/forwarding", "net"],
    ["kernel.shmmax", "ipc"],
    ["kernel.shm_rmid_forced", "ipc"],
    ["kernel.msgmnb", "ipc"],
    ["kernel.sem", "ipc"],
    ["fs.mqueue.msg_max", "ipc"],
    ["kernel/shmall", "ipc"],
    ["kernel.semaphores", undefined],
    ["kernel.hostname", undefined],
    ["vm.swappiness", undefined],
    ["fs.file-max", undefined],
    ["kernel.pid_max", undefined],
  ];
  for (const [name, ns] of cases) {
    await t.step(name, () => assertEquals(sysctlNamespace(name), ns));
  }
});

Deno.test("planPodSysctls", async (t) => {
  const ok: [string, Record<string, string>, object, { namespace: string; path: string }[]][] = [
    ["none", {}, {}, []],
    [
      "net and ipc",
      { "net.ipv4.ping_group_range": "0 65535", "kernel.shmmni": "1000" },
      {},
      [{ namespace: "net", path: "net/ipv4/ping_group_range" }, { namespace: "ipc", path: "kernel/shmmni" }],
    ],
    [
      "slash form keeps dots in components",
      { "net/ipv4/conf/eth0.100/forwarding": "1" },
      {},
      [{ namespace: "net", path: "net/ipv4/conf/eth0.100/forwarding" }],
    ],
    ["ipc sysctls with host network", { "fs.mqueue.msg_max": "20" }, { hostNetwork: true }, [{
      namespace: "ipc",
      path: "fs/mqueue/msg_max",
    }]],
    ["net sysctls with host IPC", { "net.core.somaxconn": "1024" }, { hostIpc: true }, [{
      namespace: "net",
      path: "net/core/somaxconn",
    }]],
  ];
  for (const [name, input, opts, want] of ok) {
    await t.step(`allowed: ${name}`, () => {
      assertEquals(planPodSysctls(input, opts).map(({ namespace, path }) => ({ namespace, path })), want);
    });
  }
  const refused: [string, Record<string, string>, object, string][] = [
    ["host-wide", { "vm.overcommit_memory": "1" }, {}, "not namespaced and would change the host"],
    ["UTS", { "kernel.hostname": "x" }, {}, "set the pod's hostname instead"],
    ["net with host network", { "net.ipv4.ip_forward": "1" }, { hostNetwork: true }, "on the host network"],
    ["ipc with host IPC", { "kernel.shmmax": "1" }, { hostIpc: true }, "host IPC namespace"],
    ["dot-dot", { "net/../kernel/x": "1" }, {}, "Invalid sysctl name"],
    ["empty component", { "net..ipv4": "1" }, {}, "Invalid sysctl name"],
    ["newline in value", { "net.core.somaxconn": "1\n2" }, {}, "Invalid value"],
    ["shell characters in name", { "net.core.$(x)": "1" }, {}, "Invalid sysctl name"],
  ];
  for (const [name, input, opts, message] of refused) {
    await t.step(`refused: ${name}`, () => {
      assertThrows(() => planPodSysctls(input, opts), InvalidArgument, message);
    });
  }
});

Deno.test("parseSysctlList", () => {
  assertEquals(parseSysctlList(["net.ipv4.ping_group_range=0 65535", " kernel.shmmni = 10"]), {
    "net.ipv4.ping_group_range": "0 65535",
    "kernel.shmmni": "10",
  });
  assertThrows(() => parseSysctlList(["novalue"]), InvalidArgument, "name=value");
});
