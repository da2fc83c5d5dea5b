// Port forwarding through the `davit portforward` helper into a real network namespace (needs root, iproute2 and
// busybox-static at /bin/busybox): echo servers run inside it with busybox nc, and nothing of the host's loopback
// may be reached. Also the helper's command line and its answer to malformed input.
import { DeadlineExceeded } from "../lib/errors.ts";
import { selfCommand } from "../lib/self_exec.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { type PortConnection, PortForwarder } from "./port_forward.ts";
import { encodeFrame, encodeOpen, FrameType, MAX_FRAME_PAYLOAD } from "./port_forward_frame.ts";
import { parseArgs } from "./port_forward_helper.ts";

const BUSYBOX = "/bin/busybox";
const decoder = new TextDecoder();

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  return decoder.decode(out.stdout);
}

/** A network namespace of the test's own (`ip netns add`), with loopback up and servers in it; disposing kills them. */
class TestNetns implements AsyncDisposable {
  readonly name = `davit-pf-test-${crypto.randomUUID().slice(0, 8)}`;
  readonly path = `/run/netns/${this.name}`;
  readonly #servers: Deno.ChildProcess[] = [];

  static async create(): Promise<TestNetns> {
    const ns = new TestNetns();
    await run("ip", ["netns", "add", ns.name]);
    try {
      await ns.exec(["ip", "link", "set", "lo", "up"]);
    } catch (err) {
      await ns[Symbol.asyncDispose]();
      throw err;
    }
    return ns;
  }

  exec(argv: string[]): Promise<string> {
    return run("ip", ["netns", "exec", this.name, ...argv]);
  }

