// The OciRuntime conformance suite against the fake, runc, runsc (gVisor) and crun, plus crun's refusal of
// hybrid cgroup hosts. Needs root and the runtimes installed.
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import { readCgroupLayout } from "./cgroup_layout.ts";
import { makeBusyboxBundle, runOciRuntimeConformance } from "./oci_runtime_conformance.ts";
import { OciRuntimeError } from "./oci_runtime.ts";
import { FakeOciRuntime } from "./oci_runtime_fake.ts";
import { RuncLikeRuntime } from "./runc_like_runtime.ts";

const encoder = new TextEncoder();

/** Cgroup directories a conformance container left behind (runtimes put them at /<id>, or under our own). */
async function leftoverCgroups(): Promise<string[]> {
  const out: string[] = [];
  const own = (await Deno.readTextFile("/proc/self/cgroup")).split("\n");
  for await (const h of Deno.readDir("/sys/fs/cgroup")) {
    const mine = own.find((l) => l.split(":")[1]?.split(",").includes(h.name))?.split(":")[2] ?? "/";
    for (const base of new Set([`/sys/fs/cgroup/${h.name}`, `/sys/fs/cgroup/${h.name}${mine}`])) {
      try {
        for await (const e of Deno.readDir(base)) if (e.name.startsWith("davit-conf-")) out.push(`${base}/${e.name}`);
      } catch {
        // not a hierarchy directory
      }
    }
  }
  return out;
}

async function withRoot(name: string, fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: `davit-${name}-root-` });
  try {
    await fn(root);
    const left = [...Deno.readDirSync(root)].map((e) => e.name);
    assertEquals(left, [], `${name} left state in its root`);
    assertEquals(await leftoverCgroups(), [], `${name} left cgroups`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("FakeOciRuntime passes the conformance suite", async (t) => {
  const fake = new FakeOciRuntime();
  // Stands in for the busybox commands the suite runs.
  fake.execHandler = (id, o) => {
    const args = o.args ?? o.process?.args ?? [];
    const env = Object.fromEntries((o.process?.env ?? []).map((e) => e.split("=", 2) as [string, string]));
    const ok = (stdout: string, exitCode = 0, stderr = "") => ({
      exitCode,
      stdout: encoder.encode(stdout),
      stderr: encoder.encode(stderr),
      truncated: false,
    });
    if (args[0] === "echo") return ok(args.slice(1).join(" ") + "\n");
    if (args.join(" ") === "sh -c echo oops >&2; exit 3") return ok("", 3, "oops\n");
    if (args.join(" ") === "sh -c echo $FOO") return ok(`${env.FOO ?? ""}\n`);
    if (o.detach) return { ...ok(""), pid: 4242 };
    throw new OciRuntimeError({ runtime: fake.name, verb: "exec", id, exitCode: 255, detail: `${args[0]}: not found` });
  };
  await runOciRuntimeConformance(t, fake, "fake");
  assertEquals(fake.verbs().filter((v) => v !== "state" && v !== "list").slice(0, 4), [
    "create",
    "create",
    "start",
    "exec",
  ]);
});

Deno.test("runc passes the conformance suite", async (t) => {
  await withRoot("runc", async (root) => {
    await runOciRuntimeConformance(t, new RuncLikeRuntime({ name: "runc", path: "/usr/sbin/runc", root }), "runc");
  });
});

Deno.test("runsc (gVisor, ptrace) passes the conformance suite", async (t) => {
  await withRoot("runsc", async (root) => {
    // The sandbox network needs a network namespace to take over: with the spec's fresh (pathless) one runsc
    // refuses ("cannot run with network enabled in root network namespace"); pods give it their pinned one.
    const runsc = new RuncLikeRuntime({
      name: "runsc",
      path: "/usr/bin/runsc",
      root,
      extraArgs: ["--platform=ptrace", "--network=none"],
    });
    await runOciRuntimeConformance(t, runsc, "runsc");
  });
});

Deno.test("runsc has no update verb: Unimplemented", async () => {
  await withRoot("runsc-update", async (root) => {
    const runsc = new RuncLikeRuntime({ name: "runsc", path: "/usr/bin/runsc", root });
    const err = await assertRejects(() => runsc.update("absent", { pids: { limit: 10 } }));
    assertEquals(err.name, "UnimplementedError");
  });
});

/** crun 1.8's own words when the unified hierarchy of a hybrid host has controllers. */
const CRUN_HYBRID = "cgroups in hybrid mode not supported, drop all controllers from cgroupv2";

Deno.test("crun: conformance, or its documented refusal of this host's hybrid cgroup layout", async (t) => {
  const layout = await readCgroupLayout();
  await withRoot("crun", async (root) => {
    const crun = new RuncLikeRuntime({ name: "crun", path: "/usr/bin/crun", root });
    // crun 1.8 statfs()s /sys/fs/cgroup (tmpfs) and /sys/fs/cgroup/unified (cgroup2), and when the unified
    // root's cgroup.controllers is not empty (here: "hugetlb", bound to v2) it fails every create, whatever
    // --cgroup-manager says (even "disabled").
    if (layout.kind === "hybrid" && (layout.unified?.controllers.length ?? 0) > 0) {
      const dir = await Deno.makeTempDir({ prefix: "davit-crun-" });
      try {
        const bundle = await makeBusyboxBundle(`${dir}/bundle`, { args: ["true"] });
        const err = await assertRejects(() => crun.create("davit-conf-crun", { bundle, pidFile: `${dir}/pid` }));
        assert(err instanceof OciRuntimeError, `${err.name}: ${err.message}`);
        assertEquals(err.detail, CRUN_HYBRID);
        assertEquals(err.message, `crun create davit-conf-crun: ${CRUN_HYBRID}`);
        assertEquals(await crun.state("davit-conf-crun"), undefined);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
      return;
    }
    await runOciRuntimeConformance(t, crun, "crun");
  });
});
