// Table tests of spec generation: arguments, users and groups, capabilities, mounts, namespaces, security.
import { assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { allowedSyscalls, defaultSeccompProfile, seccompArchitectures } from "./seccomp.ts";
import { ALL_CAPABILITIES, capabilitiesFromMask, computeCapabilities } from "./capabilities.ts";
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, generateSpec, type SpecInput } from "./spec.ts";
import { computeArgs, mergeEnv, resolveUser } from "./spec_user.ts";

const PASSWD =
  "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n";
const GROUP = "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\nother:x:3000:someone\n";

function input(over: Partial<SpecInput> = {}): SpecInput {
  return {
    id: "c1",
    name: "web",
    rootfs: "/r",
    readonlyRootfs: false,
    command: [],
    args: [],
    env: [],
    workingDir: "",
    tty: false,
    labels: {},
    annotations: {},
    image: { cmd: ["sh"] },
    user: {},
    passwd: PASSWD,
    group: GROUP,
    privileged: false,
    capabilities: { add: [], drop: [] },
    defaultCapabilities: [
      "CHOWN",
      "DAC_OVERRIDE",
      "FSETID",
      "FOWNER",
      "SETGID",
      "SETUID",
      "SETPCAP",
      "NET_BIND_SERVICE",
      "KILL",
    ],
    noNewPrivs: false,
    seccomp: { type: "RuntimeDefault" },
    apparmor: { type: "", hostEnabled: false },
    ownOomScoreAdj: 0,
    resources: {},
    cgroupV2: false,
    cgroupsPath: "/davit/davit-c1",
    pod: {
      hostname: "pod",
      namespaces: { net: "/run/ns/net/p", ipc: "/run/ns/ipc/p", uts: "/run/ns/uts/p" },
      pidMode: "CONTAINER",
      sysctls: {},
    },
    mounts: [],
    ...over,
  };
}

Deno.test("process arguments follow Kubernetes' command/args rules", async (t) => {
  const cases: [string, string[], string[], string[] | undefined, string[] | undefined, string[]][] = [
    ["image only", [], [], ["/ep"], ["cmd"], ["/ep", "cmd"]],
    ["command replaces entrypoint and drops cmd", ["/c"], [], ["/ep"], ["cmd"], ["/c"]],
    ["command and args", ["/c"], ["a"], ["/ep"], ["cmd"], ["/c", "a"]],
    ["args replace cmd, entrypoint kept", [], ["a", "b"], ["/ep"], ["cmd"], ["/ep", "a", "b"]],
    ["no entrypoint: cmd alone", [], [], undefined, ["sh"], ["sh"]],
    ["args without entrypoint", [], ["x"], undefined, ["sh"], ["x"]],
  ];
  for (const [name, command, args, entrypoint, cmd, want] of cases) {
    await t.step(name, () => assertEquals(computeArgs("c", { command, args }, { entrypoint, cmd }), want));
  }
  await t.step("nothing at all is an error naming the container", () => {
    assertThrows(() => computeArgs("web", { command: [], args: [] }, {}), InvalidArgument, 'container "web"');
  });
});

Deno.test("users and groups", async (t) => {
  const cases: [string, Parameters<typeof resolveUser>[0], { uid: number; gid: number; additionalGids: number[] }][] = [
    ["default root", {}, { uid: 0, gid: 0, additionalGids: [] }],
    ["image user by name, groups merged", { imageUser: "app" }, { uid: 1000, gid: 1000, additionalGids: [2000] }],
    ["image uid known", { imageUser: "1000" }, { uid: 1000, gid: 1000, additionalGids: [2000] }],
    ["image uid unknown gets gid 0", { imageUser: "4242" }, { uid: 4242, gid: 0, additionalGids: [] }],
    ["image uid:gid", { imageUser: "1000:3000" }, { uid: 1000, gid: 3000, additionalGids: [2000] }],
    ["image name:group", { imageUser: "app:extra" }, { uid: 1000, gid: 2000, additionalGids: [] }],
    ["run_as_user wins over the image", { imageUser: "app", runAsUser: 65534 }, {
      uid: 65534,
      gid: 65534,
      additionalGids: [],
    }],
    ["run_as_username", { runAsUsername: "app" }, { uid: 1000, gid: 1000, additionalGids: [2000] }],
    ["run_as_group", { runAsUser: 1000, runAsGroup: 5 }, { uid: 1000, gid: 5, additionalGids: [2000] }],
    ["supplemental groups merged", { imageUser: "app", supplementalGroups: [7, 2000] }, {
      uid: 1000,
      gid: 1000,
      additionalGids: [7, 2000],
    }],
    ["Strict policy: only requested", { imageUser: "app", supplementalGroups: [7], policy: "Strict" }, {
      uid: 1000,
      gid: 1000,
      additionalGids: [7],
    }],
  ];
  for (const [name, req, want] of cases) {
    await t.step(name, () => {
      const got = resolveUser(req, PASSWD, GROUP);
      assertEquals({ uid: got.uid, gid: got.gid, additionalGids: got.additionalGids }, want);
    });
  }
  await t.step("an unknown user name is an error naming it", () => {
    assertThrows(() => resolveUser({ imageUser: "ghost" }, PASSWD, GROUP), InvalidArgument, '"ghost"');
    assertThrows(() => resolveUser({ imageUser: "app:nogrp" }, PASSWD, GROUP), InvalidArgument, '"nogrp"');
  });
});

