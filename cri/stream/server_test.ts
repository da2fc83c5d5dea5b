// The streaming server's orchestration with a recording backend standing in for runc and the monitor: routing,
// tokens, SPDY and WebSocket sessions, statuses, port-forward pairing, idle timeout and shutdown. The same paths
// run end to end against real containers in tests/streaming_test.ts.
import { assert, assertEquals, assertStringIncludes } from "../../tests/assert.ts";
import { logger } from "../../lib/log.ts";
import { spdyConnect, spdyForward, spdyRemote, spdyRoundTrip, wsRemote } from "../../tests/stream_client.ts";
import { StreamServer } from "./server.ts";
import type { PodConnection, SessionIo, SessionOutcome, StreamBackend } from "./session.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A backend whose "command" upper-cases stdin to stdout, says the size on stderr, and exits with stdin's length. */
function fakeBackend(calls: string[]): StreamBackend {
  const run = async (what: string, io: SessionIo): Promise<SessionOutcome> => {
    calls.push(what);
    let n = 0;
    if (io.resizes) {
      const r = io.resizes.getReader();
      const first = await r.read();
      r.releaseLock();
      if (!first.done) await io.stdout?.write(enc.encode(`size ${first.value.cols}x${first.value.rows}\n`));
    }
    if (io.stdin) {
      for await (const chunk of io.stdin) {
        n += chunk.length;
        await io.stdout?.write(enc.encode(dec.decode(chunk).toUpperCase()));
      }
    }
    await io.stderr?.write(enc.encode(`read ${n}\n`));
    await io.stdout?.close();
    await io.stderr?.close();
    if (io.signal.aborted) return { kind: "gone" };
    return n === 0 ? { kind: "error", message: "nothing to read" } : { kind: "exit", exitCode: n };
  };
  return {
    exec: (t, io) => run(`exec ${t.cmd.join(" ")}`, io),
    attach: (t, io) => run(`attach ${t.containerId}`, io),
    portForward: (podId) => {
      calls.push(`portforward ${podId}`);
      return Promise.resolve({
        connect(port: number): Promise<PodConnection> {
          if (port === 9) return Promise.reject(new Error("connect to port 9 in the pod: connection refused"));
          // An echo "server" with a greeting naming the port.
          const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
          const w = writable.getWriter();
          void w.write(enc.encode(`port ${port}:`));
          return Promise.resolve({
            readable,
            write: (d) => w.write(d),
            closeWrite: () => w.close().catch(() => {}),
            close: () => void w.abort().catch(() => {}),
          });
        },
        close: () => Promise.resolve(),
      });
    },
  };
}

Deno.test("streaming server with a recording backend", async (t) => {
  const calls: string[] = [];
  const server = await StreamServer.start({
    address: "127.0.0.1",
    port: 0,
    backend: fakeBackend(calls),
    log: logger("stream-test"),
    tokenTtlMs: 60_000,
    idleTimeoutMs: 1_500,
  });
  try {
    const target = { containerId: "c1", cmd: ["up"], tty: false, stdin: true, stdout: true, stderr: true };

    await t.step("SPDY exec: streams, status with the exit code", async () => {
      const r = await spdyRemote(server.exec(target), { stdin: enc.encode("abc"), stdout: true, stderr: true });
      assertEquals([r.stdout, r.stderr, r.exitCode], ["ABC", "read 3\n", 3]);
      const failed = await spdyRemote(server.exec(target), { stdin: enc.encode(""), stdout: true, stderr: true });
      assertEquals(JSON.parse(failed.error).message, "nothing to read");
      assertEquals(calls.slice(-2), ["exec up", "exec up"]);
    });

    await t.step("WebSocket attach with a terminal: resize first", async () => {
      const tty = { containerId: "c2", tty: true, stdin: true, stdout: true, stderr: false };
      const r = await wsRemote(server.attach(tty), {
        stdin: enc.encode("hi"),
        stdout: true,
        tty: true,
        resize: [{ Width: 120, Height: 33 }],
      });
      assertEquals([r.stdout, r.exitCode], ["size 120x33\nHI", 2]);
      assertEquals(calls.at(-1), "attach c2");
    });

    await t.step("a token is single use and bound to its kind", async () => {
      const url = server.exec(target);
      await spdyRemote(url, { stdin: enc.encode("x"), stdout: true, stderr: true });
      assertStringIncludes(await spdyRemote(url, { stdout: true }).then(() => "", String), "404");
      const other = server.exec(target).replace("/exec/", "/portforward/");
      assertStringIncludes(await spdyRemote(other, { stdout: true }).then(() => "", String), "404");
    });

    await t.step("SPDY port-forward: pairs by request ID, errors on the error stream", async () => {
      const c = await spdyConnect(server.portForward({ podId: "p1", ports: [] }), {
        protocols: ["portforward.k8s.io"],
      });
      try {
        const rs = await Promise.all(
          [1, 2, 3].map(async (i) => await spdyRoundTrip(await spdyForward(c, 8000 + i, i), enc.encode(`#${i}`))),
        );
        assertEquals(rs.map((r) => r.data), ["port 8001:#1", "port 8002:#2", "port 8003:#3"]);
        const refused = await spdyRoundTrip(await spdyForward(c, 9, 7), enc.encode("x"));
        assertStringIncludes(refused.error, "port 9");
      } finally {
        await c.close();
      }
    });

    await t.step("idle sessions are closed", async () => {
      const c = await spdyConnect(server.exec(target), { protocols: ["v4.channel.k8s.io"] });
      const start = Date.now();
      await c.session.closed;
      assert(Date.now() - start < 10_000);
    });
  } finally {
    await server.close();
  }
});
