// Containers with a terminal through a real `davit monitor` and real runc: the console socket hand-over, resizes,
// typed lines (echoed by the terminal), stdout and stderr merged into `stdout` log records, stdin_once as an EOT,
// exit codes, and a runtime that refuses the terminal. Needs root, runc and /bin/busybox.
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { makeBusyboxBundle } from "../runtime/oci_runtime_conformance.ts";
import { joinCriLog, parseCriLogLine } from "./log_format.ts";
import type { AttachSession } from "./attach_session.ts";
import { startMonitor } from "./start.ts";
import { PROTOCOL_VERSION, TERMINAL_SINCE_VERSION } from "./protocol.ts";

const RUNC = "/usr/sbin/runc";
const enc = new TextEncoder();
const dec = new TextDecoder();

async function runc(root: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(RUNC, { args: ["--root", root, ...args], stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`runc ${args.join(" ")}: ${dec.decode(out.stderr)}`);
}

/** Reads until the text read so far (after `seen`) includes `want`; returns all of it. Fails after `ms`. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  want: string,
  seen = "",
  ms = 10_000,
): Promise<string> {
  let text = seen;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(want)} within ${ms} ms; got ${text}`)), ms);
  });
  try {
    while (!text.includes(want)) {
      const { done, value } = await Promise.race([reader.read(), late]);
      if (done) throw new Error(`stream ended before ${JSON.stringify(want)}; got ${JSON.stringify(text)}`);
      text += dec.decode(value, { stream: true });
    }
    return text;
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a stream to its end as text. */
async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>, seen = ""): Promise<string> {
  let text = seen;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text;
    text += dec.decode(value, { stream: true });
  }
}

function consoleSockets(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /^c-\d+\.sock$/.test(n));
}