Deno.test("env, capabilities, seccomp", async (t) => {
  await t.step("CRI env wins over the image; PATH defaulted", () => {
    assertEquals(mergeEnv(["A=1", "B=2"], [["B", "3"]]), [
      "A=1",
      "B=3",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
  });
  await t.step("capabilities: defaults, drop ALL then add, add ALL, names without CAP_ and any case", () => {
    const caps = (defaults: string[], add: string[], drop: string[]) => computeCapabilities({ defaults, add, drop });
    assertEquals(caps(["CHOWN", "KILL"], ["net_admin"], ["KILL"]), ["CAP_CHOWN", "CAP_NET_ADMIN"]);
    assertEquals(caps(["CHOWN", "KILL"], ["CAP_KILL"], ["ALL"]), ["CAP_KILL"]);
    assertEquals(caps([], ["ALL"], []).length, 41);
    assertThrows(() => caps([], ["CAP_FLY"], []), InvalidArgument, "CAP_FLY");
  });
  // This host's CapBnd: everything but CAP_SYS_RESOURCE (bit 24).
  const held = capabilitiesFromMask("000001fffeffffff");
  await t.step("CapBnd masks name the capabilities of their bits", () => {
    assertEquals(held.length, 40);
    assertEquals(held.includes("CAP_SYS_RESOURCE"), false);
    assertEquals(capabilitiesFromMask("0000000000000021"), ["CAP_CHOWN", "CAP_KILL"]);
    assertEquals(capabilitiesFromMask("000003ffffffffff"), ALL_CAPABILITIES, "bits past the known names ignored");
  });
  const bounded: [string, { defaults: string[]; add: string[]; drop: string[] }, string[] | number][] = [
    ["add ALL is all that davit holds", { defaults: [], add: ["ALL"], drop: [] }, 40],
    ["a default outside the set is left out", { defaults: ["CHOWN", "SYS_RESOURCE"], add: [], drop: [] }, [
      "CAP_CHOWN",
    ]],
    ["drop ALL then add a held one", { defaults: ["CHOWN"], add: ["SYS_ADMIN"], drop: ["ALL"] }, ["CAP_SYS_ADMIN"]],
  ];
  for (const [name, req, want] of bounded) {
    await t.step(`bounded: ${name}`, () => {
      const got = computeCapabilities(req, held);
      if (typeof want === "number") {
        assertEquals(got.length, want);
        assertEquals(got.includes("CAP_SYS_RESOURCE"), false);
      } else assertEquals(got, want);
    });
  }
  await t.step("bounded: an explicit add outside davit's bounding set is an error naming it", () => {
    for (const add of [["SYS_RESOURCE"], ["cap_sys_resource", "CHOWN"]]) {
      const err = assertThrows(() => computeCapabilities({ defaults: [], add, drop: [] }, held), InvalidArgument);
      assertStringIncludes(err.message, "CAP_SYS_RESOURCE");
      assertStringIncludes(err.message, "not in davit's bounding set");
    }
  });
  await t.step("the default seccomp profile leaves host-changing calls out unless the capability is held", () => {
    const plain = allowedSyscalls([]);
    for (const n of ["read", "execve", "clone", "openat", "epoll_wait"]) assertEquals(plain.includes(n), true, n);
    for (const n of ["mount", "unshare", "setns", "kexec_load", "init_module", "reboot", "bpf", "swapon"]) {
      assertEquals(plain.includes(n), false, n);
    }
    assertEquals(allowedSyscalls(["CAP_SYS_ADMIN"]).includes("mount"), true);
  });
  await t.step("the default profile names the host's own architecture and its compat ones only", () => {
    assertEquals(seccompArchitectures("x86_64"), ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    assertEquals(seccompArchitectures("aarch64"), ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    assertEquals(defaultSeccompProfile([], "aarch64").architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
    assertEquals(defaultSeccompProfile([]).architectures, seccompArchitectures(Deno.build.arch));
  });
});

Deno.test("generateSpec", async (t) => {
  await t.step("a plain container", () => {
    const s = generateSpec(input({ env: [["X", "1"]] }));
    assertEquals(s.process.args, ["sh"]);
    assertEquals(s.process.env.includes("X=1"), true);
    assertEquals(s.process.env.includes("HOSTNAME=pod"), true);
    assertEquals(s.process.capabilities.bounding.length, 9);
    assertEquals(s.linux.maskedPaths, DEFAULT_MASKED_PATHS);
    assertEquals(s.linux.seccomp?.defaultAction, "SCMP_ACT_ERRNO");
    assertEquals(s.linux.namespaces.map((n) => n.type), ["mount", "network", "ipc", "uts", "pid"]);
    assertEquals(s.linux.namespaces[1]!.path, "/run/ns/net/p");
    assertEquals(s.hostname, "pod");
    assertEquals(s.linux.cgroupsPath, "/davit/davit-c1");
  });
  await t.step("privileged: every capability, no seccomp, nothing masked, /sys writable", () => {
    const s = generateSpec(input({ privileged: true }));
    assertEquals(s.process.capabilities.bounding.length, 41);
    assertEquals(s.linux.seccomp, undefined);
    assertEquals(s.linux.maskedPaths, []);
    assertEquals(s.mounts.find((m) => m.destination === "/sys")!.options!.includes("rw"), true);
  });
  await t.step("privileged and add ALL: only what davit's bounding set holds", () => {
    const boundingCapabilities = capabilitiesFromMask("000001fffeffffff");
    for (
      const s of [
        generateSpec(input({ privileged: true, boundingCapabilities })),
        generateSpec(input({ capabilities: { add: ["ALL"], drop: [] }, boundingCapabilities })),
      ]
    ) {
      for (const set of [s.process.capabilities.bounding, s.process.capabilities.effective]) {
        assertEquals(set.length, 40);
        assertEquals(set.includes("CAP_SYS_RESOURCE"), false);
      }
    }
    assertThrows(
      () => generateSpec(input({ capabilities: { add: ["SYS_RESOURCE"], drop: [] }, boundingCapabilities })),
      InvalidArgument,
      "not in davit's bounding set",
    );
  });
  await t.step("masked and read-only paths are taken independently", () => {
    const cases: [string, Partial<SpecInput>, string[], string[]][] = [
      ["neither: both defaults", {}, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS],
      ["masked only", { maskedPaths: ["/m"] }, ["/m"], DEFAULT_READONLY_PATHS],
      ["read-only only", { readonlyPaths: ["/r"] }, DEFAULT_MASKED_PATHS, ["/r"]],
      ["both", { maskedPaths: ["/m"], readonlyPaths: ["/r"] }, ["/m"], ["/r"]],
      ["privileged: none", { privileged: true, maskedPaths: ["/m"] }, [], []],
    ];
    for (const [name, over, masked, readonly] of cases) {
      const s = generateSpec(input(over));
      assertEquals([s.linux.maskedPaths, s.linux.readonlyPaths], [masked, readonly], name);
    }
  });
  await t.step("rootfs propagation follows the strongest bind propagation", () => {
    const bind = (containerPath: string, propagation: string) => ({
      containerPath,
      hostPath: `/h${containerPath}`,
      readonly: false,
      propagation,
      recursiveReadOnly: false,
    });
    const cases: [string, SpecInput["mounts"], string | undefined][] = [
      ["no binds: unset", [], undefined],
      ["private only: unset", [bind("/p", "PROPAGATION_PRIVATE")], undefined],
      [
        "HOST_TO_CONTAINER: rslave",
        [bind("/p", "PROPAGATION_PRIVATE"), bind("/s", "PROPAGATION_HOST_TO_CONTAINER")],
        "rslave",
      ],
      [
        "BIDIRECTIONAL: rshared",
        [bind("/s", "PROPAGATION_HOST_TO_CONTAINER"), bind("/b", "PROPAGATION_BIDIRECTIONAL")],
        "rshared",
      ],
    ];
    for (const [name, mounts, want] of cases) {
      const s = generateSpec(input({ mounts, sourcePropagation: () => "shared" }));
      assertEquals(s.linux.rootfsPropagation, want, name);
    }
  });
  await t.step("host network: no network namespace to join or create", () => {
    const s = generateSpec(input({ pod: { hostname: "h", namespaces: {}, pidMode: "NODE", sysctls: {} } }));
    assertEquals(s.linux.namespaces.map((n) => n.type), ["mount"]);
  });
  await t.step("oom_score_adj is never below davit's own", () => {
    assertEquals(generateSpec(input({ oomScoreAdj: -999, ownOomScoreAdj: -500 })).process.oomScoreAdj, -500);
    assertEquals(generateSpec(input({ oomScoreAdj: 300, ownOomScoreAdj: -500 })).process.oomScoreAdj, 300);
  });
  await t.step("bind mounts: ordered by depth, propagation checked against the host", () => {
    const s = generateSpec(input({
      mounts: [
        {
          containerPath: "/a/b",
          hostPath: "/h2",
          readonly: true,
          propagation: "PROPAGATION_PRIVATE",
          recursiveReadOnly: true,
        },
        {
          containerPath: "/a",
          hostPath: "/h1",
          readonly: false,
          propagation: "PROPAGATION_HOST_TO_CONTAINER",
          recursiveReadOnly: false,
        },
      ],
      sourcePropagation: () => "slave",
    }));
    const binds = s.mounts.filter((m) => m.type === "bind");
    assertEquals(binds.map((m) => m.destination), ["/a", "/a/b"]);
    assertEquals(binds[0]!.options, ["rbind", "rslave", "rw"]);
    assertEquals(binds[1]!.options, ["rbind", "rprivate", "ro", "rro"]);
    const err = assertThrows(() =>
      generateSpec(input({
        mounts: [{
          containerPath: "/x",
          hostPath: "/h",
          readonly: false,
          propagation: "PROPAGATION_BIDIRECTIONAL",
          recursiveReadOnly: false,
        }],
        sourcePropagation: () => "private",
      })), InvalidArgument);
    assertStringIncludes(err.message, "/h");
  });
  await t.step("AppArmor requested on a host without it is an error", () => {
    assertThrows(
      () => generateSpec(input({ apparmor: { type: "RuntimeDefault", hostEnabled: false } })),
      InvalidArgument,
      "AppArmor",
    );
  });
  await t.step("unified resources need cgroup v2", () => {
    assertThrows(
      () => generateSpec(input({ resources: { unified: { "memory.high": "1" } } })),
      InvalidArgument,
      "cgroup v2",
    );
  });
});

Deno.test("PID namespace modes: the paths to join are inputs", async (t) => {
  const pod = (over: Partial<SpecInput["pod"]>): SpecInput["pod"] => ({ ...input().pod, ...over });
  const pidOf = (s: ReturnType<typeof generateSpec>) => s.linux.namespaces.find((n) => n.type === "pid");
  const cases: [string, Partial<SpecInput["pod"]>, { type: string; path?: string } | undefined][] = [
    ["CONTAINER: a new PID namespace", { pidMode: "CONTAINER" }, { type: "pid" }],
    ["NODE: the host's (no pid entry)", { pidMode: "NODE" }, undefined],
    [
      "POD: the infra's namespace",
      { pidMode: "POD", podPidNamespace: "/proc/41/ns/pid" },
      { type: "pid", path: "/proc/41/ns/pid" },
    ],
    [
      "TARGET: the target's namespace",
      { pidMode: "TARGET", targetPidNamespace: "/proc/77/ns/pid" },
      { type: "pid", path: "/proc/77/ns/pid" },
    ],
    [
      "POD ignores a target path",
      { pidMode: "POD", podPidNamespace: "/proc/41/ns/pid", targetPidNamespace: "/proc/77/ns/pid" },
      { type: "pid", path: "/proc/41/ns/pid" },
    ],
  ];
  for (const [name, over, want] of cases) {
    await t.step(name, () => assertEquals(pidOf(generateSpec(input({ pod: pod(over) }))), want));
  }
  await t.step("POD without the infra's namespace is an error", () => {
    assertThrows(() => generateSpec(input({ pod: pod({ pidMode: "POD" }) })), InvalidArgument, "pid POD");
  });
  await t.step("TARGET without the target's namespace is an error", () => {
    assertThrows(() => generateSpec(input({ pod: pod({ pidMode: "TARGET" }) })), InvalidArgument, "target_id");
  });
});
