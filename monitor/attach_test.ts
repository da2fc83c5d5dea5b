// Attach end to end: a real `davit monitor`, real runc and busybox containers, the daemon-side AttachSession.
// Lines go in through stdin and come back on separate stdout and stderr streams and in the CRI log; stdin_once and
// plain stdin across detach and re-attach; refusals; a client that never reads is dropped without holding the
// log up; containers outlive their clients.
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { FailedPrecondition, InvalidArgument, NotFound } from "../lib/errors.ts";
import { makeBusyboxBundle } from "../runtime/oci_runtime_conformance.ts";
import { joinCriLog } from "./log_format.ts";
import type { AttachSession } from "./attach_session.ts";
import type { MonitorClient } from "./client.ts";
import { startMonitor } from "./start.ts";
import { ATTACH_SINCE_VERSION, PROTOCOL_VERSION } from "./protocol.ts";

const RUNC = "/usr/sbin/runc";
const ECHO_LOOP = 'while read l; do echo "got $l"; echo "err $l" >&2; done';
const enc = new TextEncoder();
const dec = new TextDecoder();

async function runc(root: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(RUNC, { args: ["--root", root, ...args], stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`runc ${args.join(" ")}: ${dec.decode(out.stderr)}`);
}

/** Reads `stream` until the text read so far includes `want`; returns that text. Fails after `ms`. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, want: string, ms = 10_000): Promise<string> {
  let text = "";
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

/** Reads a stream to its end; returns the byte count and the last 64 bytes. */
async function drain(stream: ReadableStream<Uint8Array>): Promise<{ bytes: number; tail: string }> {
  let bytes = 0;
  let tail = "";
  for await (const chunk of stream) {
    bytes += chunk.byteLength;
    tail = (tail + dec.decode(chunk)).slice(-64);
  }
  return { bytes, tail };
}

/** Resolves to `p`'s value, or to "pending" if it has not settled after `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<"pending">((r) => timer = setTimeout(() => r("pending"), ms));
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("attach through a real monitor and runc", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-attach-" });
  const root = `${dir}/runc`;
  const tag = crypto.randomUUID().slice(0, 8);
  const created: string[] = [];
  const sessions: AttachSession[] = [];
  const m = await startMonitor({ podId: `attach-${tag}`, dir: `${dir}/mon` });
  const client: MonitorClient = m.client;

  /** Creates and (unless `start` is false) starts a busybox container; resolves to its ID and log path. */
  async function container(
    name: string,
    script: string,
    opts: { stdin?: boolean; stdinOnce?: boolean; start?: boolean } = {},
  ): Promise<{ id: string; log: string }> {
    const id = `davit-att-${name}-${tag}`;
    const bundle = await makeBusyboxBundle(`${dir}/${name}`, { args: ["sh", "-c", script] });
    const log = `${dir}/${name}.log`;
    await client.create({
      container_id: id,
      runtime_path: RUNC,
      runtime_root: root,
      bundle,
      log_path: log,
      stdin: opts.stdin ?? false,
      stdin_once: opts.stdinOnce ?? false,
    });
    created.push(id);
    if (opts.start ?? true) await runc(root, "start", id);
    return { id, log };
  }

  async function attach(id: string, streams: { stdin?: boolean; stdout?: boolean; stderr?: boolean }) {
    const s = await client.attach(id, streams);
    sessions.push(s);
    return s;
  }

  try {
    await t.step("ping reports a protocol version with attach", async () => {
      assert(PROTOCOL_VERSION >= ATTACH_SINCE_VERSION);
      assertEquals((await client.ping()).version, PROTOCOL_VERSION);
    });

    await t.step(
      "stdin_once: lines in, stdout and stderr apart, in the log; the first detach closes stdin; no attach once exited",
      async () => {
        const { id, log } = await container("once", ECHO_LOOP, { stdin: true, stdinOnce: true });
        const s = await attach(id, { stdin: true, stdout: true, stderr: true });
        const watcher = await attach(id, { stdout: true });
        const out = s.stdout!.getReader();
        const err = s.stderr!.getReader();
        const watched = watcher.stdout!.getReader();
        assertEquals(watcher.stderr, null);

        await s.writeStdin(enc.encode("one\n"));
        assertEquals(await readUntil(out, "got one\n"), "got one\n");
        assertEquals(await readUntil(err, "err one\n"), "err one\n");
        await s.writeStdin(enc.encode("two\nthree\n"));
        assertEquals(await readUntil(out, "got three\n"), "got two\ngot three\n");
        assertEquals(await readUntil(err, "err three\n"), "err two\nerr three\n");
        // The second session sees the same stdout, and only stdout.
        assertEquals(await readUntil(watched, "got three\n"), "got one\ngot two\ngot three\n");
        await s.resize(80, 24); // accepted, and ignored without a terminal

        const lines = joinCriLog(await Deno.readTextFile(log));
        for (const w of ["one", "two", "three"]) {
          assert(lines.some((l) => l.stream === "stdout" && l.line === `got ${w}`), JSON.stringify(lines));
          assert(lines.some((l) => l.stream === "stderr" && l.line === `err ${w}`), JSON.stringify(lines));
        }

        // Detaching (the connection closes, no STDIN_CLOSE) ends the first stdin session: stdin is closed for good,
        // `read` sees end of file, the loop ends, and the container exits 0.
        out.releaseLock();
        err.releaseLock();
        await s.close();
        assertEquals(await s.exited, undefined);
        const exit = await client.wait(id, { timeoutMs: 10_000 });
        assertEquals([exit.exit_code, exit.reason], [0, "Completed"]);
        // The other session got EXIT, after the output, and its stream ended.
        const rec = await watcher.exited;
        assertEquals(rec?.exit_code, 0);
        assertEquals(rec?.container_id, id);
        assertEquals((await watched.read()).done, true);
        await watcher.close();

        // Attaching to the exited container is refused.
        await assertRejects(() => client.attach(id, { stdout: true }), FailedPrecondition, "exited");
        await assertRejects(() => client.attach(id, { stdin: true, stdout: true }), FailedPrecondition);
      },
    );

    await t.step("stdin without stdin_once stays open across sessions; containers outlive their clients", async () => {
      const { id, log } = await container("open", ECHO_LOOP, { stdin: true });
      const first = await attach(id, { stdin: true, stdout: true });
      const out1 = first.stdout!.getReader();
      await first.writeStdin(enc.encode("a\n"));
      assertEquals(await readUntil(out1, "got a\n"), "got a\n");
      await first.closeStdin(); // this session's stdin ends; the container's does not
      await assertRejects(() => first.writeStdin(enc.encode("x\n")), InvalidArgument, "closed");
      out1.releaseLock();
      await first.close();

      const second = await attach(id, { stdin: true, stdout: true, stderr: true });
      const out2 = second.stdout!.getReader();
      await second.writeStdin(enc.encode("b\n"));
      assertEquals(await readUntil(out2, "got b\n"), "got b\n");
      out2.releaseLock();
      await second.close(); // detach without STDIN_CLOSE

      // Still running, still reading its stdin.
      assertEquals(await within(client.wait(id), 500), "pending");
      assertEquals((await client.status(id))[0]?.state, "running");
      const third = await attach(id, { stdin: true, stderr: true });
      assertEquals(third.stdout, null);
      const err3 = third.stderr!.getReader();
      await third.writeStdin(enc.encode("c\n"));
      assertEquals(await readUntil(err3, "err c\n"), "err c\n");
      err3.releaseLock();
      await third.close();
      assertEquals((await client.status(id))[0]?.state, "running");
      const lines = joinCriLog(await Deno.readTextFile(log)).map((l) => `${l.stream} ${l.line}`);
      assertEquals(lines, [
        "stdout got a",
        "stderr err a",
        "stdout got b",
        "stderr err b",
        "stdout got c",
        "stderr err c",
      ]);
    });

    await t.step("refusals", async () => {
      const { id } = await container("nostdin", "sleep 1000");
      await assertRejects(() => client.attach(id, { stdin: true, stdout: true }), InvalidArgument, "without stdin");
      await assertRejects(() => client.attach(`davit-att-none-${tag}`, { stdout: true }), NotFound);
      await assertRejects(() => client.attach(id, {}), InvalidArgument, "one of stdin");
      // On the shared request connection attach is not the first request: it cannot take the connection over.
      await assertRejects(
        () => client.request("attach", { container_id: id, stdout: true }),
        InvalidArgument,
        "first request",
      );
      assertEquals((await client.ping()).pid, m.pid); // and that connection still works
      const s = await attach(id, { stdout: true });
      await s.resize(100, 40);
      await s.close();
    });

    await t.step("a client that never reads is dropped; the log and a reading client get everything", async () => {
      // About 4 MiB of output, attached before start so every byte goes to both sessions.
      const lines = 250_000;
      const { id, log } = await container("flood", `yes 0123456789abcde | head -n ${lines}; echo done`, {
        start: false,
      });
      const idle = await attach(id, { stdout: true, stderr: true });
      const reader = await attach(id, { stdout: true });
      const reading = drain(reader.stdout!);
      await runc(root, "start", id);
      const exit = await client.wait(id, { timeoutMs: 30_000 });
      assertEquals(exit.exit_code, 0);
      const text = await Deno.readTextFile(log);
      assertEquals(text.trimEnd().split("\n").length, lines + 1);
      assertStringIncludes(text.slice(-80), " stdout F done\n");

      const got = await reading;
      assertEquals(got.bytes, lines * 16 + 5);
      assert(got.tail.endsWith("0123456789abcde\ndone\n"), got.tail);
      assertEquals((await reader.exited)?.exit_code, 0);

      // The idle client was dropped: what it holds is a prefix, and its connection ended without EXIT.
      const idleGot = await drain(idle.stdout!);
      assert(idleGot.bytes > 0 && idleGot.bytes < lines * 16, `idle client got ${idleGot.bytes} bytes`);
      assertEquals(await idle.exited, undefined);
      await idle.close();
      await reader.close();
    });
  } finally {
    for (const s of sessions) await s.close().catch(() => {});
    for (const id of created) await runc(root, "delete", "--force", id).catch(() => {});
    await client.shutdown({ force: true }).catch(() => {});
    await client.close();
    // The monitor's child handle is unref'd: a timer keeps this process waiting for its exit.
    assert((await within(m.exited, 10_000)) !== "pending", "the monitor did not exit after shutdown");
    await Deno.remove(dir, { recursive: true });
  }
});