Deno.test("containers with a terminal through a real monitor and runc", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-tty-" });
  const root = `${dir}/runc`;
  const monDir = `${dir}/mon`;
  const tag = crypto.randomUUID().slice(0, 8);
  const created: string[] = [];
  const sessions: AttachSession[] = [];
  const m = await startMonitor({ podId: `tty-${tag}`, dir: monDir });
  const client = m.client;

  /** Creates a busybox container (process.terminal as `terminalInSpec`, default true) with `terminal: true`. */
  async function container(
    name: string,
    script: string,
    opts: { stdin?: boolean; stdinOnce?: boolean; terminalInSpec?: boolean } = {},
  ): Promise<{ id: string; log: string }> {
    const id = `davit-tty-${name}-${tag}`;
    const bundle = await makeBusyboxBundle(`${dir}/${name}`, {
      args: ["sh", "-c", script],
      edit: (c) => c.process.terminal = opts.terminalInSpec ?? true,
    });
    const log = `${dir}/${name}.log`;
    await client.create({
      container_id: id,
      runtime_path: RUNC,
      runtime_root: root,
      bundle,
      log_path: log,
      terminal: true,
      stdin: opts.stdin ?? false,
      stdin_once: opts.stdinOnce ?? false,
    });
    created.push(id);
    return { id, log };
  }

  async function attach(id: string, streams: { stdin?: boolean; stdout?: boolean; stderr?: boolean }) {
    const s = await client.attach(id, streams);
    sessions.push(s);
    return s;
  }

  try {
    await t.step("ping reports the version that accepts terminals", async () => {
      assert(PROTOCOL_VERSION >= TERMINAL_SINCE_VERSION);
      assertEquals((await client.ping()).version, PROTOCOL_VERSION);
    });

    await t.step("resize, a typed line echoed, the output in the log as stdout records, the exit code", async () => {
      const { id, log } = await container("size", 'stty size; tty; read l; echo "got $l"; exit 7', {
        stdin: true,
        stdinOnce: true,
      });
      assertEquals(consoleSockets(monDir), [], "the console socket outlived the create");
      assertEquals((await client.status(id))[0]?.state, "created");
      // Attached before start, so the session sees everything. RESIZE and STDIN frames are handled in order: once
      // the terminal echoed the line, the size is set, before the shell asks for it.
      const s = await attach(id, { stdin: true, stdout: true, stderr: true });
      const out = s.stdout!.getReader();
      await s.resize(100, 40);
      await s.writeStdin(enc.encode("hello\n"));
      let text = await readUntil(out, "hello\r\n");
      await runc(root, "start", id);
      text = await readUntil(out, "got hello\r\n", text);
      assertEquals(text.split("\r\n").slice(0, 4), ["hello", "40 100", "/dev/pts/0", "got hello"]);

      const exit = await client.wait(id, { timeoutMs: 10_000 });
      assertEquals([exit.exit_code, exit.reason], [7, "Error"]);
      assertEquals((await s.exited)?.exit_code, 7);
      assertEquals(await readAll(out, text), text, "output after the exit");
      // A terminal has one output: the stderr stream ends without data.
      assertEquals(await readAll(s.stderr!.getReader()), "");

      const records = (await Deno.readTextFile(log)).split("\n").filter((l) => l !== "").map(parseCriLogLine);
      assert(records.every((r) => r.stream === "stdout" && r.tag === "F"), JSON.stringify(records));
      assertEquals(records.map((r) => r.content), ["hello\r", "40 100\r", "/dev/pts/0\r", "got hello\r"]);
    });

    await t.step("resize while running; stderr merged; stdin_once sends EOT", async () => {
      const script = 'echo ready; echo oops >&2; read l; stty size; if read m; then echo "more $m"; else echo eof; fi';
      const { id, log } = await container("once", script, { stdin: true, stdinOnce: true });
      await runc(root, "start", id);
      // Output before an attach is only in the log: attach once the shell is at its `read`.
      for (let i = 0; i < 200 && !(await Deno.readTextFile(log)).includes("oops"); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const s = await attach(id, { stdin: true, stdout: true });
      const watcher = await attach(id, { stdout: true });
      const out = s.stdout!.getReader();
      await s.resize(90, 30);
      await s.writeStdin(enc.encode("x\n"));
      let text = await readUntil(out, "30 90\r\n");
      assertEquals(text, "x\r\n30 90\r\n");
      // The first stdin session ends its stdin: the terminal gets EOT, `read m` sees end of file.
      await s.closeStdin();
      await assertRejects(() => s.writeStdin(enc.encode("y\n")), InvalidArgument, "closed");
      text = await readAll(out, text);
      assertStringIncludes(text, "eof\r\n");
      assertEquals((await client.wait(id, { timeoutMs: 10_000 })).exit_code, 0);
      assertEquals(await readAll(watcher.stdout!.getReader()), "x\r\n30 90\r\neof\r\n");
      const lines = joinCriLog(await Deno.readTextFile(log)).map((l) => `${l.stream} ${l.line}`);
      assertEquals(lines, ["stdout ready\r", "stdout oops\r", "stdout x\r", "stdout 30 90\r", "stdout eof\r"]);
    });

    await t.step("without stdin: attach to stdin refused, output-only attach works", async () => {
      const { id, log } = await container("nostdin", "read l; echo read=$?; sleep 1000");
      await runc(root, "start", id);
      await assertRejects(() => client.attach(id, { stdin: true, stdout: true }), InvalidArgument, "without stdin");
      const s = await attach(id, { stdout: true });
      await s.resize(50, 10); // applied, harmlessly
      await runc(root, "kill", id, "KILL");
      const exit = await client.wait(id, { timeoutMs: 10_000 });
      assertEquals([exit.exit_code, exit.signal], [137, 9]);
      assertEquals((await s.exited)?.exit_code, 137);
      // Nobody can type into a terminal without stdin: `read` waits until the kill.
      assertEquals(joinCriLog(await Deno.readTextFile(log)), []);
      // Forgetting it releases the terminal; the monitor goes on.
      await client.forget(id);
      assertEquals((await client.ping()).containers, 2);
    });

    await t.step("a runtime that refuses the terminal: the create fails, the socket is gone", async () => {
      const err = await assertRejects(
        () => container("refused", "true", { terminalInSpec: false }),
        FailedPrecondition,
        "create",
      );
      assertStringIncludes(err.message, "console");
      assertEquals(consoleSockets(monDir), []);
      assertEquals((await client.ping()).pid, m.pid);
    });
  } finally {
    for (const s of sessions) await s.close().catch(() => {});
    for (const id of created) await runc(root, "delete", "--force", id).catch(() => {});
    await client.shutdown({ force: true }).catch(() => {});
    await client.close();
    // The monitor's child handle is unref'd: a timer keeps this process waiting for its exit.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), 10_000));
    const exited = await Promise.race([m.exited, late]).finally(() => clearTimeout(timer));
    assert(exited !== "late", "the monitor did not exit after shutdown");
    await Deno.remove(dir, { recursive: true });
  }
});
