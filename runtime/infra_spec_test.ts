// Table tests of the infra process's spec: what it runs, its namespaces, and what it is denied.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { INFRA_ANNOTATION, infraSpec, type InfraSpecInput } from "./infra_spec.ts";

function input(over: Partial<InfraSpecInput> = {}): InfraSpecInput {
  return {
    id: "p1",
    podId: "p1",
    rootfs: "/r",
    image: { entrypoint: ["/pause"], user: "65535:65535" },
    hostname: "pod",
    namespaces: { net: "/run/ns/net/p1", ipc: "/run/ns/ipc/p1", uts: "/run/ns/uts/p1" },
    cgroupsPath: "/davit/davit-pod-p1/davit-p1",
    cgroupV2: false,
    ownOomScoreAdj: 0,
    ...over,
  };
}

Deno.test("infra spec", async (t) => {
  await t.step("runs the image's entrypoint and command as the image's user", () => {
    const s = infraSpec(input());
    assertEquals(s.process.args, ["/pause"]);
    assertEquals([s.process.user.uid, s.process.user.gid], [65535, 65535]);
    assertEquals(infraSpec(input({ image: { entrypoint: ["/bin/sleep"], cmd: ["2147483647"] } })).process.args, [
      "/bin/sleep",
      "2147483647",
    ]);
  });
  await t.step("a new PID namespace inside the pod's network, IPC and UTS namespaces", () => {
    const s = infraSpec(input());
    assertEquals(s.linux.namespaces, [
      { type: "mount" },
      { type: "network", path: "/run/ns/net/p1" },
      { type: "ipc", path: "/run/ns/ipc/p1" },
      { type: "uts", path: "/run/ns/uts/p1" },
      { type: "pid" },
    ]);
    assertEquals(s.hostname, "pod");
    assertEquals(infraSpec(input({ cgroupV2: true })).linux.namespaces.at(-1), { type: "cgroup" });
  });
  await t.step("host network: no network namespace entry", () => {
    const s = infraSpec(input({ namespaces: { ipc: "/run/ns/ipc/p1", uts: "/run/ns/uts/p1" } }));
    assertEquals(s.linux.namespaces.map((n) => n.type), ["mount", "ipc", "uts", "pid"]);
  });
  await t.step("no capabilities, no new privileges, seccomp, read-only root, its own cgroup", () => {
    const s = infraSpec(input());
    assertEquals(s.process.capabilities.bounding, []);
    assertEquals(s.process.noNewPrivileges, true);
    assertEquals(s.linux.seccomp?.defaultAction, "SCMP_ACT_ERRNO");
    assertEquals(s.root, { path: "/r", readonly: true });
    assertEquals(s.linux.cgroupsPath, "/davit/davit-pod-p1/davit-p1");
    assertEquals(s.annotations[INFRA_ANNOTATION], "p1");
  });
  await t.step("oom_score_adj -998 unless davit's own is higher", () => {
    assertEquals(infraSpec(input({ ownOomScoreAdj: -1000 })).process.oomScoreAdj, -998);
    assertEquals(infraSpec(input({ ownOomScoreAdj: 0 })).process.oomScoreAdj, 0);
  });
  await t.step("an image with nothing to run is refused", () => {
    assertThrows(() => infraSpec(input({ image: {} })), InvalidArgument, "infra");
  });
});
