// End to end: Exec, Attach and PortForward through a real daemon, real runc and a busybox image from the loopback
// registry, spoken to with the project's own SPDY/3.1 and WebSocket clients the way kubectl and crictl speak; plus
// hostile clients (bad, reused and expired tokens, malformed frames, oversized heads, vanishing clients).
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import type { Msg } from "./cri_client.ts";
import { startDaemon } from "./daemon.ts";
import { registryFiles, removeAllPods, waitFor } from "./cri_helpers.ts";
import { startRegistry } from "./fixtures/registry.ts";
import { busybox } from "./fixtures/images.ts";
import { makeTlsCerts } from "./fixtures/certs.ts";
import { spdyConnect, spdyForward, spdyRemote, spdyRoundTrip, wsPortForward, wsRemote } from "./stream_client.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function rawRequest(url: string, head: string, extra: Uint8Array = new Uint8Array()): Promise<string> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  const w = conn.writable.getWriter();
  await w.write(enc.encode(head));
  if (extra.length) await w.write(extra).catch(() => {});
  w.releaseLock();
  let out = "";
  try {
    for await (const chunk of conn.readable) out += dec.decode(chunk, { stream: true });
  } catch {
    // reset by the server
  }
  return out;
}

Deno.test("exec, attach and port-forward over SPDY and WebSocket", async (t) => {
  await using reg = await startRegistry();
  const image = (await busybox(reg)).reference;
  await using d = await startDaemon({
    files: {
      ...registryFiles(reg),
      "etc/davit.conf.d/10-stream.toml": '[davit.api]\nstream_token_ttl = "3s"\n',
    },
  });
  using c = d.client();
  await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
  await c.call("PullImage", { image: { image } });
  const config = { metadata: { name: "s", namespace: "test", uid: "uid-s" }, log_directory: `${d.dir}/logs` };
  const podId = (await c.call("RunPodSandbox", { config })).pod_sandbox_id;
  const run = async (name: string, extra: Msg) => {
    const id = (await c.call("CreateContainer", {
      pod_sandbox_id: podId,
      config: { metadata: { name }, image: { image }, log_path: `${name}.log`, ...extra },
      sandbox_config: config,
    })).container_id;
    await c.call("StartContainer", { container_id: id });
    return id;
  };
  const sleeper = await run("sleeper", { command: ["sleep", "3600"] });
  const execUrl = async (cmd: string[], flags: Msg) =>
    (await c.call("Exec", { container_id: sleeper, cmd, ...flags })).url as string;
  const script = ["sh", "-c", 'read x; echo "out $x"; echo "err $x" >&2; exit 3'];

  await t.step("Exec checks its request", async () => {
    for (
      const [req, code, text] of [
        [{ container_id: sleeper, cmd: ["true"], tty: true, stderr: true, stdout: true }, "INVALID_ARGUMENT", "tty"],
        [{ container_id: sleeper, cmd: ["true"] }, "INVALID_ARGUMENT", "one of stdin"],
        [{ container_id: sleeper, cmd: [], stdout: true }, "INVALID_ARGUMENT", "cmd"],
        [{ container_id: "nope", cmd: ["true"], stdout: true }, "NOT_FOUND", "nope"],
      ] as const
    ) {
      const err = await c.call("Exec", req).then(() => undefined, (e) => e);
      assertEquals(err?.codeName, code, JSON.stringify(req));
      assertStringIncludes(err.message, text);
    }
    const pf = await c.call("PortForward", { pod_sandbox_id: podId, port: [0] }).then(() => undefined, (e) => e);
    assertEquals(pf?.codeName, "INVALID_ARGUMENT");
  });

  await t.step("SPDY v4: stdin, stdout and stderr apart, the exit code in the Status", async () => {
    const url = await execUrl(script, { stdin: true, stdout: true, stderr: true });
    assert(url.startsWith("http://127.0.0.1:"), url);
    const r = await spdyRemote(url, { stdin: enc.encode("hello\n"), stdout: true, stderr: true });
    assertEquals(r.protocol, "v4.channel.k8s.io");
    assertEquals([r.stdout, r.stderr, r.exitCode], ["out hello\n", "err hello\n", 3]);
    assertEquals(JSON.parse(r.error).reason, "NonZeroExitCode");
    const ok = await spdyRemote(await execUrl(["echo", "fine"], { stdout: true }), { stdout: true });
    assertEquals([ok.stdout, ok.exitCode], ["fine\n", 0]);
  });

  await t.step("SPDY like moby/spdystream (no flow control frames), and older protocol versions", async () => {
    const big = await spdyRemote(
      await execUrl(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"], { stdout: true }),
      { stdout: true, flowControl: false },
    );
    assertEquals(big.stdout.length, 3_000_000);
    const v3 = await spdyRemote(await execUrl(["sh", "-c", "exit 5"], { stdout: true }), {
      stdout: true,
      protocols: ["v3.channel.k8s.io"],
    });
    assertEquals(v3.protocol, "v3.channel.k8s.io");
    assertStringIncludes(v3.error, "exit status 5");
    const v2 = await spdyRemote(await execUrl(["true"], { stdout: true }), {
      stdout: true,
      protocols: ["v2.channel.k8s.io"],
    });
    assertEquals([v2.protocol, v2.error], ["v2.channel.k8s.io", ""]);
  });

  await t.step("WebSocket v5, v4 and base64 channels", async () => {
    const v5 = await wsRemote(await execUrl(script, { stdin: true, stdout: true, stderr: true }), {
      stdin: enc.encode("ws\n"),
      stdout: true,
      stderr: true,
    });
    assertEquals([v5.protocol, v5.stdout, v5.stderr, v5.exitCode], ["v5.channel.k8s.io", "out ws\n", "err ws\n", 3]);
    assertEquals(v5.channels[0], 1, "the first message is the empty one on stdout");
    const v4 = await wsRemote(await execUrl(["echo", "four"], { stdout: true }), {
      stdout: true,
      protocols: ["v4.channel.k8s.io"],
    });
    assertEquals([v4.protocol, v4.stdout, v4.exitCode], ["v4.channel.k8s.io", "four\n", 0]);
    const b64 = await wsRemote(await execUrl(["sh", "-c", "echo sixty-four; exit 2"], { stdout: true }), {
      stdout: true,
      protocols: ["v4.base64.channel.k8s.io"],
    });
    assertEquals([b64.protocol, b64.stdout, b64.exitCode], ["v4.base64.channel.k8s.io", "sixty-four\n", 2]);
  });

  await t.step("exec with a terminal: a /dev/pts device, the size from the resize stream", async () => {
    const cmd = [
      "sh",
      "-c",
      'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do s=$(stty size); [ "$s" = "40 100" ] && break; sleep 0.2; done; ' +
      'echo "size $s"; tty; exit 4',
    ];
    const r = await spdyRemote(await execUrl(cmd, { tty: true, stdout: true, stdin: true }), {
      tty: true,
      stdout: true,
      stdin: enc.encode(""),
      resize: [{ Width: 100, Height: 40 }],
    });
    assertStringIncludes(r.stdout, "size 40 100");
    assertStringIncludes(r.stdout, "/dev/pts/");
    assertEquals(r.exitCode, 4);
    const ws = await wsRemote(await execUrl(cmd, { tty: true, stdout: true, stdin: true }), {
      tty: true,
      stdout: true,
      stdin: enc.encode(""),
      resize: [{ Width: 100, Height: 40 }],
    });
    assertStringIncludes(ws.stdout, "size 40 100");
    assertEquals(ws.exitCode, 4);
    // Closing stdin at once is end of file to the container's terminal, not swallowed on the daemon's side.
    const cat = await spdyRemote(await execUrl(["cat"], { tty: true, stdout: true, stdin: true }), {
      tty: true,
      stdout: true,
      stdin: enc.encode("typed\n"),
      resize: [{ Width: 80, Height: 24 }],
    });
    assertEquals([cat.stdout.replaceAll("\r", "").split("\n").filter((l) => l === "typed").length, cat.exitCode], [
      2,
      0,
    ]);
  });

  await t.step("attach: output from the container, stdin to it, stdin_once ends it", async () => {
    const id = await run("reader", {
      command: ["sh", "-c", 'echo ready; while read l; do echo "got $l"; echo "e $l" >&2; done; echo bye'],
      stdin: true,
      stdin_once: true,
    });
    const bad = await c.call("Attach", { container_id: id, tty: true, stdout: true }).then(() => undefined, (e) => e);
    assertEquals(bad?.codeName, "INVALID_ARGUMENT");
    const url = (await c.call("Attach", { container_id: id, stdin: true, stdout: true, stderr: true })).url;
    const r = await spdyRemote(url, { stdin: enc.encode("a\nb\n"), stdout: true, stderr: true });
    assertStringIncludes(r.stdout, "got a\ngot b\n");
    assertStringIncludes(r.stdout, "bye\n");
    assertEquals(r.stderr, "e a\ne b\n");
    assertEquals(r.exitCode, 0);
    await waitFor("the reader to exit", async () => {
      const s = (await c.call("ContainerStatus", { container_id: id })).status;
      return s.state === "CONTAINER_EXITED";
    });
    const gone = await c.call("Attach", { container_id: id, stdout: true }).then(() => undefined, (e) => e);
    assertEquals(gone?.codeName, "FAILED_PRECONDITION");
    // Without stdin_once, the client ending its stdin detaches it; the container reads on.
    const keeper = await run("keeper", {
      command: ["sh", "-c", 'while read l; do echo "kept $l"; done'],
      stdin: true,
    });
    const detach = (await c.call("Attach", { container_id: keeper, stdin: true, stdout: true })).url;
    const d1 = await spdyRemote(detach, { stdin: enc.encode("one\n"), stdout: true });
    assertEquals(d1.exitCode, 0);
    const again = (await c.call("Attach", { container_id: keeper, stdin: true, stdout: true })).url;
    const d2 = await wsRemote(again, { stdin: enc.encode("two\n"), stdout: true });
    assertEquals(d2.exitCode, 0);
    assertEquals((await c.call("ContainerStatus", { container_id: keeper })).status.state, "CONTAINER_RUNNING");
    await waitFor("both lines in the log", async () => {
      const log = await Deno.readTextFile(`${d.dir}/logs/keeper.log`).catch(() => "");
      return log.includes("kept one") && log.includes("kept two");
    });
  });

  await t.step("port-forward: parallel connections over SPDY, an error for a closed port, WebSocket", async () => {
    await run("echo-server", { command: ["nc", "-ll", "-p", "8080", "-e", "cat"] });
    const url = async () => (await c.call("PortForward", { pod_sandbox_id: podId, port: [8080] })).url as string;
    const conn = await spdyConnect(await url(), { protocols: ["portforward.k8s.io"] });
    try {
      assertEquals(conn.protocol, "portforward.k8s.io");
      // The server may need a moment to listen.
      await waitFor("the echo server", async () => {
        const f = await spdyForward(conn, 8080, 0);
        const r = await spdyRoundTrip(f, enc.encode("ping\n"));
        return r.data === "ping\n";
      });
      const results = await Promise.all([1, 2, 3, 4, 5].map(async (i) => {
        const f = await spdyForward(conn, 8080, i);
        return await spdyRoundTrip(f, enc.encode(`connection ${i}\n`.repeat(1000)));
      }));
      results.forEach((r, i) => assertEquals(r.data, `connection ${i + 1}\n`.repeat(1000)));
      const closed = await spdyRoundTrip(await spdyForward(conn, 9, 99), enc.encode("x"));
      assertStringIncludes(closed.error, "9");
      assertEquals(closed.data, "");
    } finally {
      await conn.close();
    }
    const { ws } = await wsPortForward(await url());
    const got: number[][] = [];
    let text = "";
    const reading = (async () => {
      for await (const m of ws.messages) {
        got.push([m.data[0]!, m.data.length]);
        if (m.data[0] === 0 && m.data.length > 1 && got.filter(([ch]) => ch === 0).length > 1) {
          text += dec.decode(m.data.subarray(1));
          if (text.includes("over ws\n")) await ws.close(1000);
        }
      }
    })();
    await ws.send(new Uint8Array([0, ...enc.encode("over ws\n")]));
    await reading;
    assertEquals(text, "over ws\n");
    assertEquals(got.slice(0, 2), [[0, 3], [1, 3]], "each channel first carries the port");
  });

  await t.step("hostile clients: tokens, heads, frames, vanishing clients", async () => {
    const url = await execUrl(["true"], { stdout: true });
    const base = url.slice(0, url.indexOf("/exec/"));
    assertStringIncludes(
      await rawRequest(url, `GET /exec/not-a-token HTTP/1.1\r\nHost: x\r\n\r\n`),
      "404",
    );
    await spdyRemote(url, { stdout: true });
    const reused = await spdyRemote(url, { stdout: true }).then(() => "", (e) => String(e));
    assertStringIncludes(reused, "404");
    const late = await execUrl(["true"], { stdout: true });
    await new Promise((r) => setTimeout(r, 3_500));
    assertStringIncludes(await spdyRemote(late, { stdout: true }).then(() => "", (e) => String(e)), "404");
    const attachUrl = (await c.call("Exec", { container_id: sleeper, cmd: ["true"], stdout: true })).url as string;
    const wrongKind = attachUrl.replace("/exec/", "/attach/");
    assertStringIncludes(await spdyRemote(wrongKind, { stdout: true }).then(() => "", (e) => String(e)), "404");
    const refused = await spdyRemote(await execUrl(["true"], { stdout: true }), {
      stdout: true,
      protocols: ["v9.channel.k8s.io"],
    }).then(() => "", (e) => String(e));
    assertStringIncludes(refused, "403");
    const huge = await rawRequest(
      base + "/",
      `GET /exec/x HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    );
    assertStringIncludes(huge, "431");
    // Garbage after a good upgrade: the session ends, the daemon goes on.
    const garbageUrl = new URL(await execUrl(["sleep", "30"], { stdout: true }));
    const garbage = await rawRequest(
      garbageUrl.href,
      `POST ${garbageUrl.pathname} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n` +
        "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
      new Uint8Array([0x80, 0x03, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]),
    );
    assertStringIncludes(garbage, "101");
    // A client that vanishes mid-exec: its process is killed.
    const vanish = await spdyConnect(await execUrl(["sleep", "997"], { stdout: true }), {
      protocols: ["v4.channel.k8s.io"],
    });
    await vanish.session.openStream({ streamtype: "error" });
    await vanish.session.openStream({ streamtype: "stdout" });
    // The image has no ps: the container's processes are read from its /proc.
    const processes = async () => {
      const cmd = ["sh", "-c", "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null; echo; done"];
      const out = await c.call("ExecSync", { container_id: sleeper, cmd });
      return dec.decode(out.stdout).replaceAll("\0", " ");
    };
    await waitFor("the exec to start", async () => (await processes()).includes("sleep 997"));
    await vanish.close();
    await waitFor("the exec to be killed", async () => !(await processes()).includes("sleep 997"));
    // Still serving.
    const after = await spdyRemote(await execUrl(["echo", "alive"], { stdout: true }), { stdout: true });
    assertEquals(after.stdout, "alive\n");
  });
});

Deno.test("the streaming server over TLS", async () => {
  await using reg = await startRegistry();
  const image = (await busybox(reg)).reference;
  const certDir = await Deno.makeTempDir({ prefix: "davit-stream-tls-" });
  try {
    const files = await makeTlsCerts(certDir);
    await using d = await startDaemon({
      files: {
        ...registryFiles(reg),
        "etc/davit.conf.d/10-stream.toml":
          `[davit.api]\nstream_enable_tls = true\nstream_tls_cert = "${files.serverCert}"\n` +
          `stream_tls_key = "${files.serverKey}"\n`,
      },
    });
    using c = d.client();
    await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
    await c.call("PullImage", { image: { image } });
    const config = { metadata: { name: "t", namespace: "test", uid: "uid-t" }, log_directory: `${d.dir}/logs` };
    const podId = (await c.call("RunPodSandbox", { config })).pod_sandbox_id;
    const id = (await c.call("CreateContainer", {
      pod_sandbox_id: podId,
      config: { metadata: { name: "t" }, image: { image }, command: ["sleep", "3600"], log_path: "t.log" },
      sandbox_config: config,
    })).container_id;
    await c.call("StartContainer", { container_id: id });
    const caCerts = [await Deno.readTextFile(files.caCert)];
    const url = (await c.call("Exec", { container_id: id, cmd: ["echo", "secure"], stdout: true })).url as string;
    assert(url.startsWith("https://127.0.0.1:"), url);
    assertEquals((await spdyRemote(url, { stdout: true, caCerts })).stdout, "secure\n");
    const ws = (await c.call("Exec", { container_id: id, cmd: ["echo", "wss"], stdout: true })).url as string;
    assertEquals((await wsRemote(ws, { stdout: true, caCerts })).stdout, "wss\n");
    // A client that does not trust the certificate gets nowhere.
    const untrusted = (await c.call("Exec", { container_id: id, cmd: ["true"], stdout: true })).url as string;
    assert(await spdyRemote(untrusted, { stdout: true }).then(() => false, () => true));
  } finally {
    await Deno.remove(certDir, { recursive: true });
  }
});
