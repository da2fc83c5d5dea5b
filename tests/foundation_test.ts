// End-to-end tests of the foundation: a real daemon on temporary directories, spoken to over its real socket.
import { assert, assertEquals, assertMatch, assertRejects, assertStringIncludes } from "./assert.ts";
import { CriCallError } from "./cri_client.ts";
import { startDaemon } from "./daemon.ts";
import { selfCommand } from "../lib/self_exec.ts";
import { decodeMessage, encodeMessage, messageType } from "../cri/codec.ts";
import { RawH2Client } from "./raw_h2_client.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function runDavit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await selfCommand(args, { stdout: "piped", stderr: "piped", stdin: "null" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("Version and Status over the real socket", async (t) => {
  await using d = await startDaemon();
  using c = d.client();
  await t.step("Version names davit and CRI v1", async () => {
    const v = await c.call("Version", { version: "0.1.0" });
    assertEquals(v.runtime_name, "davit");
    assertEquals(v.runtime_api_version, "v1");
    assertEquals(v.version, "0.1.0");
    assertMatch(v.runtime_version, /^\d+\.\d+\.\d+/);
  });
  await t.step("Status: runtime ready, network not ready without a CNI config", async () => {
    const s = await c.call("Status", {});
    const [rt, net] = s.status.conditions;
    assertEquals(rt.type, "RuntimeReady");
    assertEquals(rt.status, true, JSON.stringify(rt));
    assertEquals(net.type, "NetworkReady");
    assertEquals(net.status, false);
    assertEquals(net.reason, "NetworkPluginNotReady");
    assertStringIncludes(net.message, `${d.dir}/cni`);
    assertEquals(s.info, {});
  });
  await t.step("Status: network ready once a valid config appears, without a restart", async () => {
    await Deno.mkdir(`${d.dir}/cni`, { recursive: true });
    await Deno.writeTextFile(
      `${d.dir}/cni/10-test.conflist`,
      JSON.stringify({ cniVersion: "1.0.0", name: "t", plugins: [{ type: "loopback" }] }),
    );
    await waitFor("NetworkReady", async () => (await c.call("Status", {})).status.conditions[1].status === true);
  });
  await t.step("Status verbose carries the effective config as JSON", async () => {
    const s = await c.call("Status", { verbose: true });
    const cfg = JSON.parse(s.info.config);
    assertEquals(cfg.davit.root, d.root);
    assertEquals(cfg.davit.api.listen, d.socket);
    assertEquals(cfg.davit.log_level, "debug");
    assert(s.runtime_handlers.some((h: { name: string }) => h.name === ""), 'default handler listed as ""');
    assert(s.runtime_handlers.some((h: { name: string }) => h.name === "runc"), "runc handler listed");
  });
  await t.step("RuntimeConfig reports the cgroupfs driver", async () => {
    const r = await c.call("RuntimeConfig", {});
    assertEquals(r.linux.cgroup_driver, "CGROUPFS");
  });
  await t.step("an RPC without a handler answers UNIMPLEMENTED naming it", async () => {
    const err = await assertRejects(() => c.call("CheckpointContainer", { container_id: "x" }), CriCallError);
    assertEquals((err as CriCallError).codeName, "UNIMPLEMENTED");
    assertStringIncludes(err.message, "CheckpointContainer");
  });
  await t.step("a streaming RPC without a handler answers UNIMPLEMENTED too", async () => {
    const err = await assertRejects(() => c.stream("GetContainerEvents", {}), CriCallError);
    assertEquals((err as CriCallError).codeName, "UNIMPLEMENTED");
  });
  await t.step("each call is logged at debug level with its duration", () => {
    assertMatch(d.logs(), /msg=rpc component=cri method=Version duration_ms=\d+\.\d+/);
  });
  await t.step("the socket is mode 0660", async () => {
    assertEquals((await Deno.stat(d.socket)).mode! & 0o777, 0o660);
  });
});

Deno.test("SIGTERM: clean shutdown, socket removed, exit 0", async () => {
  const d = await startDaemon();
  try {
    using c = d.client();
    await c.call("Version", {});
    assertEquals(await d.stop(), 0);
    assertEquals(await exists(d.socket), false);
    assertStringIncludes(d.logs(), "msg=stopped");
  } finally {
    await d.stop();
    await Deno.remove(d.dir, { recursive: true });
  }
});

