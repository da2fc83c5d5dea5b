// End to end: containers through a real daemon with real runc, images from the loopback registry, logs and exit
// statuses kept by the pod monitor, and restarts of the daemon that lose nothing.
import { assert, assertEquals } from "./assert.ts";
import type { CriCallError, CriClient, Msg } from "./cri_client.ts";
import { startDaemon } from "./daemon.ts";
import { container, exited, logLines, pod, registryFiles, removeAllPods, status } from "./cri_helpers.ts";
import { startRegistry, type TestRegistry } from "./fixtures/registry.ts";
import { busybox, docker } from "./fixtures/images.ts";

interface Env {
  reg: TestRegistry;
  bb: string;
  dock: string;
}

async function setup(): Promise<Env> {
  const reg = await startRegistry();
  const bb = (await busybox(reg)).reference;
  const dock = (await docker(reg)).reference;
  return { reg, bb, dock };
}

/** Removes every pod; then neither davit nor runc knows any of the test's containers. */
async function cleanup(c: CriClient, ids: string[]): Promise<void> {
  for (const p of (await c.call("ListPodSandbox", {})).items) {
    await c.call("RemovePodSandbox", { pod_sandbox_id: p.id });
  }
  assertEquals((await c.call("ListContainers", {})).containers, []);
  const runc = await new Deno.Command("runc", { args: ["--root", "/run/runc", "list", "-q"], stdout: "piped" })
    .output();
  const known = new TextDecoder().decode(runc.stdout).split("\n");
  for (const id of ids) assert(!known.includes(id), `runc still knows ${id}`);
}

