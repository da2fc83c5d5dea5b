// The table of monitor processes: placement by room (fullest first), spares, dead processes, forgetting.
import { assert, assertEquals } from "../tests/assert.ts";
import { isSpareName, MonitorHosts, monitorPid, newSpareName } from "./monitor_hosts.ts";
import { parsePidFile, processAlive, processStartTime } from "../monitor/mod.ts";
import { formatPidFile } from "../monitor/cli.ts";

Deno.test("pid files: pid and start time, or the pid alone of older monitors", () => {
  assertEquals(parsePidFile(formatPidFile(42, 123456)), { pid: 42, startTime: 123456 });
  assertEquals(parsePidFile(formatPidFile(42, undefined)), { pid: 42 });
  for (const bad of ["", "x", "0\n", "-1", "1 2 3", "12 ab"]) assertEquals(parsePidFile(bad), undefined, bad);
  assert(processStartTime(Deno.pid)! > 0);
  assert(processAlive(Deno.pid, processStartTime(Deno.pid)!));
  assert(!processAlive(Deno.pid, processStartTime(Deno.pid)! + 1), "another start time: another process");
  assertEquals(processStartTime(2 ** 22 + 1), undefined);
});

Deno.test("MonitorHosts: the fullest process with room first; full and dead ones are skipped", () => {
  const dead = new Set<number>();
  const t = new MonitorHosts(2, (p) => !dead.has(p.pid));
  assertEquals(t.withRoom(), undefined);
  const p1 = t.process(101, 1), p2 = t.process(102, 1);
  assert(t.process(101, 1) === p1, "one entry per process");
  t.setSpare("spare-1", p1);
  t.setSpare("spare-2", p2);
  t.assign("pod-a", p2);
  assertEquals(t.withRoom()?.pid, 102);
  t.assign("pod-b", p2);
  assertEquals(t.withRoom()?.pid, 101, "p2 is full");
  assertEquals(t.withRoom(p1), undefined, "no other process has room");
  dead.add(101);
  assertEquals(t.withRoom(), undefined);
  assertEquals(t.of("spare-1"), undefined, "a dead process is forgotten with what it served");
  assertEquals(t.all().map((p) => p.pid), [102]);
});

Deno.test("MonitorHosts: unassigning the last pod and the spare forgets the process", () => {
  const t = new MonitorHosts(8, () => true);
  const p = t.process(7, 3);
  t.assign("pod-a", p);
  t.setSpare("spare-x", p);
  t.unassign("spare-x");
  assertEquals(p.spare, undefined);
  assertEquals(t.all().length, 1);
  t.unassign("pod-a");
  assertEquals(t.all().length, 0);
  // Moving a pod between processes.
  const q = t.process(8, 3), r = t.process(9, 3);
  t.assign("pod-b", q);
  t.assign("pod-b", r);
  assertEquals(t.of("pod-b")?.pid, 9);
  assertEquals(t.all().map((x) => x.pid), [9]);
});

Deno.test("spare names and monitorPid against real pid files", () => {
  const name = newSpareName();
  assert(isSpareName(name) && name.length <= 32, name);
  assert(!isSpareName("0123456789abcdef0123456789abcdef"));
  const dir = Deno.makeTempDirSync({ prefix: "davit-hosts-" });
  try {
    assertEquals(monitorPid(dir, "x"), -1, "no pid file: may still be starting");
    Deno.writeTextFileSync(`${dir}/monitor.pid`, `${Deno.pid} ${processStartTime(Deno.pid)}\n`);
    assertEquals(monitorPid(dir, "x"), Deno.pid);
    Deno.writeTextFileSync(`${dir}/monitor.pid`, `${Deno.pid} ${processStartTime(Deno.pid)! + 1}\n`);
    assertEquals(monitorPid(dir, "x"), 0, "same pid, other start time: another process");
    Deno.writeTextFileSync(`${dir}/monitor.pid`, "garbage\n");
    assertEquals(monitorPid(dir, "x"), 0);
    // An older monitor's pid file: the pid alone, checked by the command line (this test process is no monitor).
    Deno.writeTextFileSync(`${dir}/monitor.pid`, `${Deno.pid}\n`);
    assertEquals(monitorPid(dir, "no-such-pod-qq"), 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
