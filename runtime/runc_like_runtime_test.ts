// The runc-style command line and the reading of runtimes' answers, without running a runtime.
import { DeadlineExceeded, InvalidArgument, Unavailable } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { runCommand } from "./command.ts";
import { classifyRuntimeFailure, parseOciState, RuncLikeRuntime, runtimeErrorDetail } from "./runc_like_runtime.ts";

Deno.test("createArgs", async (t) => {
  await t.step("runc with cgroupfs", () => {
    const runc = new RuncLikeRuntime({ name: "runc", path: "/usr/sbin/runc", root: "/run/runc" });
    assertEquals(runc.createArgs("c1", { bundle: "/b", pidFile: "/b/pid" }), [
      "/usr/sbin/runc",
      "--root",
      "/run/runc",
      "--log-format",
      "json",
      "--log",
      "/b/runtime.log",
      "create",
      "--bundle",
      "/b",
      "--pid-file",
      "/b/pid",
      "c1",
    ]);
  });
  await t.step("runsc with extra flags, systemd, console socket and options", () => {
    const runsc = new RuncLikeRuntime({
      name: "runsc",
      path: "/usr/bin/runsc",
      extraArgs: ["--platform=ptrace", "--network=none"],
      cgroupManager: "systemd",
    });
    assertEquals(
      runsc.createArgs("c1", {
        bundle: "/b",
        pidFile: "/p",
        consoleSocket: "/s.sock",
        logPath: "/l.json",
        noPivot: true,
        noNewKeyring: true,
      }),
      [
        "/usr/bin/runsc",
        "--platform=ptrace",
        "--network=none",
        "--systemd-cgroup",
        "--log-format",
        "json",
        "--log",
        "/l.json",
        "create",
        "--bundle",
        "/b",
        "--pid-file",
        "/p",
        "--console-socket",
        "/s.sock",
        "--no-pivot",
        "--no-new-keyring",
        "c1",
      ],
    );
  });
  await t.step("IDs that could pass for flags are refused", () => {
    const runc = new RuncLikeRuntime({ name: "runc", path: "runc" });
    for (const id of ["-rf", "", "a/b", "a b"]) {
      assertThrows(() => runc.createArgs(id, { bundle: "/b", pidFile: "/p" }), InvalidArgument);
    }
  });
});

Deno.test("runtimeErrorDetail", async (t) => {
  const cases: [string, Parameters<typeof runtimeErrorDetail>[0], string][] = [
    ["runc JSON on stderr", {
      stderr: '{"level":"error","msg":"container does not exist","time":"2026-01-01T00:00:00Z"}\n',
      stdout: "",
      code: 1,
    }, "container does not exist"],
    ["logrus text", {
      stderr: 'time="2026-01-01T00:00:00Z" level=error msg="exec failed: cannot exec in a stopped container"\n',
      stdout: "",
      code: 255,
    }, "exec failed: cannot exec in a stopped container"],
    [
      "plain (runsc)",
      { stderr: "loading container: file does not exist\n", stdout: "", code: 128 },
      "loading container: file does not exist",
    ],
    ["log file: last error wins over warnings", {
      log: '{"level":"warning","msg":"w"}\n{"level":"error","msg":"first"}\n{"level":"error","msg":"second"}\n' +
        '{"level":"info","msg":"after"}\n',
      stderr: "",
      stdout: "",
      code: 1,
    }, "second"],
    ["log file without errors falls back to stderr", {
      log: '{"level":"info","msg":"i"}',
      stderr: "boom",
      stdout: "",
      code: 1,
    }, "boom"],
    ["nothing at all", { stderr: "", stdout: "", code: 3 }, "exit code 3"],
  ];
  for (const [name, input, want] of cases) await t.step(name, () => assertEquals(runtimeErrorDetail(input), want));
});

Deno.test("classifyRuntimeFailure", async (t) => {
  const cases: [string, ReturnType<typeof classifyRuntimeFailure>][] = [
    ["container does not exist", "not-found"],
    ["loading container: file does not exist", "not-found"],
    ['loading container "abc": file does not exist', "not-found"],
    ["error opening file `/run/crun/abc/status`: No such file or directory", "not-found"],
    ["runc create failed: container with given ID already exists", "exists"],
    ["creating container: cannot lock container metadata file: container already exists", "exists"],
    ["exec failed: cannot exec in a stopped container", "not-running"],
    ["container not running", "not-running"],
    ['executing processes for container: cannot execute in container "s2" in state stopped', "not-running"],
    ['exec failed: unable to start container process: exec: "x": executable file not found in $PATH', "other"],
    ["cgroups in hybrid mode not supported, drop all controllers from cgroupv2", "other"],
  ];
  for (const [detail, want] of cases) await t.step(detail, () => assertEquals(classifyRuntimeFailure(detail), want));
});