Deno.test("container lifecycle with logs, exit codes, entrypoint/cmd and users", async (t) => {
  const env = await setup();
  try {
    await using d = await startDaemon({ files: registryFiles(env.reg) });
    using c = d.client();
    // Pods outlive the daemon by design: whatever happens in the steps, remove them before the daemon stops.
    await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
    await c.call("PullImage", { image: { image: env.bb } });
    await c.call("PullImage", { image: { image: env.dock } });
    const logDir = `${d.dir}/logs`;
    const p = await pod(c, "life", logDir);

    await t.step("create, start, logs with stream and P/F tags, exit code and reason", async () => {
      const long = "x".repeat(20_000);
      const id = await container(c, p, "echo", env.bb, {
        command: ["sh", "-c", `echo out; echo err >&2; printf '${long}\\n'; printf 'no newline'; exit 3`],
      });
      assertEquals((await status(c, id)).state, "CONTAINER_CREATED");
      await c.call("StartContainer", { container_id: id });
      const s = await exited(c, id);
      assertEquals(s.exit_code, 3);
      assertEquals(s.reason, "Error");
      assert(BigInt(s.finished_at) >= BigInt(s.started_at) && BigInt(s.started_at) > 0n);
      assertEquals(s.log_path, `${logDir}/echo.log`);
      const lines = await logLines(s.log_path);
      assertEquals(lines.filter(([st]) => st === "stdout").map(([, , x]) => x).slice(0, 1), ["out"]);
      assertEquals(lines.filter(([st]) => st === "stderr").map(([, tag, x]) => [tag, x]), [["F", "err"]]);
      const longParts = lines.filter(([st, , x]) => st === "stdout" && x.startsWith("x"));
      assert(longParts.length >= 2, "a 20000-byte line is split");
      assert(longParts.slice(0, -1).every(([, tag]) => tag === "P") && longParts.at(-1)![1] === "F");
      assertEquals(longParts.map(([, , x]) => x).join(""), long);
      assertEquals(lines.at(-1)!.slice(2), ["no newline"]);
    });
    await t.step("a clean exit is Completed with code 0", async () => {
      const id = await container(c, p, "ok", env.bb, { command: ["true"] });
      await c.call("StartContainer", { container_id: id });
      const s = await exited(c, id);
      assertEquals([s.exit_code, s.reason], [0, "Completed"]);
    });
    const run = async (name: string, image: string, extra: Msg): Promise<string> => {
      const id = await container(c, p, name, image, extra);
      await c.call("StartContainer", { container_id: id });
      const s = await exited(c, id);
      return (await logLines(s.log_path)).filter(([st]) => st === "stdout").map(([, , x]) => x).join("\n");
    };
    await t.step("entrypoint / cmd / command / args matrix", async () => {
      assertEquals(await run("m1", env.dock, {}), "hello from docker");
      assertEquals(await run("m2", env.dock, { args: ["from", "args"] }), "from args");
      assertEquals(await run("m3", env.dock, { command: ["/bin/echo", "cmd"] }), "cmd");
      assertEquals(await run("m4", env.dock, { command: ["/bin/echo"], args: ["a", "b"] }), "a b");
      assertEquals(
        await run("m5", env.bb, { args: ["-c", "echo via cmd override"], command: ["sh"] }),
        "via cmd override",
      );
    });
    await t.step("user and group matrix", async () => {
      assertEquals(await run("u1", env.bb, { command: ["id"] }), "uid=0(root) gid=0(root)");
      assertEquals(await run("u2", env.dock, { command: ["id"] }), "uid=1000(app) gid=1000(app) groups=2000(extra)");
      assertEquals(
        await run("u3", env.bb, { command: ["id"], linux: { security_context: { run_as_user: { value: 65534 } } } }),
        "uid=65534(nobody) gid=65534(nobody)",
      );
      assertEquals(
        await run("u4", env.bb, {
          command: ["id"],
          linux: { security_context: { run_as_username: "app", supplemental_groups: [3000] } },
        }),
        "uid=1000(app) gid=1000(app) groups=2000(extra),3000",
      );
      assertEquals(
        await run("u5", env.bb, {
          command: ["id"],
          linux: { security_context: { run_as_user: { value: 1000 }, run_as_group: { value: 4000 } } },
        }),
        "uid=1000(app) gid=4000 groups=2000(extra)",
      );
    });
    await t.step("the environment: image, then CRI, HOSTNAME", async () => {
      const out = await run("e1", env.dock, {
        command: ["/bin/sh", "-c", "echo $DAVIT_IMAGE $X $HOSTNAME"],
        envs: [{ key: "X", value: new TextEncoder().encode("y") }],
      });
      assertEquals(out, "docker y life");
    });
    await t.step("ExecSync: output, exit code, not-running refusal, timeout, output cap", async () => {
      const id = await container(c, p, "exec-target", env.bb, { command: ["sleep", "1000"] });
      const notRunning = await c.call("ExecSync", { container_id: id, cmd: ["true"] }).catch((e) => e as CriCallError);
      assertEquals(notRunning.codeName, "FAILED_PRECONDITION");
      await c.call("StartContainer", { container_id: id });
      const r = await c.call("ExecSync", {
        container_id: id,
        cmd: ["sh", "-c", "echo hi; echo oops >&2; id -u; exit 4"],
      });
      assertEquals(new TextDecoder().decode(r.stdout), "hi\n0\n");
      assertEquals(new TextDecoder().decode(r.stderr), "oops\n");
      assertEquals(r.exit_code, 4);
      const slow = await c.call("ExecSync", { container_id: id, cmd: ["sleep", "600"], timeout: 1 }).catch((e) =>
        e as CriCallError
      );
      assertEquals(slow.codeName, "DEADLINE_EXCEEDED");
      assert(slow.message.includes("timed out"));
      // The timed-out process is gone at once: neither running nor a zombie (an empty cmdline, state Z).
      const ps = await c.call("ExecSync", {
        container_id: id,
        cmd: ["sh", "-c", "for p in /proc/[0-9]*; do cat $p/cmdline; echo; cat $p/stat; done"],
      });
      const lines = new TextDecoder().decode(ps.stdout).split("\n").map((l) => l.replaceAll("\0", " ").trim());
      assert(!lines.includes("sleep 600"), lines.join(" | "));
      assert(!lines.some((l) => /^\d+ \(sleep\) Z /.test(l)), lines.join(" | "));
      const big = await c.call("ExecSync", { container_id: id, cmd: ["sh", "-c", "yes | head -c 20000000"] }, {
        timeoutMs: 60_000,
      });
      assertEquals(big.stdout.length, 16 << 20);
      assert(new TextDecoder().decode(big.stderr).includes("output cut"));
      await c.call("StopContainer", { container_id: id, timeout: 0 });
    });
    await t.step("StopContainer on a process that ignores SIGTERM ends by SIGKILL after the timeout", async () => {
      const id = await container(c, p, "stubborn", env.bb, {
        command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
      });
      await c.call("StartContainer", { container_id: id });
      const t0 = Date.now();
      await c.call("StopContainer", { container_id: id, timeout: 2 });
      const took = Date.now() - t0;
      assert(took >= 1900, `stop waited ${took} ms`);
      const s = await status(c, id);
      assertEquals([s.state, s.exit_code], ["CONTAINER_EXITED", 137]);
      await c.call("StopContainer", { container_id: id, timeout: 2 });
    });
    await t.step("StopContainer with a cooperative process exits by SIGTERM quickly", async () => {
      const id = await container(c, p, "polite", env.bb, {
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"],
      });
      await c.call("StartContainer", { container_id: id });
      await c.call("StopContainer", { container_id: id, timeout: 30 });
      assertEquals((await status(c, id)).exit_code, 0);
    });
    await t.step("OOMKilled with a memory limit", async () => {
      const id = await container(c, p, "hog", env.bb, {
        command: ["sh", "-c", "x=$(yes | head -c 200000000); echo never"],
        linux: { resources: { memory_limit_in_bytes: 16 * 1024 * 1024, memory_swap_limit_in_bytes: 16 * 1024 * 1024 } },
      });
      await c.call("StartContainer", { container_id: id });
      const s = await exited(c, id);
      assertEquals(s.reason, "OOMKilled", JSON.stringify(s));
      assertEquals(s.exit_code, 137);
      // ContainerStatus reports the resources applied.
      assertEquals(Number(s.resources.linux.memory_limit_in_bytes), 16 * 1024 * 1024);
      assertEquals(Number(s.resources.linux.memory_swap_limit_in_bytes), 16 * 1024 * 1024);
    });
    await t.step("ContainerStatus reports cpu resources as applied", async () => {
      const id = await container(c, p, "cpu", env.bb, {
        command: ["true"],
        linux: { resources: { cpu_period: 100000, cpu_quota: 50000, cpu_shares: 512, cpuset_cpus: "0" } },
      });
      await c.call("StartContainer", { container_id: id });
      const r = (await exited(c, id)).resources.linux;
      assertEquals([r.cpu_period, r.cpu_quota, r.cpu_shares, r.cpuset_cpus].map(String), [
        "100000",
        "50000",
        "512",
        "0",
      ]);
    });
    await t.step(
      "security context: capabilities within davit's bounding set, seccomp path, groups, paths",
      async () => {
        const line = (name: string, text: string) => new RegExp(`^${name}:\\s*(\\S+)$`, "m").exec(text)?.[1];
        const bnd = line("CapBnd", await Deno.readTextFile("/proc/self/status"))!;
        const caps = "grep -E '^(CapBnd|CapEff)' /proc/self/status";
        for (
          const [name, sc] of [["s1", { privileged: true }], ["s2", { capabilities: { add_capabilities: ["ALL"] } }]]
        ) {
          const out = await run(name as string, env.bb, {
            command: ["sh", "-c", caps],
            linux: { security_context: sc },
          });
          assertEquals([line("CapBnd", out), line("CapEff", out)], [bnd, bnd], `${name}: ${out}`);
        }
        const refused = async (name: string, sc: Msg, ...words: string[]) => {
          const err = await container(c, p, name, env.bb, { command: ["true"], linux: { security_context: sc } })
            .then(() => undefined, (e) => e as CriCallError);
          assertEquals(err?.codeName, "INVALID_ARGUMENT", name);
          for (const w of words) assert(err!.details.includes(w), `${name}: ${err!.details}`);
        };
        if (!(BigInt(`0x${bnd}`) & (1n << 24n))) {
          await refused("s3", { capabilities: { add_capabilities: ["SYS_RESOURCE"] } }, "CAP_SYS_RESOURCE", "bounding");
        }
        const seccomp = (name: string, path: string) =>
          run(name, env.bb, {
            command: ["sh", "-c", "grep '^Seccomp:' /proc/self/status"],
            linux: { security_context: { seccomp_profile_path: path } },
          });
        assertEquals(await seccomp("s4", "unconfined"), "Seccomp:\t0");
        assertEquals(await seccomp("s5", "runtime/default"), "Seccomp:\t2");
        assertEquals(await seccomp("s6", ""), "Seccomp:\t2");
        await refused("s7", { seccomp_profile_path: "bogus/x" }, '"bogus/x"');
        await refused("s8", { run_as_group: { value: 5 } }, "run_as_group", "run_as_user", "run_as_username");
        const procSys = await run("s9", env.bb, {
          command: ["sh", "-c", "grep ' /proc/sys ' /proc/mounts; cat /proc/timer_list | wc -c"],
          linux: { security_context: { masked_paths: ["/proc/timer_list"] } },
        });
        assert(/ \/proc\/sys proc ro[, ]/.test(procSys), `read-only paths kept with masked_paths alone: ${procSys}`);
        assertEquals(procSys.split("\n").at(-1)?.trim(), "0");
      },
    );
    await t.step(
      "ListContainers filters; RemoveContainer is idempotent; the image in use cannot be removed",
      async () => {
        const all = (await c.call("ListContainers", {})).containers;
        assert(all.length >= 10);
        const byName =
          (await c.call("ListContainers", { filter: { pod_sandbox_id: p.id, state: { state: "CONTAINER_EXITED" } } }))
            .containers;
        assertEquals(byName.length, all.length);
        const err = await c.call("RemoveImage", { image: { image: env.bb } }).catch((e) => e as CriCallError);
        assertEquals(err.codeName, "FAILED_PRECONDITION");
        const one = all[0].id;
        await c.call("RemoveContainer", { container_id: one });
        await c.call("RemoveContainer", { container_id: one });
        assertEquals((await c.call("ListContainers", { filter: { id: one } })).containers, []);
      },
    );
    await t.step("removing the pod removes its containers, mounts and runc state", async () => {
      const ids = (await c.call("ListContainers", {})).containers.map((x: Msg) => x.id);
      await cleanup(c, ids);
      const mounts = await Deno.readTextFile("/proc/self/mountinfo");
      assert(!mounts.includes(`${d.root}/containers`), "no rootfs left mounted");
    });
  } finally {
    await env.reg.stop();
  }
});

