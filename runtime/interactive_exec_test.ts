// Interactive exec against real runc and runsc in a busybox container (piped stdio and a terminal), plus the
// console-socket hand-over of a detached runc exec and the fake's interactive exec. Needs root, runc and runsc.
import { FailedPrecondition } from "../lib/errors.ts";
import { ConsoleSocket } from "../lib/console_socket.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { terminalProcess } from "./interactive_exec.ts";
import { makeBusyboxBundle } from "./oci_runtime_conformance.ts";
import type { InteractiveExec, OciRuntime } from "./oci_runtime.ts";
import { FakeOciRuntime } from "./oci_runtime_fake.ts";
import { RuncLikeRuntime } from "./runc_like_runtime.ts";

const RUNC = "/usr/sbin/runc";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads `stream` until its text includes `want` (or fails after `ms`); returns the text so far. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  want: string,
  sofar = "",
  ms = 10_000,
): Promise<string> {
  let text = sofar;
  const deadline = Date.now() + ms;
  while (!text.includes(want)) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), deadline - Date.now()));
    const r = await Promise.race([reader.read(), timeout]);
    clearTimeout(timer);
    if (r === "timeout") throw new Error(`wanted ${JSON.stringify(want)}, got ${JSON.stringify(text)}`);
    if (r.done) throw new Error(`stream ended before ${JSON.stringify(want)}: ${JSON.stringify(text)}`);
    text += decoder.decode(r.value, { stream: true });
  }
  return text;
}

async function readAll(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  if (stream === null) return "";
  let s = "";
  for await (const c of stream) s += decoder.decode(c, { stream: true });
  return s;
}

async function write(exec: InteractiveExec, text: string): Promise<void> {
  const w = exec.stdin!.getWriter();
  await w.write(encoder.encode(text));
  w.releaseLock();
}

