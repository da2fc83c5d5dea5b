/**
 * The conformance suite every {@link OciRuntime} must pass (runc, runsc, crun where the host allows it, and the
 * fake): the lifecycle of one busybox container with the error kinds callers rely on. Test support only; also
 * exports the busybox bundle builder other runtime tests use.
 * @module
 */
import { AlreadyExists, DeadlineExceeded, FailedPrecondition, NotFound } from "../lib/errors.ts";
import { assert, assertEquals, assertRejects } from "../tests/assert.ts";
import type { OciRuntime, OciState } from "./oci_runtime.ts";

/** Options for {@link makeBusyboxBundle}. */
export interface BusyboxBundleOptions {
  /** The container's command line. */
  args: string[];
  /** Changes config.json after the defaults (namespaces, hostname, cgroupsPath, ...). */
  edit?: (config: Record<string, any>) => void;
  /** Source of the static busybox binary. */
  busybox?: string;
}

/**
 * Writes an OCI bundle at `dir`: a rootfs of the host's static busybox with a symlink per applet in /bin, and
 * config.json from `runc spec` with the given args, no terminal, and a writable root.
 */
export async function makeBusyboxBundle(dir: string, opts: BusyboxBundleOptions): Promise<string> {
  const busybox = opts.busybox ?? "/bin/busybox";
  await Deno.mkdir(`${dir}/rootfs/bin`, { recursive: true });
  for (const d of ["proc", "sys", "dev", "tmp", "etc", "root"]) await Deno.mkdir(`${dir}/rootfs/${d}`);
  await Deno.copyFile(busybox, `${dir}/rootfs/bin/busybox`);
  const list = await new Deno.Command(busybox, { args: ["--list"], stdout: "piped", stderr: "null" }).output();
  for (const applet of new TextDecoder().decode(list.stdout).split("\n")) {
    if (applet !== "" && applet !== "busybox") await Deno.symlink("busybox", `${dir}/rootfs/bin/${applet}`);
  }
  const spec = await new Deno.Command("runc", { args: ["spec", "--bundle", dir], stderr: "piped" }).output();
  if (!spec.success) throw new Error(`runc spec: ${new TextDecoder().decode(spec.stderr)}`);
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  config.process.args = opts.args;
  config.process.terminal = false;
  config.root.readonly = false;
  opts.edit?.(config);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config, null, 2));
  return dir;
}

const decoder = new TextDecoder();

