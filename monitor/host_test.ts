// One monitor process serving several pods: a real `davit monitor`, real runc and busybox containers. A second pod
// is handed over with `adopt`; both pods' containers run, log and exit through the one process; the first pod's
// shutdown leaves the second served (and the process log moved to its directory); the last shutdown ends the
// process. Refusals: a directory or pod served already, a bad pod ID, a directory too long for a socket.
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { AlreadyExists, FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { makeBusyboxBundle } from "../runtime/oci_runtime_conformance.ts";
import { parsePidFile, processStartTime } from "./cli.ts";
import { MonitorClient } from "./client.ts";
import { joinCriLog } from "./log_format.ts";
import { startMonitor } from "./start.ts";

const RUNC = "/usr/sbin/runc";

async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("one monitor process serves two pods handed over with adopt", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-host-" });
  const root = `${dir}/runc`;
  const tag = crypto.randomUUID().slice(0, 8);
  const ids: string[] = [];
  const m = await startMonitor({ podId: `pod-a-${tag}`, dir: `${dir}/a` });
  let b: MonitorClient | undefined;
  // Monitor clients unref their connections (a daemon must be able to exit with them open): a timer keeps this
  // test's event loop going while it waits on them.
  const keepAlive = setInterval(() => {}, 1000);

  async function runIn(client: MonitorClient, name: string, script: string): Promise<{ id: string; log: string }> {
    const id = `davit-host-${name}-${tag}`;
    const bundle = await makeBusyboxBundle(`${dir}/${name}`, { args: ["sh", "-c", script] });
    const log = `${dir}/${name}.log`;
    await client.create({ container_id: id, runtime_path: RUNC, runtime_root: root, bundle, log_path: log });
    ids.push(id);
    const out = await new Deno.Command(RUNC, { args: ["--root", root, "start", id], stderr: "piped" }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
    return { id, log };
  }

  try {
    await t.step("adopt: the same process serves pod b from its own directory", async () => {
      const pid = await m.client.adopt(`pod-b-${tag}`, `${dir}/b`);
      assertEquals(pid, m.pid);
      b = new MonitorClient(`${dir}/b/monitor.sock`);
      const pong = await b.ping();
      assertEquals(pong.pid, m.pid);
      assertEquals(pong.pod_id, `pod-b-${tag}`);
      assertEquals((await m.client.ping()).pod_id, `pod-a-${tag}`);
      // Both pid files name the process with its start time.
      for (const d of ["a", "b"]) {
        const pf = parsePidFile(Deno.readTextFileSync(`${dir}/${d}/monitor.pid`));
        assertEquals(pf, { pid: m.pid, startTime: processStartTime(m.pid)! });
      }
      assert(exists(`${dir}/b/exits`), "pod b has its exits directory");
    });

    await t.step("refusals: a pod or directory served already, a bad pod ID, a directory too long", async () => {
      await assertRejects(() => m.client.adopt(`pod-b-${tag}`, `${dir}/c`), AlreadyExists);
      await assertRejects(() => b!.adopt(`pod-c-${tag}`, `${dir}/a`), AlreadyExists);
      const bad = await assertRejects(() => m.client.adopt("../x", `${dir}/c`), InvalidArgument);
      assertStringIncludes(bad.message, "pod_id");
      await assertRejects(() => m.client.adopt(`pod-c-${tag}`, `${dir}/${"x".repeat(120)}`), InvalidArgument);
      await assertRejects(() => m.client.adopt(`pod-c-${tag}`, "relative/dir"), InvalidArgument);
      // Only a plain name beside the first pod's directory.
      const elsewhere = await assertRejects(() => m.client.adopt(`pod-c-${tag}`, `${dir}/sub/c`), InvalidArgument);
      assertStringIncludes(elsewhere.message, "plain name");
      await assertRejects(() => m.client.adopt(`pod-c-${tag}`, `${dir}/..`), InvalidArgument);
      await assertRejects(() => m.client.adopt(`pod-c-${tag}`, "/etc/c"), InvalidArgument);
      assert(!exists(`${dir}/c`) && !exists(`${dir}/sub`), "nothing made for refused adoptions");
      // A socket path that cannot be listened on: the adoption fails and leaves no pid file naming this process.
      Deno.mkdirSync(`${dir}/d/monitor.sock/x`, { recursive: true });
      await assertRejects(() => m.client.adopt(`pod-d-${tag}`, `${dir}/d`), FailedPrecondition);
      assert(!exists(`${dir}/d/monitor.pid`), "no pid file left by a failed adoption");
      assertEquals((await m.client.ping()).pid, m.pid);
    });

    await t.step("containers of both pods run, log and exit through the one process", async () => {
      const a1 = await runIn(m.client, "a1", "echo from-a; exit 3");
      const b1 = await runIn(b!, "b1", "echo from-b; exit 4");
      assertEquals((await m.client.wait(a1.id, { timeoutMs: 10_000 })).exit_code, 3);
      assertEquals((await b!.wait(b1.id, { timeoutMs: 10_000 })).exit_code, 4);
      assertEquals(joinCriLog(await Deno.readTextFile(a1.log)), [{ stream: "stdout", line: "from-a" }]);
      assertEquals(joinCriLog(await Deno.readTextFile(b1.log)), [{ stream: "stdout", line: "from-b" }]);
      // Each pod knows only its own containers; the exit files are in each pod's directory.
      await assertRejects(() => b!.status(a1.id));
      assert(exists(`${dir}/a/exits/${a1.id}.json`), "pod a's exit file");
      assert(exists(`${dir}/b/exits/${b1.id}.json`), "pod b's exit file");
      assert(!exists(`${dir}/b/exits/${a1.id}.json`), "pod a's exit is not in pod b's directory");
    });

    await t.step(
      "pod a's shutdown leaves pod b served; its log moves to b; b's shutdown ends the process",
      async () => {
        const b2 = await runIn(b!, "b2", "sleep 0.5; echo later-b");
        await m.client.shutdown();
        await waitFor("pod a's socket to go", () => !exists(`${dir}/a/monitor.sock`));
        assert(!exists(`${dir}/a/monitor.pid`), "pod a's pid file removed");
        assertEquals((await b!.ping()).pid, m.pid);
        assertEquals((await b!.wait(b2.id, { timeoutMs: 10_000 })).exit_code, 0);
        assertEquals(joinCriLog(await Deno.readTextFile(b2.log)), [{ stream: "stdout", line: "later-b" }]);
        assertStringIncludes(await Deno.readTextFile(`${dir}/b/monitor.log`), "monitor log moved here");
        await b!.shutdown();
        const status = await m.exited;
        assertEquals(status.code, 0);
        assert(!exists(`${dir}/b/monitor.sock`), "pod b's socket removed");
      },
    );
  } finally {
    clearInterval(keepAlive);
    await b?.close();
    await m.client.close();
    try {
      Deno.kill(m.pid, "SIGKILL");
    } catch {
      // exited
    }
    for (const id of ids) {
      await new Deno.Command(RUNC, { args: ["--root", root, "delete", "-f", id], stderr: "null" }).output();
    }
    await Deno.remove(dir, { recursive: true });
  }
});