Deno.test("parseOciState", async (t) => {
  await t.step("runc", () => {
    assertEquals(
      parseOciState({
        ociVersion: "1.0.2-dev",
        id: "c1",
        pid: 42,
        status: "running",
        bundle: "/b",
        rootfs: "/b/rootfs",
        created: "2026-01-01T00:00:00Z",
        owner: "",
        annotations: { a: "b", n: 1 },
      }),
      {
        ociVersion: "1.0.2-dev",
        id: "c1",
        status: "running",
        pid: 42,
        bundle: "/b",
        annotations: { a: "b" },
        created: "2026-01-01T00:00:00Z",
      },
    );
  });
  await t.step("runsc stopped: pid -1 becomes 0", () => {
    assertEquals(parseOciState({ ociVersion: "1", id: "c", status: "stopped", pid: -1, bundle: "/b" }).pid, 0);
  });
  await t.step("unknown status", () => {
    assertThrows(() => parseOciState({ id: "c", status: "zombie" }), TypeError, "unknown status");
  });
});

Deno.test("runCommand", async (t) => {
  await t.step("output and code", async () => {
    const r = await runCommand(["sh", "-c", "echo out; echo err >&2; exit 4"], { what: "t", timeoutMs: 5000 });
    assertEquals([r.code, new TextDecoder().decode(r.stdout), new TextDecoder().decode(r.stderr)], [
      4,
      "out\n",
      "err\n",
    ]);
  });
  await t.step("input", async () => {
    const r = await runCommand(["cat"], { what: "t", timeoutMs: 5000, input: new TextEncoder().encode("hi") });
    assertEquals(new TextDecoder().decode(r.stdout), "hi");
  });
  await t.step("capped output is drained, not blocking", async () => {
    const r = await runCommand(["sh", "-c", "head -c 300000 /dev/zero"], {
      what: "t",
      timeoutMs: 5000,
      maxOutputBytes: 1000,
    });
    assertEquals([r.stdout.byteLength, r.truncated, r.code], [1000, true, 0]);
  });
  await t.step("deadline", async () => {
    await assertRejects(
      () => runCommand(["sleep", "10"], { what: "runc state x", timeoutMs: 100 }),
      DeadlineExceeded,
      "runc state x: timed out after 100ms",
    );
  });
  await t.step("deadline: beforeKill runs first and the child may exit on its own", async () => {
    const dir = await Deno.makeTempDir({ prefix: "davit-runcommand-" });
    try {
      // The child waits for a grandchild, as `runc exec` for the exec'd process: killing the grandchild ends it.
      const script = `sleep 10 & echo $! > ${dir}/pid; wait; echo reaped > ${dir}/done`;
      const t0 = Date.now();
      await assertRejects(
        () =>
          runCommand(["sh", "-c", script], {
            what: "t",
            timeoutMs: 200,
            stopGraceMs: 5000,
            beforeKill: async () => {
              Deno.kill(Number((await Deno.readTextFile(`${dir}/pid`)).trim()), "SIGKILL");
              return true;
            },
          }),
        DeadlineExceeded,
      );
      assert(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
      assertEquals((await Deno.readTextFile(`${dir}/done`)).trim(), "reaped");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("deadline: beforeKill with nothing to signal, or failing, means SIGKILL at once", async () => {
    for (const beforeKill of [() => Promise.resolve(false), () => Promise.reject(new Error("no"))]) {
      const t0 = Date.now();
      await assertRejects(
        () => runCommand(["sleep", "10"], { what: "t", timeoutMs: 100, stopGraceMs: 5000, beforeKill }),
        DeadlineExceeded,
      );
      assert(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    }
  });
  await t.step("abort: beforeKill runs, the abort reason is thrown", async () => {
    const ac = new AbortController();
    let ran = false;
    setTimeout(() => ac.abort(new Error("gone")), 100);
    await assertRejects(
      () =>
        runCommand(["sleep", "10"], {
          what: "t",
          timeoutMs: 10_000,
          signal: ac.signal,
          beforeKill: () => {
            ran = true;
            return Promise.resolve(false);
          },
        }),
      Error,
      "gone",
    );
    assert(ran);
  });
  await t.step("missing binary", async () => {
    await assertRejects(
      () => runCommand(["/nonexistent/runc"], { what: "runc start x", timeoutMs: 100 }),
      Unavailable,
      "runc start x: cannot run /nonexistent/runc",
    );
  });
});