  /** Starts `busybox nc -ll -p PORT -e PROG...` in the namespace (a server per connection) and waits until it listens. */
  async serve(port: number, prog: string[]): Promise<void> {
    const args = ["netns", "exec", this.name, BUSYBOX, "nc", "-ll", "-p", String(port), "-e", ...prog];
    this.#servers.push(new Deno.Command("ip", { args, stdin: "null", stdout: "null", stderr: "null" }).spawn());
    for (let i = 0; i < 100; i++) {
      const listening = await this.exec([BUSYBOX, "netstat", "-ltn"]);
      if (listening.includes(`:${port} `)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nothing listens on port ${port} in ${this.name}`);
  }

  /** Processes whose network namespace this is. */
  async pids(): Promise<number[]> {
    return (await run("ip", ["netns", "pids", this.name])).split("\n").filter((l) => l !== "").map(Number);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const s of this.#servers) {
      try {
        s.kill("SIGKILL");
      } catch {
        // already gone
      }
      await s.status;
    }
    // The per-connection programs nc forked are orphans by now: whatever is left in the namespace goes too.
    for (const pid of await this.pids().catch(() => [])) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    await run("ip", ["netns", "del", this.name]);
  }
}

async function readAll(conn: PortConnection): Promise<Uint8Array> {
  return new Uint8Array(await new Response(conn.readable).arrayBuffer());
}

/** Bytes that differ per connection and per position, so a mix-up between connections shows. */
function pattern(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (seed * 31 + i * 7 + (i >> 8)) & 0xff;
  return out;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

Deno.test("port forwarding into a network namespace", async (t) => {
  await using ns = await TestNetns.create();
  const ECHO = 7101; // dual-stack echo
  const COUNT = 7102; // answers the byte count after the client's EOF
  const V6_ONLY = 7103; // echo on [::] with bindv6only: unreachable over IPv4
  const CLOSED_PORT = 7199;
  await ns.serve(ECHO, ["/bin/cat"]);
  await ns.serve(COUNT, [BUSYBOX, "wc", "-c"]);
  await ns.exec(["sysctl", "-qw", "net.ipv6.bindv6only=1"]);
  await ns.serve(V6_ONLY, ["/bin/cat"]);

  await using fwd = await PortForwarder.start(ns.path);

  await t.step("the helper's thread is in the namespace", async () => {
    assert((await ns.pids()).includes(fwd.pid), "ip netns pids lists the helper");
  });

  await t.step("5 parallel connections, each larger than the window, echo their own bytes", async () => {
    const size = 600 * 1024 + 123;
    await Promise.all([0, 1, 2, 3, 4].map(async (seed) => {
      const conn = await fwd.connect(ECHO);
      const sent = pattern(seed, size);
      const [got] = await Promise.all([
        readAll(conn),
        (async () => {
          for (let off = 0; off < size; off += 100_000) await conn.write(sent.subarray(off, off + 100_000));
          await conn.closeWrite();
        })(),
      ]);
      assertEquals(got.byteLength, size);
      assert(got.every((b, i) => b === sent[i]), `connection ${seed} echoed other bytes`);
    }));
    await until("all connections freed", () => fwd.connections === 0);
  });

  await t.step("a connection nobody reads stalls alone, with bounded buffering", async () => {
    const stalled = await fwd.connect(ECHO);
    let written = 0;
    const chunk = new Uint8Array(MAX_FRAME_PAYLOAD);
    const writing = (async () => {
      for (;;) {
        await stalled.write(chunk);
        written += chunk.byteLength;
      }
    })();
    await until("the stalled writer to block", async () => {
      const before = written;
      await new Promise((r) => setTimeout(r, 200));
      return written === before;
    });
    // What the echo could not send back is held by the kernel's socket buffers and the two windows, not by us.
    assert(written < 32 * 1024 * 1024, `${written} bytes were accepted while nothing was read`);
    const other = await fwd.connect(ECHO);
    await other.write(new TextEncoder().encode("not blocked"));
    await other.closeWrite();
    assertEquals(decoder.decode(await readAll(other)), "not blocked");
    stalled.close();
    await assertRejects(() => writing, Error, "closed");
    await until("both ids freed", () => fwd.connections === 0);
  });

  await t.step("half-close: the pod sees EOF, its answer still arrives", async () => {
    const conn = await fwd.connect(COUNT);
    await conn.write(new TextEncoder().encode("x".repeat(1000)));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readAll(conn)).trim(), "1000");
    await assertRejects(() => conn.write(new Uint8Array(1)), Error, "closed");
  });

  await t.step("a port nothing listens on: the error names it", async () => {
    await assertRejects(
      () => fwd.connect(CLOSED_PORT),
      Error,
      `connect to port ${CLOSED_PORT} in the pod: connection refused`,
    );
    await until("the id freed", () => fwd.connections === 0);
  });

  await t.step("an IPv6-only server is reached through the [::1] fallback", async () => {
    await assertRejects(() => ns.exec([BUSYBOX, "nc", "-w", "2", "127.0.0.1", String(V6_ONLY)]));
    const conn = await fwd.connect(V6_ONLY);
    await conn.write(new TextEncoder().encode("over ipv6"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readAll(conn)), "over ipv6");
  });

  await t.step("the host's own loopback is not reached", async () => {
    const v4 = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const v6 = Deno.listen({ hostname: "::1", port: v4.addr.port });
    let accepted = 0;
    const accepting = [v4, v6].map(async (l) => {
      for await (const c of l) {
        accepted++;
        c.close();
      }
    });
    try {
      await assertRejects(() => fwd.connect(v4.addr.port), Error, "connection refused");
    } finally {
      v4.close();
      v6.close();
      await Promise.allSettled(accepting);
    }
    assertEquals(accepted, 0);
  });

  await t.step("close() on a connection frees its id; the other connections go on", async () => {
    const a = await fwd.connect(ECHO);
    const b = await fwd.connect(ECHO);
    a.close();
    await assertRejects(() => a.write(new Uint8Array(1)), Error, "closed");
    assertEquals((await a.readable.getReader().read()).done, true);
    await b.write(new TextEncoder().encode("still here"));
    const reader = b.readable.getReader();
    assertEquals(decoder.decode((await reader.read()).value), "still here");
    reader.releaseLock();
    b.close();
    await until("both ids freed", () => fwd.connections === 0);
  });

  await t.step("without an IPv4 loopback address, the error says what each address did", async () => {
    await ns.exec(["ip", "addr", "del", "127.0.0.1/8", "dev", "lo"]);
    await assertRejects(
      () => fwd.connect(CLOSED_PORT),
      Error,
      `connect to port ${CLOSED_PORT} in the pod: 127.0.0.1: network is unreachable; [::1]: connection refused`,
    );
    const conn = await fwd.connect(ECHO);
    await conn.write(new TextEncoder().encode("v6"));
    await conn.closeWrite();
    assertEquals(decoder.decode(await readAll(conn)), "v6");
  });

  await t.step("close() ends open connections and the helper", async () => {
    const open = await fwd.connect(ECHO);
    const cut = assertRejects(() => readAll(open), Error, "was closed");
    const pid = fwd.pid;
    await fwd.close();
    await cut;
    assert(!alive(pid), `helper ${pid} still runs`);
    assert(!(await ns.pids()).includes(pid));
    await assertRejects(() => fwd.connect(ECHO), Error, "was closed");
  });
});

Deno.test("port forwarder: a helper that dies, an abort, a namespace that is not there", async (t) => {
  await using ns = await TestNetns.create();
  const ECHO = 7201;
  await ns.serve(ECHO, ["/bin/cat"]);

  await t.step("killed helper: open connections error, connect rejects", async () => {
    await using fwd = await PortForwarder.start(ns.path);
    const conn = await fwd.connect(ECHO);
    const reading = readAll(conn);
    Deno.kill(fwd.pid, "SIGKILL");
    await assertRejects(() => reading, Error, "was killed by SIGKILL");
    await assertRejects(() => fwd.connect(ECHO), Error, "was killed by SIGKILL");
  });

  await t.step("abort signal", async () => {
    const ac = new AbortController();
    await using fwd = await PortForwarder.start(ns.path, { signal: ac.signal });
    const conn = await fwd.connect(ECHO);
    const reading = readAll(conn);
    ac.abort(new Error("session over"));
    await assertRejects(() => reading, Error, "session over");
    await fwd.close();
    assert(!alive(fwd.pid));
  });

  await t.step("a helper not ready in time: DeadlineExceeded, and it is reaped", async () => {
    await assertRejects(() => PortForwarder.start(ns.path, { startTimeoutMs: 1 }), DeadlineExceeded, "not ready after");
  });

  await t.step("missing namespace: start rejects with the helper's reason", async () => {
    await assertRejects(
      () => PortForwarder.start(`${ns.path}-missing`),
      Error,
      `cannot enter network namespace "${ns.path}-missing": openat`,
    );
  });

  await t.step("not a namespace file: setns refuses", async () => {
    await assertRejects(() => PortForwarder.start("/etc/hostname"), Error, "setns fd");
  });
});

Deno.test("portforward helper: command line", async (t) => {
  const cases: [string[], ReturnType<typeof parseArgs>][] = [
    [["--netns", "/run/netns/x"], { netns: "/run/netns/x" }],
    [["--netns=/proc/1/ns/net"], { netns: "/proc/1/ns/net" }],
    [["--help"], { help: true }],
    [[], { error: "--netns is required" }],
    [["--netns"], { error: "--netns needs a path" }],
    [["--netns", "/a", "--netns", "/b"], { error: "--netns given twice" }],
    [["--port", "80"], { error: 'unknown argument "--port"' }],
  ];
  for (const [args, want] of cases) {
    await t.step(args.join(" ") || "(none)", () => assertEquals(parseArgs(args), want));
  }
});

/** Runs the helper in this process's own namespace, feeds it `input` and returns its exit code and stderr. */
async function helperWith(input: Uint8Array[]): Promise<{ code: number; stderr: string }> {
  const child = selfCommand(["portforward", "--netns", "/proc/self/ns/net"], {
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).arrayBuffer();
  const stderr = new Response(child.stderr).text();
  const w = child.stdin.getWriter();
  for (const chunk of input) await w.write(chunk).catch(() => {});
  await w.close().catch(() => {});
  const [status, , text] = await Promise.all([child.status, stdout, stderr]);
  return { code: status.code, stderr: text };
}

Deno.test("portforward helper: malformed input ends it with a message", async (t) => {
  const header = new Uint8Array([3, 0, 0, 0, 1, 0, 1, 0, 1]);
  const cases: [string, Uint8Array[], string][] = [
    ["unknown frame type", [new Uint8Array([42, 0, 0, 0, 1, 0, 0, 0, 0])], "unexpected frame type 42"],
    ["frame past the maximum", [header], `exceeds ${MAX_FRAME_PAYLOAD}`],
    [
      "OPEN twice for one id",
      [new Uint8Array([...encodeOpen(1, 9), ...encodeOpen(1, 9)])],
      "OPEN for connection 1, which is open",
    ],
    ["input cut inside a frame", [encodeFrame(FrameType.CLOSE, 1).subarray(0, 5)], "input ended inside a frame"],
  ];
  for (const [name, input, message] of cases) {
    await t.step(name, async () => {
      const { code, stderr } = await helperWith(input);
      assertEquals(code, 1);
      assertStringIncludes(stderr, message);
    });
  }
  await t.step("stdin closing at once is a clean exit with a silent stderr", async () => {
    assertEquals(await helperWith([]), { code: 0, stderr: "" });
  });
  await t.step("bad command line: exit 2", async () => {
    const out = await selfCommand(["portforward", "--bogus"], { stdin: "null", stdout: "null", stderr: "piped" })
      .output();
    assertEquals(out.code, 2);
    assertStringIncludes(decoder.decode(out.stderr), 'unknown argument "--bogus"');
  });
});
