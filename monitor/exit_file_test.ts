// Table tests for wait status decoding, exit reasons, exit file I/O and OOM counter discovery.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import {
  decodeWaitStatus,
  exitReason,
  type ExitRecord,
  listExitFiles,
  parseExitRecord,
  readExitFile,
  removeExitFile,
  writeExitFile,
} from "./exit_file.ts";
import { cgroupsPathFromConfig, expandSlice, findOomCounter, parseOomKillCount, resolveCgroupPath } from "./oom.ts";

Deno.test("decodeWaitStatus", async (t) => {
  const cases: [string, number, ReturnType<typeof decodeWaitStatus>][] = [
    ["exit 0", 0, { exitCode: 0 }],
    ["exit 3", 3 << 8, { exitCode: 3 }],
    ["exit 255", 255 << 8, { exitCode: 255 }],
    ["SIGKILL", 9, { exitCode: 137, signal: 9 }],
    ["SIGTERM", 15, { exitCode: 143, signal: 15 }],
    ["SIGSEGV with core dump", 11 | 0x80, { exitCode: 139, signal: 11 }],
  ];
  for (const [name, status, want] of cases) await t.step(name, () => assertEquals(decodeWaitStatus(status), want));
  await t.step("stopped is not an exit", () => {
    assertThrows(() => decodeWaitStatus((19 << 8) | 0x7f), RangeError);
  });
});

Deno.test("exitReason", async (t) => {
  const cases: [number, boolean, string][] = [
    [0, false, "Completed"],
    [1, false, "Error"],
    [137, false, "Error"],
    [137, true, "OOMKilled"],
    [0, true, "OOMKilled"],
  ];
  for (const [code, oom, want] of cases) {
    await t.step(`${code} oom=${oom}`, () => assertEquals(exitReason(code, oom), want));
  }
});

Deno.test("parseExitRecord", async (t) => {
  const good: ExitRecord = {
    container_id: "abc",
    exit_code: 137,
    signal: 9,
    finished_at: "2026-11-22T14:08:05.123456789Z",
    reason: "Error",
    oom_killed: false,
  };
  await t.step("round trip", () => assertEquals(parseExitRecord(JSON.stringify(good)), good));
  const bad: [string, unknown, string][] = [
    ["not an object", [], "not an object"],
    ["bad id", { ...good, container_id: "../x" }, "container_id"],
    ["float code", { ...good, exit_code: 1.5 }, "exit_code"],
    ["bad reason", { ...good, reason: "Crashed" }, "reason"],
    ["no oom flag", { ...good, oom_killed: undefined }, "oom_killed"],
    ["bad signal", { ...good, signal: "KILL" }, "signal"],
  ];
  for (const [name, v, msg] of bad) {
    await t.step(name, () => {
      assertThrows(() => parseExitRecord(JSON.stringify(v)), TypeError, msg);
    });
  }
});

Deno.test("exit files are written, listed and removed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "davit-exits-" });
  try {
    const rec: ExitRecord = {
      container_id: "c1",
      exit_code: 3,
      finished_at: "2026-11-22T14:08:05.123456789Z",
      reason: "Error",
      oom_killed: false,
    };
    writeExitFile(dir, rec);
    assertEquals(readExitFile(dir, "c1"), rec);
    assertEquals(readExitFile(dir, "c2"), undefined);
    await Deno.writeTextFile(`${dir}/.c3.json.tmp`, "{"); // a crash mid-write
    await Deno.writeTextFile(`${dir}/c4.json`, "{not json");
    assertEquals(listExitFiles(dir), { records: [rec], bad: ["c4.json"] });
    assertThrows(() => Deno.statSync(`${dir}/.c3.json.tmp`), Deno.errors.NotFound);
    removeExitFile(dir, "c1");
    removeExitFile(dir, "c1");
    assertEquals(readExitFile(dir, "c1"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cgroup paths and OOM counters", async (t) => {
  await t.step("cgroupsPathFromConfig", () => {
    assertEquals(cgroupsPathFromConfig({ linux: { cgroupsPath: "/a/b" } }), "/a/b");
    assertEquals(cgroupsPathFromConfig({ linux: {} }), undefined);
    assertEquals(cgroupsPathFromConfig({ linux: { cgroupsPath: "" } }), undefined);
    assertEquals(cgroupsPathFromConfig(null), undefined);
  });
  const slices: [string, string][] = [
    ["-.slice", ""],
    ["system.slice", "/system.slice"],
    ["kubepods-besteffort-pod12.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"],
  ];
  for (const [slice, want] of slices) {
    await t.step(`expandSlice ${slice}`, () => assertEquals(expandSlice(slice), want));
  }
  await t.step("expandSlice rejects", () => {
    for (const s of ["foo", "a--b.slice", "-a.slice", "a/b.slice"]) assertThrows(() => expandSlice(s), TypeError);
  });
  const paths: [string, string][] = [
    ["/davit/pod1/ctr1", "/davit/pod1/ctr1"],
    ["davit//ctr1/", "/davit/ctr1"],
    ["kubepods-pod1.slice:crio:abc", "/kubepods.slice/kubepods-pod1.slice/crio-abc.scope"],
    [":davit:abc", "/system.slice/davit-abc.scope"],
    ["kubepods.slice::pod1.slice", "/kubepods.slice/pod1.slice"],
  ];
  for (const [p, want] of paths) await t.step(`resolveCgroupPath ${p}`, () => assertEquals(resolveCgroupPath(p), want));
  await t.step("resolveCgroupPath refuses ..", () => {
    assertThrows(() => resolveCgroupPath("/a/../b"), TypeError);
  });
  const counters: [string, string, number | undefined][] = [
    ["v1", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2],
    ["v2", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n", 1],
    ["old v1 without counter", "oom_kill_disable 0\nunder_oom 0\n", undefined],
  ];
  for (const [name, text, want] of counters) {
    await t.step(`parseOomKillCount ${name}`, () => assertEquals(parseOomKillCount(text), want));
  }
  await t.step("findOomCounter picks the layout that has the file", () => {
    const files: Record<string, string> = {
      "/cg/unified/a/b/memory.events": "oom 0\noom_kill 4\n",
    };
    const c = findOomCounter("/a/b", { root: "/cg", readText: (p) => files[p] });
    assertEquals(c?.file, "/cg/unified/a/b/memory.events");
    assertEquals(c?.read(), 4);
    files["/cg/memory/a/b/memory.oom_control"] = "oom_kill 7\n";
    assertEquals(findOomCounter("/a/b", { root: "/cg", readText: (p) => files[p] })?.read(), 7);
    assertEquals(findOomCounter("/x", { root: "/cg", readText: (p) => files[p] }), undefined);
  });
});