async function waitForStatus(runtime: OciRuntime, id: string, status: string, ms = 10_000): Promise<OciState> {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = await runtime.state(id);
    if (s?.status === status) return s;
    if (Date.now() > deadline) throw new Error(`container ${id}: still ${s?.status ?? "absent"}, wanted ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs the lifecycle steps against `runtime` (with its root set up by the caller), cleaning up the container
 * and its bundle whatever happens. `name` keeps IDs and temporary directories apart between runtimes.
 */
export async function runOciRuntimeConformance(t: Deno.TestContext, runtime: OciRuntime, name: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `davit-conformance-${name}-` });
  const id = `davit-conf-${name}-${crypto.randomUUID().slice(0, 8)}`;
  const pidFile = `${dir}/pid`;
  try {
    // PID 1 ignores SIGTERM unless it handles it: the trap makes SIGTERM stop the container.
    const bundle = await makeBusyboxBundle(`${dir}/bundle`, {
      args: ["sh", "-c", 'trap "exit 0" TERM; sleep 1000 & wait'],
    });
    let pid = 0;

    await t.step("state of an unknown container is undefined", async () => {
      assertEquals(await runtime.state(id), undefined);
    });

    await t.step("create: created, with the pid in the pid file", async () => {
      await runtime.create(id, { bundle, pidFile });
      const s = await runtime.state(id);
      assertEquals(s?.status, "created");
      assertEquals(s?.id, id);
      assert(s !== undefined && s.pid > 0, `pid ${s?.pid}`);
      pid = s.pid;
      assertEquals(Number((await Deno.readTextFile(pidFile)).trim()), pid);
    });

    await t.step("create of an existing ID is AlreadyExists and keeps the first", async () => {
      await assertRejects(() => runtime.create(id, { bundle, pidFile: `${dir}/pid2` }), AlreadyExists);
      assertEquals((await runtime.state(id))?.status, "created");
    });

    await t.step("start: running with the same pid", async () => {
      await runtime.start(id);
      const s = await runtime.state(id);
      assertEquals(s?.status, "running");
      assertEquals(s?.pid, pid);
    });

    if (runtime.list) {
      await t.step("list includes the container", async () => {
        const all = await runtime.list!();
        assertEquals(all.find((s) => s.id === id)?.status, "running");
      });
    }

    await t.step("exec: output and exit codes", async () => {
      const hello = await runtime.exec(id, { args: ["echo", "hello"] });
      assertEquals([hello.exitCode, decoder.decode(hello.stdout)], [0, "hello\n"]);
      const three = await runtime.exec(id, { args: ["sh", "-c", "echo oops >&2; exit 3"] });
      assertEquals([three.exitCode, decoder.decode(three.stderr)], [3, "oops\n"]);
      const spec = await runtime.exec(id, {
        process: { args: ["sh", "-c", "echo $FOO"], env: ["FOO=bar", "PATH=/bin"], cwd: "/", user: { uid: 0, gid: 0 } },
      });
      assertEquals(decoder.decode(spec.stdout), "bar\n");
    });

    await t.step("exec of a missing binary is a runtime error", async () => {
      const err = await assertRejects(() => runtime.exec(id, { args: ["/nonexistent"] }));
      assert(err.message.includes(`${runtime.name} exec ${id}:`), err.message);
    });

    await t.step("exec --detach reports the process pid", async () => {
      const res = await runtime.exec(id, { args: ["sleep", "1"], detach: true, pidFile: `${dir}/exec.pid` });
      assert(res.pid !== undefined && res.pid > 0, `pid ${res.pid}`);
    });

    // The fake runs no processes.
    if (name !== "fake") {
      await t.step("exec past its deadline: DeadlineExceeded, and the process is gone, not even a zombie", async () => {
        const execPidFile = `${dir}/timeout.pid`;
        await assertRejects(
          () => runtime.exec(id, { args: ["sleep", "600"], timeoutMs: 500, pidFile: execPidFile }),
          DeadlineExceeded,
        );
        // runc's PID file holds the process's host PID (runsc's its exec process's): a zombie would still have
        // its /proc entry, reparented to the host's init.
        const execPid = Number((await Deno.readTextFile(execPidFile)).trim());
        assert(execPid > 0, `pid ${execPid}`);
        assert(!(await exists(`/proc/${execPid}`)), `pid ${execPid} (${await procStatus(execPid)}) is left`);
        assertEquals(await hostProcesses("sleep\x00600\x00"), []);
        // In the container too (runsc's sandbox has its own /proc).
        const ps = await runtime.exec(id, {
          args: ["sh", "-c", "for p in /proc/[0-9]*; do cat $p/cmdline; echo; done"],
        });
        const cmdlines = decoder.decode(ps.stdout).split("\n").map((l) => l.replaceAll("\0", " ").trim());
        assert(!cmdlines.includes("sleep 600"), cmdlines.join(" | "));
      });
    }

    await t.step("kill SIGTERM: stopped", async () => {
      await runtime.kill(id, "SIGTERM");
      const s = await waitForStatus(runtime, id, "stopped");
      assertEquals(s.pid, 0);
    });

    await t.step("exec in a stopped container is FailedPrecondition", async () => {
      const err = await assertRejects(() => runtime.exec(id, { args: ["true"] }), FailedPrecondition);
      assert(/stopped|not running/.test(err.message), err.message);
    });

    await t.step("kill of a stopped container is FailedPrecondition", async () => {
      await assertRejects(() => runtime.kill(id, "SIGKILL"), FailedPrecondition);
    });

    await t.step("delete: gone", async () => {
      await runtime.delete(id);
      assertEquals(await runtime.state(id), undefined);
      if (runtime.list) assertEquals((await runtime.list()).find((s) => s.id === id), undefined);
    });

    await t.step("delete of a missing container: NotFound, idempotent with force", async () => {
      await assertRejects(() => runtime.delete(id), NotFound);
      await runtime.delete(id, { force: true });
      await assertRejects(() => runtime.kill(id, "SIGTERM"), NotFound);
    });
  } finally {
    await runtime.delete(id, { force: true }).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** The PIDs of host processes whose command line is `cmdline` (NUL-separated, as in /proc). */
async function hostProcesses(cmdline: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const text = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    if (text === cmdline) pids.push(Number(e.name));
  }
  return pids;
}

/** A process's state line from /proc, for messages. */
async function procStatus(pid: number): Promise<string> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  return text.split("\n").filter((l) => /^(Name|State|PPid):/.test(l)).join(", ");
}