Deno.test("SIGINT stops the daemon the same way", async () => {
  await using d = await startDaemon();
  d.kill("SIGINT");
  assertEquals((await d.status).code, 0);
  assertEquals(await exists(d.socket), false);
});

Deno.test("a stale socket left by a crash is replaced", async () => {
  const first = await startDaemon();
  try {
    first.kill("SIGKILL");
    await first.status;
    assert(await exists(first.socket), "a SIGKILLed daemon leaves its socket behind");
    await using second = await startDaemon({ dir: first.dir });
    using c = second.client();
    assertEquals((await c.call("Version", {})).runtime_name, "davit");
    assertStringIncludes(second.logs(), "replaced a stale socket");
  } finally {
    await Deno.remove(first.dir, { recursive: true });
  }
});

Deno.test("a second daemon on the same root is refused and leaves the first one's socket alone", async () => {
  await using first = await startDaemon();
  const second = await startDaemon({ dir: first.dir, noWait: true });
  const status = await second.status;
  assertEquals(status.code, 1);
  assertStringIncludes(second.logs(), "another davit daemon already runs on root");
  assert(await exists(first.socket));
  using c = first.client();
  assertEquals((await c.call("Version", {})).runtime_name, "davit");
});

Deno.test("a live socket owned by another process is never taken over", async () => {
  const dir = await Deno.makeTempDir({ prefix: "davit-test-" });
  const path = `${dir}/busy.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  try {
    const d = await startDaemon({ args: ["--listen", path], noWait: true });
    assertEquals((await d.status).code, 1);
    assertStringIncludes(d.logs(), "another process is serving it");
    assert(await exists(path));
    await Deno.remove(d.dir, { recursive: true });
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGHUP reloads the log level and logs what changed", async () => {
  await using d = await startDaemon({ args: [], files: {} });
  // Flags win over files, so the reload is shown through a key not given on the command line.
  await Deno.mkdir(`${d.dir}/etc/davit.conf.d`, { recursive: true });
  await Deno.writeTextFile(`${d.dir}/etc/davit.conf.d/50-format.toml`, '[davit]\nlog_format = "json"\n');
  d.kill("SIGHUP");
  await waitFor(
    "reload log line",
    () => d.logs().includes('"key":"davit.log_format"') || d.logs().includes("key=davit.log_format"),
  );
  using c = d.client();
  await c.call("Version", {});
  await waitFor("a JSON log line", () => /\{"time":"[^"]+","level":"debug","msg":"rpc"/.test(d.logs()));
});

Deno.test("a reload with a broken file keeps the running configuration", async () => {
  await using d = await startDaemon();
  await Deno.mkdir(`${d.dir}/etc/davit.conf.d`, { recursive: true });
  await Deno.writeTextFile(`${d.dir}/etc/davit.conf.d/50-bad.toml`, "[davit\n");
  d.kill("SIGHUP");
  await waitFor("reload failure", () => d.logs().includes("configuration reload failed"));
  using c = d.client();
  assertEquals((await c.call("Version", {})).runtime_name, "davit");
});

Deno.test("bad configuration stops the daemon before it binds anything", async (t) => {
  const cases: [string, string, string][] = [
    ["invalid TOML", "[davit\nroot = 1", "davit.toml"],
    ["unknown key", '[davit]\nrooot = "/x"\n', "davit.rooot"],
    ["wrong type", '[davit.runtime]\nlog_size_max = "big"\n', "davit.runtime.log_size_max"],
    ["bad enum value", '[davit]\nlog_level = "loud"\n', "davit.log_level"],
    ["unknown key in a runtime handler", '[davit.runtime.runtimes.runc]\nruntime_pth = "/x"\n', "runtime_pth"],
  ];
  for (const [name, toml, mentions] of cases) {
    await t.step(name, async () => {
      const d = await startDaemon({ files: { "etc/davit.toml": toml }, noWait: true });
      try {
        assertEquals((await d.status).code, 1);
        assertStringIncludes(d.logs(), `${d.dir}/etc/davit.toml`);
        assertStringIncludes(d.logs(), mentions);
        assertEquals(await exists(d.socket), false, "no socket was bound");
        assertEquals(await exists(`${d.root}/davit.db`), false, "no database was created");
      } finally {
        await Deno.remove(d.dir, { recursive: true });
      }
    });
  }
});

Deno.test("configuration precedence: defaults < file < drop-ins < flags", async () => {
  const dir = await Deno.makeTempDir({ prefix: "davit-test-" });
  try {
    await Deno.mkdir(`${dir}/conf.d`);
    await Deno.writeTextFile(
      `${dir}/davit.toml`,
      '[davit]\nroot = "/from/file"\nrunroot = "/from/file/run"\nlog_dir = "/from/file/logs"\n',
    );
    await Deno.writeTextFile(
      `${dir}/conf.d/10-a.toml`,
      '[davit]\nrunroot = "/from/dropin-10"\nlog_dir = "/from/dropin-10/logs"\n',
    );
    await Deno.writeTextFile(`${dir}/conf.d/20-b.toml`, '[davit]\nlog_dir = "/from/dropin-20/logs"\n');
    const base = ["config", "--config", `${dir}/davit.toml`, "--config-dir", `${dir}/conf.d`];
    const merged = await runDavit(base);
    assertEquals(merged.code, 0, merged.stderr);
    assertStringIncludes(merged.stdout, 'root = "/from/file"');
    assertStringIncludes(merged.stdout, 'runroot = "/from/dropin-10"');
    assertStringIncludes(merged.stdout, 'log_dir = "/from/dropin-20/logs"');
    assertStringIncludes(merged.stdout, 'listen = "/run/davit/davit.sock"');
    const flagged = await runDavit([...base, "--log-dir", "/from/flag"]);
    assertStringIncludes(flagged.stdout, 'log_dir = "/from/flag"');
    const defaults = await runDavit(["config", "--default"]);
    assertStringIncludes(defaults.stdout, 'root = "/var/lib/davit"');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command line: unknown modes and flags exit 2 naming them; --help everywhere", async (t) => {
  await t.step("unknown mode", async () => {
    const r = await runDavit(["frobnicate"]);
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, '"frobnicate"');
  });
  await t.step("unknown flag", async () => {
    const r = await runDavit(["serve", "--no-such-flag"]);
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "--no-such-flag");
  });
  await t.step("unknown flag to version", async () => {
    const r = await runDavit(["version", "--bogus"]);
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "--bogus");
  });
  for (const mode of [[], ["serve"], ["config"], ["version"]]) {
    await t.step(`${mode.join(" ") || "davit"} --help`, async () => {
      const r = await runDavit([...mode, "--help"]);
      assertEquals(r.code, 0, r.stderr);
      assertStringIncludes(r.stdout, "davit");
    });
  }
  await t.step("version prints davit, Deno, V8, TypeScript and CRI versions", async () => {
    const r = await runDavit(["version", "--json"]);
    const v = JSON.parse(r.stdout);
    assertEquals(v.deno, Deno.version.deno);
    assertEquals(v.v8, Deno.version.v8);
    assertEquals(v.typescript, Deno.version.typescript);
    assertEquals(v.cri_api, "v1");
    assertMatch(v.davit, /^\d+\.\d+\.\d+$/);
  });
});

Deno.test("clients that send the socket path as :authority are served (grpc-go before 1.55)", async (t) => {
  await using d = await startDaemon();
  const req = encodeMessage(messageType("VersionRequest"), { version: "0.1.0" });
  const authorities = [
    ["the raw socket path", d.socket],
    ["the percent-encoded path", encodeURIComponent(d.socket)],
    ["localhost", "localhost"],
  ];
  for (const mode of ["grpc-go", "huffman", "plain"] as const) {
    await t.step(`${mode} header encoding, three calls on one connection`, async () => {
      const client = await RawH2Client.connect(d.socket, { mode });
      try {
        for (const [, authority] of authorities) {
          const res = await client.call({
            authority: authority!,
            path: "/runtime.v1.RuntimeService/Version",
            body: req,
          });
          assertEquals(res.grpcStatus, 0, res.grpcMessage);
          assertEquals(decodeMessage(messageType("VersionResponse"), res.body).runtime_name, "davit");
        }
      } finally {
        client.close();
      }
    });
  }
  await t.step("an unimplemented method named over a raw-path connection", async () => {
    const client = await RawH2Client.connect(d.socket, { mode: "grpc-go" });
    try {
      const res = await client.call({
        authority: d.socket,
        path: "/runtime.v1.RuntimeService/CheckpointContainer",
        body: new Uint8Array(),
      });
      assertEquals(res.grpcStatus, 12);
      assertStringIncludes(res.grpcMessage, "CheckpointContainer");
    } finally {
      client.close();
    }
  });
});
