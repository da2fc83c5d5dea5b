/** Tests for DenoCniExec: environment clearing, stdin, timeouts killing the process group, lookup, netns check. */
import { assert, assertEquals } from "../tests/assert.ts";
import { DenoCniExec } from "./cni_exec.ts";

async function script(dir: string, name: string, body: string, mode = 0o755): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, mode);
  return path;
}

/** True while `pid` runs (a zombie waiting for its reaper counts as gone). */
async function alive(pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    let stat: string;
    try {
      stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    } catch {
      return false;
    }
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

Deno.test("DenoCniExec", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-cni-exec-" });
  const exec = new DenoCniExec();
  try {
    await t.step("only the given environment, stdin delivered, stdout and stderr captured", async () => {
      const path = await script(dir, "echoer", "env | sort; cat; echo to-stderr >&2; exit 0");
      const out = await exec.run({ path, env: { CNI_COMMAND: "ADD", PATH: "/usr/bin:/bin" }, stdin: '{"a":1}' }, {
        timeoutMs: 5000,
      });
      assertEquals([out.code, out.signal, out.timedOut], [0, null, false]);
      assert(out.stdout.includes("CNI_COMMAND=ADD\n"));
      assert(out.stdout.endsWith('{"a":1}'));
      assert(!/^(HOME|USER|DENO_\w+)=/m.test(out.stdout), out.stdout);
      assertEquals(out.stderr, "to-stderr\n");
    });
    await t.step("exit codes come back", async () => {
      const path = await script(dir, "failer", "echo nope; exit 3");
      const out = await exec.run({ path, env: {}, stdin: "" }, { timeoutMs: 5000 });
      assertEquals([out.code, out.stdout], [3, "nope\n"]);
    });
    await t.step("a plugin that does not read stdin is fine", async () => {
      const path = await script(dir, "deaf", "exit 0");
      const out = await exec.run({ path, env: {}, stdin: "x".repeat(1 << 20) }, { timeoutMs: 5000 });
      assertEquals(out.code, 0);
    });
    await t.step("a timeout kills the plugin and what it started", async () => {
      const path = await script(dir, "hang", `sleep 30 & echo $! > ${dir}/child.pid; sleep 30`);
      const started = Date.now();
      const out = await exec.run({ path, env: { PATH: "/usr/bin:/bin" }, stdin: "{}" }, { timeoutMs: 300 });
      assert(Date.now() - started < 5000);
      assertEquals([out.timedOut, out.signal], [true, "SIGKILL"]);
      const child = Number(await Deno.readTextFile(`${dir}/child.pid`));
      assert(child > 0 && !(await alive(child)), "the plugin's own child was killed too");
    });
    await t.step("an abort signal kills the plugin and rejects", async () => {
      const path = await script(dir, "slow", "sleep 30");
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(new Error("cancelled")), 100);
      let err: Error | undefined;
      await exec.run({ path, env: { PATH: "/usr/bin:/bin" }, stdin: "" }, { timeoutMs: 10_000, signal: ctl.signal })
        .catch((e) => (err = e));
      assertEquals(err?.message, "cancelled");
    });
    await t.step("findPlugin: first directory holding an executable of that name", async () => {
      await Deno.mkdir(`${dir}/a`);
      await Deno.mkdir(`${dir}/b`);
      await Deno.mkdir(`${dir}/c`);
      await script(`${dir}/a`, "bridge", "exit 0", 0o644);
      await Deno.mkdir(`${dir}/b/bridge`);
      await script(`${dir}/c`, "bridge", "exit 0");
      assertEquals(await exec.findPlugin("bridge", [`${dir}/a`, `${dir}/b/`, `${dir}/c/`]), `${dir}/c/bridge`);
      assertEquals(await exec.findPlugin("bridge", [`${dir}/a`]), undefined);
      assertEquals(await exec.findPlugin("../c/bridge", [`${dir}/a`]), undefined);
    });
    await t.step("isNetns", async () => {
      assert(await exec.isNetns("/proc/self/ns/net"));
      assert(!(await exec.isNetns(`${dir}/hang`)));
      assert(!(await exec.isNetns(`${dir}/missing`)));
      assert(!(await exec.isNetns("")));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