Deno.test("runtime handlers: a runsc pod runs its container under gVisor; crun's refusal is reported", async (t) => {
  const env = await setup();
  try {
    await using d = await startDaemon({
      files: {
        ...registryFiles(env.reg),
        // gVisor here needs its ptrace platform, and its own network stack refuses this kernel (docs/runtimes.md).
        "etc/davit.conf.d/20-runsc.toml":
          '[davit.runtime.runtimes.runsc]\nruntime_args = ["--platform=ptrace", "--network=none"]\n',
      },
    });
    using c = d.client();
    await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
    await c.call("PullImage", { image: { image: env.bb } });
    const run = async (handler: string) => {
      const config = {
        metadata: { name: handler, namespace: "test", uid: `uid-${handler}` },
        hostname: handler,
        log_directory: `${d.dir}/logs`,
      };
      const podId = (await c.call("RunPodSandbox", { config, runtime_handler: handler })).pod_sandbox_id;
      assertEquals((await c.call("PodSandboxStatus", { pod_sandbox_id: podId })).status.runtime_handler, handler);
      return { id: podId, config };
    };
    await t.step("runsc", async () => {
      const p = await run("runsc");
      const id = await container(c, p, "kernel", env.bb, { command: ["sh", "-c", "uname -r; exit 5"] });
      await c.call("StartContainer", { container_id: id });
      const s = await exited(c, id);
      assertEquals(s.exit_code, 5);
      const lines = (await logLines(s.log_path)).map(([, , x]) => x);
      const host = Deno.osRelease();
      assert(
        lines.length === 1 && lines[0] !== host,
        `gVisor reports its own kernel (${lines[0]}), not the host's ${host}`,
      );
    });
    await t.step("crun: created or refused with the runtime's own reason", async () => {
      const p = await run("crun");
      const r = await container(c, p, "c", env.bb, { command: ["true"] }).then(
        () => "created",
        (e) => (e as Error).message,
      );
      assert(r === "created" || r.includes("cgroups in hybrid mode not supported"), r);
    });
  } finally {
    await env.reg.stop();
  }
});