/** Host processes running `sleep <marker>` (not the runtime, whose command line holds the same words). */
function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0");
      if (argv[0] === "sleep" && argv[1] === marker) out.push(Number(e.name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function exists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`still waiting after ${ms}ms for ${cond}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The command lines of the container's processes, as its own ps sees them. */
async function containerProcesses(rt: OciRuntime, id: string): Promise<string> {
  return decoder.decode((await rt.exec(id, { args: ["ps", "-o", "args"] })).stdout);
}

/** A running busybox container for `rt` (rooted in `dir`), removed afterwards whatever happens. */
async function withContainer(
  make: (root: string, dir: string) => RuncLikeRuntime,
  fn: (rt: RuncLikeRuntime, id: string, dir: string, root: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "davit-iexec-test-" });
  const root = `${dir}/root`;
  const rt = make(root, dir);
  const id = `davit-iexec-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const bundle = await makeBusyboxBundle(`${dir}/bundle`, { args: ["sh", "-c", "sleep 100000 & wait"] });
    await rt.create(id, { bundle, pidFile: `${dir}/pid` });
    await rt.start(id);
    await fn(rt, id, dir, root);
  } finally {
    await rt.delete(id, { force: true }).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** What every runtime passes, in the running container `id`. */
async function interactiveExecSteps(
  t: Deno.TestContext,
  rt: OciRuntime,
  id: string,
  flavor: "runc" | "runsc",
): Promise<void> {
  const fdsBefore = openFds();
  await t.step("cat echoes stdin to stdout; closing stdin ends it", async () => {
    const exec = await rt.execInteractive(id, {
      args: ["cat"],
      tty: false,
      stdin: true,
      stdout: true,
      stderr: true,
    });
    const out = exec.stdout!.getReader();
    await write(exec, "hello\n");
    const first = await readUntil(out, "hello\n");
    await write(exec, "world\n");
    await exec.stdin!.close();
    out.releaseLock();
    const rest = await readAll(exec.stdout);
    assertEquals(first + rest, "hello\nworld\n");
    assertEquals(await readAll(exec.stderr), "");
    assertEquals(await exec.exited, { exitCode: 0 });
    await exec.kill();
  });

  await t.step("stderr is separate; the process's exit code comes back", async () => {
    const exec = await rt.execInteractive(id, {
      args: ["sh", "-c", "echo out; echo err >&2; exit 3"],
      tty: false,
      stdin: false,
      stdout: true,
      stderr: true,
    });
    assertEquals(exec.stdin, null);
    const [out, err] = await Promise.all([readAll(exec.stdout), readAll(exec.stderr)]);
    assertEquals([out, err], ["out\n", "err\n"]);
    assertEquals(await exec.exited, { exitCode: 3 });
    await exec.kill();
  });

  await t.step("streams not asked for are null", async () => {
    const exec = await rt.execInteractive(id, {
      args: ["sh", "-c", "echo ignored; exit 4"],
      tty: false,
      stdin: false,
      stdout: false,
      stderr: false,
    });
    assertEquals([exec.stdin, exec.stdout, exec.stderr], [null, null, null]);
    assertEquals(await exec.exited, { exitCode: 4 });
  });

  await t.step("tty: the initial size, a /dev/pts terminal and the exit code", async () => {
    const exec = await rt.execInteractive(id, {
      args: ["sh", "-c", "stty size; tty; exit 7"],
      tty: true,
      stdin: false,
      stdout: true,
      stderr: true,
      initialSize: { cols: 111, rows: 33 },
    });
    assertEquals(exec.stderr, null);
    const [out, exited] = await Promise.all([readAll(exec.stdout), exec.exited]);
    // runc gives the process the container's own /dev/pts terminal; runsc passes the daemon's pty through
    // to its sandbox, where the size works but tty(1) finds no name for it.
    assertEquals(out, `33 111\r\n${flavor === "runc" ? "/dev/pts/0" : "not a tty"}\r\n`);
    assertEquals(exited, { exitCode: 7 });
    await exec.kill();
  });

  await t.step("tty: resize reaches the process; input is echoed; closing stdin is end of file", async () => {
    const exec = await rt.execInteractive(id, {
      // runc applies the new size to the container's terminal on its own SIGWINCH, asynchronously: the script
      // waits for it to arrive instead of racing it.
      args: [
        "sh",
        "-c",
        'stty size; read line; while [ "$(stty size)" = "24 80" ]; do sleep 0.05; done; stty size; echo got $line; cat; exit 5',
      ],
      tty: true,
      stdin: true,
      stdout: true,
      stderr: false,
      initialSize: { cols: 80, rows: 24 },
    });
    const out = exec.stdout!.getReader();
    let text = await readUntil(out, "24 80\r\n");
    await exec.resize(100, 40);
    await write(exec, "go\n");
    text = await readUntil(out, "got go\r\n", text);
    assertStringIncludes(text, "go\r\n40 100\r\n");
    await write(exec, "typed\n");
    text = await readUntil(out, "typed\r\ntyped\r\n", text); // the echo, then cat's copy
    await exec.stdin!.close(); // ^D: cat reads end of file
    out.releaseLock();
    await readAll(exec.stdout);
    assertEquals(await exec.exited, { exitCode: 5 });
    await exec.kill();
    await exec.resize(10, 10); // a no-op once ended
  });

  await t.step("tty without stdout asked for still runs to its end", async () => {
    const exec = await rt.execInteractive(id, {
      args: ["sh", "-c", "seq 1 20000; exit 2"],
      tty: true,
      stdin: false,
      stdout: false,
      stderr: false,
    });
    assertEquals(exec.stdout, null);
    assertEquals(await exec.exited, { exitCode: 2 });
    await exec.kill();
  });

  for (const tty of [false, true]) {
    await t.step(`a missing executable rejects, naming it (${tty ? "tty" : "pipes"})`, async () => {
      const exec = await rt.execInteractive(id, {
        args: ["/no/such-binary"],
        tty,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      const output = Promise.all([readAll(exec.stdout), readAll(exec.stderr)]);
      const err = await assertRejects(() => exec.exited);
      assertStringIncludes(err.message, `${rt.name} exec ${id}:`);
      assertStringIncludes(err.message, "/no/such-binary");
      await exec.kill();
      await output;
    });
  }

  for (const tty of [false, true]) {
    await t.step(`kill() ends a sleeping process and leaves none (${tty ? "tty" : "pipes"})`, async () => {
      const marker = tty ? "1234568" : "1234567";
      const exec = await rt.execInteractive(id, {
        args: ["sleep", marker],
        tty,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      const output = Promise.all([readAll(exec.stdout), readAll(exec.stderr)]);
      await waitFor(async () => (await containerProcesses(rt, id)).includes(`sleep ${marker}`));
      const pids = processesWith(marker);
      if (flavor === "runc") assertEquals(pids.length, 1, "the exec'd sleep is a host process");
      await exec.kill();
      assertEquals((await exec.exited).exitCode, 137);
      await output;
      // Gone, and reaped by the runtime rather than left to init as a zombie.
      assertEquals(pids.filter(exists), []);
      const ps = await containerProcesses(rt, id);
      assert(!ps.includes(marker), ps);
      await exec.kill(); // idempotent
    });
  }

  await t.step("an aborted signal kills the exec", async () => {
    const ac = new AbortController();
    const exec = await rt.execInteractive(id, {
      args: ["sleep", "1234569"],
      tty: false,
      stdin: false,
      stdout: true,
      stderr: false,
      signal: ac.signal,
    });
    const output = readAll(exec.stdout);
    await waitFor(async () => (await containerProcesses(rt, id)).includes("sleep 1234569"));
    ac.abort();
    assertEquals((await exec.exited).exitCode, 137);
    await output;
    await exec.kill();
    const ps = await containerProcesses(rt, id);
    assert(!ps.includes("1234569"), ps);
  });

  await t.step("no descriptor is left open", () => {
    assertEquals(openFds(), fdsBefore);
  });
}

/** The descriptors this process has open (ptys, sockets and eventfds made through FFI are no Deno resources). */
function openFds(): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      return "(closed)"; // the directory listing's own descriptor
    }
  }).filter((l) => l !== "(closed)").sort();
}

/** The last steps (they stop the container). */
async function finalSteps(t: Deno.TestContext, rt: OciRuntime, id: string, dir: string): Promise<void> {
  await t.step("no temporary directories are left behind", () => {
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("davit-iexec-"));
    assertEquals(left, []);
  });

  await t.step("exec in a stopped container: exited rejects with FailedPrecondition", async () => {
    await rt.kill(id, "SIGKILL");
    for (let i = 0; i < 100 && (await rt.state(id))?.status !== "stopped"; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const exec = await rt.execInteractive(id, {
      args: ["true"],
      tty: false,
      stdin: false,
      stdout: true,
      stderr: true,
    });
    const output = Promise.all([readAll(exec.stdout), readAll(exec.stderr)]);
    await assertRejects(() => exec.exited, FailedPrecondition);
    await exec.kill();
    await output;
  });
}

Deno.test("runc interactive exec", async (t) => {
  await withContainer((root, dir) => new RuncLikeRuntime({ name: "runc", path: RUNC, root, tmpDir: dir }), async (
    rt,
    id,
    dir,
    root,
  ) => {
    await interactiveExecSteps(t, rt, id, "runc");
    await t.step("a detached tty exec hands its terminal to a console socket", async () => {
      const sockDir = await Deno.makeTempDir({ dir, prefix: "console-" });
      const sock = ConsoleSocket.listen(`${sockDir}/c.sock`);
      const receiving = sock.receive({ timeoutMs: 10_000 });
      const run = await new Deno.Command(RUNC, {
        args: [
          "--root",
          root,
          "exec",
          "--detach",
          "--tty",
          "--console-socket",
          sock.path,
          id,
          "sh",
          "-c",
          "sleep 0.2; stty size; echo via-socket",
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
      assertEquals(run.code, 0, decoder.decode(run.stderr));
      const pty = await receiving;
      try {
        assertEquals(pty.name, "/dev/ptmx"); // runc 1.1 names the master it opened, not the slave
        pty.resize(77, 22);
        // The process's exit closes the last slave: the readable ends.
        assertEquals(await readAll(pty.readable), "22 77\r\nvia-socket\r\n");
      } finally {
        await pty.close();
        await Deno.remove(sockDir, { recursive: true });
      }
    });
    await finalSteps(t, rt, id, dir);
  });
});

Deno.test("runsc (gVisor, ptrace) interactive exec", async (t) => {
  const make = (root: string, dir: string) =>
    new RuncLikeRuntime({
      name: "runsc",
      path: "/usr/bin/runsc",
      root,
      tmpDir: dir,
      extraArgs: ["--platform=ptrace", "--network=none"],
    });
  await withContainer(make, async (rt, id, dir) => {
    await interactiveExecSteps(t, rt, id, "runsc");
    await finalSteps(t, rt, id, dir);
  });
});

Deno.test("FakeOciRuntime.execInteractive runs execHandler on the collected stdin", async () => {
  const fake = new FakeOciRuntime();
  fake.execHandler = (_id, o) => ({
    exitCode: 3,
    stdout: o.input ?? new Uint8Array(),
    stderr: encoder.encode(o.tty ? "tty" : "err"),
    truncated: false,
  });
  const pidFile = await Deno.makeTempFile({ prefix: "davit-fake-pid-" });
  await fake.create("c", { bundle: "/b", pidFile });
  await Deno.remove(pidFile);
  await assertRejects(
    () => fake.execInteractive("c", { args: ["cat"], tty: false, stdin: false, stdout: true, stderr: true }),
    FailedPrecondition,
  );
  await fake.start("c");
  const piped = await fake.execInteractive("c", { args: ["cat"], tty: false, stdin: true, stdout: true, stderr: true });
  await write(piped, "in");
  await piped.stdin!.close();
  assertEquals(await Promise.all([readAll(piped.stdout), readAll(piped.stderr), piped.exited]), [
    "in",
    "err",
    { exitCode: 3 },
  ]);
  const tty = await fake.execInteractive("c", { args: ["sh"], tty: true, stdin: true, stdout: true, stderr: true });
  assertEquals(tty.stderr, null);
  await tty.resize(100, 30);
  const out = readAll(tty.stdout);
  await tty.kill();
  assertEquals([await tty.exited, await out], [{ exitCode: 137 }, ""]);
  assertEquals(fake.resizes, [{ id: "c", cols: 100, rows: 30 }]);
  assertEquals(fake.calls.filter((c) => c.verb === "exec").map((c) => c.args.at(-1)), [
    "interactive",
    "interactive",
    "interactive",
  ]);
});

Deno.test("terminalProcess", async (t) => {
  const config = {
    process: {
      args: ["sleep", "1"],
      env: ["PATH=/bin"],
      cwd: "/",
      user: { uid: 0, gid: 0 },
      consoleSize: { height: 1 },
    },
  };
  await t.step("the container's process with the exec's args, on a terminal of the given size", () => {
    assertEquals(terminalProcess(config, ["sh"], { cols: 80, rows: 24 }), {
      args: ["sh"],
      env: ["PATH=/bin"],
      cwd: "/",
      user: { uid: 0, gid: 0 },
      terminal: true,
      consoleSize: { height: 24, width: 80 },
    });
  });
  await t.step("no size: the container's own is dropped too", () => {
    assertEquals(terminalProcess(config, ["sh"], undefined).consoleSize, undefined);
    assertEquals(terminalProcess(config, ["sh"], { cols: 0, rows: 0 }).consoleSize, undefined);
  });
  await t.step("a config without a process is refused", () => {
    assertThrows(() => terminalProcess({}, ["sh"], undefined), TypeError, "no process object");
  });
});