Deno.test("the daemon killed with SIGKILL while containers run and log: nothing is lost", async () => {
  const env = await setup();
  const first = await startDaemon({ files: registryFiles(env.reg) });
  try {
    const c1 = first.client();
    await c1.call("PullImage", { image: { image: env.bb } });
    const p = await pod(c1, "survivor", `${first.dir}/logs`);
    const ticker = await container(c1, p, "ticker", env.bb, {
      command: ["sh", "-c", "i=0; while [ $i -lt 40 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done; exit 7"],
    });
    const sleeper = await container(c1, p, "sleeper", env.bb, { command: ["sleep", "1000"] });
    await c1.call("StartContainer", { container_id: ticker });
    await c1.call("StartContainer", { container_id: sleeper });
    c1.close();
    await new Promise((r) => setTimeout(r, 300));
    first.kill("SIGKILL");
    await first.status;
    // While the daemon is down, the ticker finishes and keeps logging through its monitor.
    await new Promise((r) => setTimeout(r, 4500));
    await using second = await startDaemon({ dir: first.dir });
    using c = second.client();
    const s = await status(c, ticker);
    assertEquals([s.state, s.exit_code, s.reason], ["CONTAINER_EXITED", 7, "Error"]);
    const ticks = (await logLines(s.log_path)).map(([, , x]) => x);
    assertEquals(ticks, Array.from({ length: 40 }, (_, i) => `tick ${i}`));
    assertEquals((await status(c, sleeper)).state, "CONTAINER_RUNNING");
    await c.call("StopContainer", { container_id: sleeper, timeout: 1 });
    assertEquals((await status(c, sleeper)).exit_code, 137);
    await c.call("RemovePodSandbox", { pod_sandbox_id: p.id });
  } finally {
    await first.stop();
    await Deno.remove(first.dir, { recursive: true }).catch(() => {});
    await env.reg.stop();
  }
});

Deno.test("SIGKILL during CreateContainer, then restart: nothing leaked", async () => {
  const env = await setup();
  const first = await startDaemon({ files: registryFiles(env.reg) });
  try {
    const c1 = first.client();
    await c1.call("PullImage", { image: { image: env.bb } });
    const p = await pod(c1, "crashy", `${first.dir}/logs`);
    c1.close();
    let d = first;
    for (const delay of [5, 20, 40, 80]) {
      const c = d.client();
      const call = container(c, p, `c${delay}`, env.bb, { command: ["sleep", "100"] }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, delay));
      d.kill("SIGKILL");
      await d.status;
      await call;
      c.close();
      d = await startDaemon({ dir: first.dir });
      using c2 = d.client();
      for (const ctr of (await c2.call("ListContainers", {})).containers) {
        assertEquals(ctr.state, "CONTAINER_CREATED", "a container that survived is whole");
        await c2.call("RemoveContainer", { container_id: ctr.id });
      }
      const left = await Array.fromAsync(Deno.readDir(`${d.root}/containers`)).catch(() => []).then((es) =>
        es.map((e) => e.name)
      );
      assertEquals(left, [], "no container layers left");
      assert(!(await Deno.readTextFile("/proc/self/mountinfo")).includes(`${d.root}/containers`), "no rootfs mounted");
    }
    using c3 = d.client();
    await c3.call("RemovePodSandbox", { pod_sandbox_id: p.id });
    await d.stop();
  } finally {
    await first.stop();
    await Deno.remove(first.dir, { recursive: true }).catch(() => {});
    await env.reg.stop();
  }
});

Deno.test("a pod without a log directory logs under log_dir, and RemovePodSandbox removes that directory", async () => {
  const env = await setup();
  try {
    await using d = await startDaemon({ files: registryFiles(env.reg) });
    using c = d.client();
    await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
    await c.call("PullImage", { image: { image: env.bb } });
    const config = { metadata: { name: "nolog", namespace: "test", uid: "uid-nolog" } };
    const p = { id: (await c.call("RunPodSandbox", { config })).pod_sandbox_id, config };
    const id = await container(c, p, "talk", env.bb, { command: ["echo", "hi"] });
    await c.call("StartContainer", { container_id: id });
    const s = await exited(c, id);
    const dir = `${d.dir}/pod-logs/test_nolog_uid-nolog`;
    assertEquals(s.log_path, `${dir}/talk.log`);
    assertEquals((await logLines(s.log_path)).map(([, , x]) => x), ["hi"]);
    await c.call("RemovePodSandbox", { pod_sandbox_id: p.id });
    assertEquals(await Deno.stat(dir).then(() => true, () => false), false);
  } finally {
    await env.reg.stop();
  }
});
