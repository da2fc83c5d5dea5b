// Tests of the WebSocket handshake and connection over real loopback TCP (and TLS): davit's client against its
// server, a raw client for frames no well-behaved peer sends, and Deno's built-in WebSocket as an independent
// implementation.
import { Unavailable } from "../../lib/errors.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "../../tests/assert.ts";
import { makeTlsCerts } from "../../tests/fixtures/certs.ts";
import { continueReadable, HttpError, readRequest, readResponseHead, writeResponse } from "./http1.ts";
import {
  acceptKey,
  chooseProtocol,
  connectWebSocket,
  headerList,
  type UpgradeOptions,
  upgradeWebSocket,
  validateUpgrade,
  type WebSocketConn,
  WebSocketRefused,
} from "./websocket.ts";
import { decodeClosePayload, encodeFrame, type Frame, FrameDecoder, Opcode } from "./websocket_frame.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const MASK = new Uint8Array([1, 2, 3, 4]);

Deno.test("websocket handshake: pure parts", async (t) => {
  await t.step("the accept key of RFC 6455 Section 1.3", async () => {
    assertEquals(await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  await t.step("subprotocols: header lists and the server's preference", () => {
    assertEquals(headerList(" a, ,b ,c"), ["a", "b", "c"]);
    assertEquals(headerList(null), []);
    assertEquals(chooseProtocol(["v4.channel.k8s.io", "v5.channel.k8s.io"], PROTOCOLS), "v5.channel.k8s.io");
    assertEquals(chooseProtocol(["base64.channel.k8s.io"], PROTOCOLS), undefined);
  });

  const good = {
    host: "h",
    upgrade: "websocket",
    connection: "keep-alive, Upgrade",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-protocol": "v4.channel.k8s.io, v5.channel.k8s.io",
  };
  await t.step("a valid request", () => {
    const offer = validateUpgrade({ method: "GET", version: "HTTP/1.1", headers: new Headers(good) });
    assertEquals(offer, { key: good["sec-websocket-key"], protocols: ["v4.channel.k8s.io", "v5.channel.k8s.io"] });
    const mixedCase = { ...good, upgrade: "WebSocket", connection: "upgrade" };
    validateUpgrade({ method: "GET", headers: new Headers(mixedCase) });
  });

  const bad: [string, string, Record<string, string | undefined>, number][] = [
    ["POST", "HTTP/1.1", {}, 405],
    ["GET", "HTTP/1.0", {}, 400],
    ["GET", "HTTP/1.1", { upgrade: "h2c" }, 400],
    ["GET", "HTTP/1.1", { connection: "keep-alive" }, 400],
    ["GET", "HTTP/1.1", { "sec-websocket-version": undefined }, 400],
    ["GET", "HTTP/1.1", { "sec-websocket-version": "8" }, 426],
    ["GET", "HTTP/1.1", { "sec-websocket-key": undefined }, 400],
    ["GET", "HTTP/1.1", { "sec-websocket-key": "c2hvcnQ=" }, 400],
    ["GET", "HTTP/1.1", { "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZR==" }, 400],
  ];
  for (const [method, version, change, status] of bad) {
    await t.step(`${method} ${version} ${JSON.stringify(change)}: ${status}`, () => {
      const headers = new Headers();
      for (const [k, v] of Object.entries({ ...good, ...change })) if (v !== undefined) headers.set(k, v);
      const err = assertThrows(() => validateUpgrade({ method, version, headers }), HttpError) as HttpError;
      assertEquals(err.status, status);
      if (status === 426) assertEquals(err.headers.get("sec-websocket-version"), "13");
    });
  }
});

interface Accepted {
  ws: WebSocketConn;
  protocol: string;
  path: string;
}

/** A streaming-server-like edge: each connection is read, refused (path /refuse) or upgraded. */
function serve(listener: Deno.Listener, options: Partial<UpgradeOptions> = {}) {
  const waiting: ((a: Accepted) => void)[] = [];
  const ready: Accepted[] = [];
  const handlers: Promise<void>[] = [];
  const handle = async (conn: Deno.Conn) => {
    try {
      const req = await readRequest(conn, { timeoutMs: 2000 });
      if (req.url.pathname === "/refuse") throw new HttpError(404, "no such session");
      const { ws, protocol } = await upgradeWebSocket(req, { protocols: PROTOCOLS, ...options });
      const accepted = { ws, protocol, path: req.url.pathname };
      const w = waiting.shift();
      if (w) w(accepted);
      else ready.push(accepted);
    } catch (err) {
      // The edge's one error handler: answer what can be answered, then close.
      if (err instanceof HttpError) {
        await writeResponse(conn.writable, err.status, { headers: err.headers, body: `${err.message}\n` }).catch(
          () => {},
        );
      }
      try {
        conn.close();
      } catch {
        // A failed read (a reset, a TLS handshake error) already closed it.
      }
    }
  };
  const loop = (async () => {
    for await (const conn of listener) handlers.push(handle(conn));
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    next(): Promise<Accepted> {
      const a = ready.shift();
      return a ? Promise.resolve(a) : new Promise((resolve) => waiting.push(resolve));
    },
    async close(): Promise<void> {
      listener.close();
      await loop.catch(() => {});
      await Promise.all(handlers);
    },
  };
}

/** A client that speaks frames by hand. */
async function rawClient(port: number, path = "/raw") {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const writer = conn.writable.getWriter();
  await writer.write(enc.encode(
    `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
      `Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n`,
  ));
  const reader = conn.readable.getReader();
  const head = await readResponseHead(reader);
  assertEquals(head.status, 101);
  const frames = continueReadable(head.rest, reader).getReader();
  const decoder = new FrameDecoder({ role: "client", maxPayloadBytes: 1 << 20 });
  return {
    write: (bytes: Uint8Array) => writer.write(bytes),
    send: (frame: Frame) => writer.write(encodeFrame(frame, MASK)),
    /** The next frame, or undefined at the end of the connection. */
    async frame(): Promise<Frame | undefined> {
      while (true) {
        const f = decoder.next();
        if (f) return f;
        const { done, value } = await frames.read().catch(() => ({ done: true as const, value: undefined }));
        if (done) return undefined;
        decoder.push(value);
      }
    },
    close(): void {
      try {
        conn.close();
      } catch {
        // Reading to the end already closed it.
      }
    },
  };
}

async function echo(ws: WebSocketConn): Promise<void> {
  for await (const m of ws.messages) await ws.send(m.binary ? m.data : dec.decode(m.data)).catch(() => {});
}

Deno.test("websocket: davit's client and server over loopback TCP", async (t) => {
  const server = serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const url = `ws://127.0.0.1:${server.port}/exec/tok`;
  try {
    await t.step("the server's preferred subprotocol wins; text and binary echo", async () => {
      const { ws, protocol, status } = await connectWebSocket(url, { protocols: [...PROTOCOLS].reverse() });
      const s = await server.next();
      assertEquals([status, protocol, s.protocol, s.path], [
        101,
        "v5.channel.k8s.io",
        "v5.channel.k8s.io",
        "/exec/tok",
      ]);
      const echoing = echo(s.ws);
      const got = ws.messages.getReader();
      await ws.send("héllo");
      await ws.send(new Uint8Array([0, 1, 255]));
      assertEquals((await got.read()).value, { binary: false, data: enc.encode("héllo") });
      assertEquals((await got.read()).value, { binary: true, data: new Uint8Array([0, 1, 255]) });
      assertEquals(await ws.close(4000, "bye"), { code: 4000, reason: "bye" });
      assertEquals(await s.ws.closed, { code: 4000, reason: "bye" });
      assertEquals((await got.read()).done, true);
      await echoing;
      await assertRejects(() => ws.send("late"), Unavailable);
    });

    await t.step("a server-initiated close; close() twice returns the same outcome", async () => {
      const { ws } = await connectWebSocket(url, { protocols: PROTOCOLS });
      const s = await server.next();
      const first = s.ws.close(1001, "going");
      assertEquals(await s.ws.close(), await first);
      assertEquals(await first, { code: 1001, reason: "going" });
      assertEquals(await ws.closed, { code: 1001, reason: "going" });
    });

    await t.step("large messages both ways", async () => {
      const { ws } = await connectWebSocket(url, { protocols: PROTOCOLS });
      const s = await server.next();
      const echoing = echo(s.ws);
      const big = crypto.getRandomValues(new Uint8Array(65536)).slice();
      const payload = new Uint8Array(8 * 1024 * 1024);
      for (let i = 0; i < payload.length; i += big.length) payload.set(big, i);
      const got = ws.messages.getReader();
      await ws.send(payload);
      const back = (await got.read()).value!;
      assertEquals(back.data.length, payload.length);
      assert(back.data.every((b, i) => b === payload[i]));
      got.releaseLock();
      await ws.close();
      await echoing;
    });

    await t.step("pings are answered, and pongs count as activity", async () => {
      let now = 0;
      const server2 = serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }), { now: () => now });
      const { ws } = await connectWebSocket(`ws://127.0.0.1:${server2.port}/p`, { protocols: PROTOCOLS });
      const s = await server2.next();
      assertEquals(s.ws.lastActivity, 0);
      now = 10;
      await s.ws.ping(enc.encode("are you there"));
      now = 20;
      // The pong arrives at 20; wait for it by a round trip of a message.
      const echoing = echo(s.ws);
      await ws.send("x");
      await ws.messages.getReader().read();
      assertEquals(s.ws.lastActivity, 20);
      await ws.close();
      await echoing;
      await server2.close();
    });

    await t.step("a server that does not read its messages can still close", async () => {
      const { ws } = await connectWebSocket(url, { protocols: PROTOCOLS });
      const s = await server.next();
      for (let i = 0; i < 200; i++) await ws.send(new Uint8Array(1000));
      assertEquals(await s.ws.close(), { code: 1000, reason: "" });
      assertEquals(await ws.closed, { code: 1000, reason: "" });
    });

    await t.step("refusals come back with their status and body", async () => {
      const e404 = await assertRejects(
        () => connectWebSocket(`ws://127.0.0.1:${server.port}/refuse`, { protocols: PROTOCOLS }),
        WebSocketRefused,
      ) as WebSocketRefused;
      assertEquals([e404.status, e404.body], [404, "no such session\n"]);
      const e400 = await assertRejects(
        () => connectWebSocket(url, { protocols: ["base64.channel.k8s.io"] }),
        WebSocketRefused,
      ) as WebSocketRefused;
      assertEquals(e400.status, 400);
      assertStringIncludes(e400.body, "base64.channel.k8s.io");
    });
  } finally {
    await server.close();
  }
});

Deno.test("websocket: misbehaving peers", async (t) => {
  const server = serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }), { maxMessageBytes: 4096, closeTimeoutMs: 200 });
  try {
    await t.step("fragments with a ping between them make one message, and the ping gets its pong", async () => {
      const c = await rawClient(server.port);
      const s = await server.next();
      const echoing = echo(s.ws);
      await c.send({ fin: false, opcode: Opcode.text, payload: enc.encode("frag") });
      await c.send({ fin: true, opcode: Opcode.ping, payload: enc.encode("p1") });
      await c.send({ fin: false, opcode: Opcode.continuation, payload: enc.encode("men") });
      await c.send({ fin: true, opcode: Opcode.continuation, payload: enc.encode("ted") });
      assertEquals(await c.frame(), { fin: true, opcode: Opcode.pong, payload: enc.encode("p1") });
      assertEquals(await c.frame(), { fin: true, opcode: Opcode.text, payload: enc.encode("fragmented") });
      await c.send({ fin: true, opcode: Opcode.close, payload: new Uint8Array() });
      assertEquals(await c.frame(), { fin: true, opcode: Opcode.close, payload: new Uint8Array() });
      assertEquals(await c.frame(), undefined);
      assertEquals(await s.ws.closed, { code: 1005, reason: "" });
      await echoing;
      c.close();
    });

    const failures: [string, (c: Awaited<ReturnType<typeof rawClient>>) => Promise<void>, number][] = [
      [
        "an unmasked client frame",
        (c) => c.write(encodeFrame({ fin: true, opcode: 1, payload: enc.encode("x") })),
        1002,
      ],
      ["a message over the cap", (c) => c.send({ fin: true, opcode: 2, payload: new Uint8Array(5000) }), 1009],
      ["a fragmented message over the cap", async (c) => {
        await c.send({ fin: false, opcode: 2, payload: new Uint8Array(3000) });
        await c.send({ fin: true, opcode: 0, payload: new Uint8Array(3000) });
      }, 1009],
      ["text that is not UTF-8", (c) => c.send({ fin: true, opcode: 1, payload: new Uint8Array([0xff]) }), 1007],
      ["garbage bytes", (c) => c.write(enc.encode("GET / HTTP/1.1\r\n\r\nnot websocket at all")), 1002],
    ];
    for (const [name, act, code] of failures) {
      await t.step(`${name}: closed with ${code}`, async () => {
        const c = await rawClient(server.port);
        const s = await server.next();
        await act(c);
        assertEquals((await s.ws.closed).code, code);
        // The close frame usually arrives first; a reset may beat it.
        const f = await c.frame();
        if (f) assertEquals(decodeClosePayload(f.payload).code, code);
        c.close();
      });
    }

    await t.step("a peer that vanishes mid-frame: 1006", async () => {
      const c = await rawClient(server.port);
      const s = await server.next();
      await c.write(encodeFrame({ fin: true, opcode: 2, payload: new Uint8Array(1000) }, MASK).subarray(0, 500));
      c.close();
      assertEquals(await s.ws.closed, { code: 1006, reason: "" });
    });

    await t.step("a peer that never answers our close: 1006 after the close timeout", async () => {
      const c = await rawClient(server.port);
      const s = await server.next();
      const started = Date.now();
      assertEquals(await s.ws.close(), { code: 1006, reason: "" });
      assert(Date.now() - started >= 150);
      assertEquals(decodeClosePayload((await c.frame())!.payload).code, 1000);
      c.close();
    });

    await t.step("the server still serves after all that", async () => {
      const { ws } = await connectWebSocket(`ws://127.0.0.1:${server.port}/ok`, { protocols: PROTOCOLS });
      const s = await server.next();
      await ws.close();
      await s.ws.closed;
    });
  } finally {
    await server.close();
  }
});

Deno.test("websocket: Deno's own WebSocket client against davit's server", async (t) => {
  const server = serve(Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  try {
    await t.step("subprotocol, text and binary echo, a client close", async () => {
      const sock = new WebSocket(`ws://127.0.0.1:${server.port}/x`, ["v5.channel.k8s.io"]);
      sock.binaryType = "arraybuffer";
      const received: (string | Uint8Array)[] = [];
      const gotTwo = new Promise<void>((resolve) => {
        sock.onmessage = (e) => {
          received.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
          if (received.length === 2) resolve();
        };
      });
      const closed = new Promise<CloseEvent>((resolve) => sock.onclose = resolve);
      await new Promise((resolve, reject) => {
        sock.onopen = resolve;
        sock.onerror = reject;
      });
      assertEquals(sock.protocol, "v5.channel.k8s.io");
      const s = await server.next();
      const echoing = echo(s.ws);
      sock.send("\x01stdout");
      sock.send(new Uint8Array(70000).fill(9));
      await gotTwo;
      assertEquals(received[0], "\x01stdout");
      assertEquals(received[1], new Uint8Array(70000).fill(9));
      sock.close(1000, "done");
      assertEquals(await s.ws.closed, { code: 1000, reason: "done" });
      assertEquals((await closed).code, 1000);
      await echoing;
    });

    await t.step("a server close reaches the client with its code and reason", async () => {
      const sock = new WebSocket(`ws://127.0.0.1:${server.port}/y`, ["v4.channel.k8s.io"]);
      const closed = new Promise<CloseEvent>((resolve) => sock.onclose = resolve);
      await new Promise((resolve) => sock.onopen = resolve);
      const s = await server.next();
      await s.ws.send("bye soon");
      assertEquals(await s.ws.close(4001, "session over"), { code: 4001, reason: "session over" });
      const e = await closed;
      assertEquals([e.code, e.reason], [4001, "session over"]);
    });
  } finally {
    await server.close();
  }
});

Deno.test("websocket: over TLS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "davit-ws-tls-" });
  try {
    const files = await makeTlsCerts(dir);
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(files.serverCert),
      key: await Deno.readTextFile(files.serverKey),
    });
    const server = serve(listener);
    try {
      const caCerts = [await Deno.readTextFile(files.caCert)];
      const { ws, protocol } = await connectWebSocket(`wss://127.0.0.1:${server.port}/tls`, {
        protocols: PROTOCOLS,
        tls: { caCerts },
      });
      assertEquals(protocol, "v5.channel.k8s.io");
      const s = await server.next();
      const echoing = echo(s.ws);
      const got = ws.messages.getReader();
      await ws.send("over tls");
      assertEquals(dec.decode((await got.read()).value!.data), "over tls");
      got.releaseLock();
      await ws.close();
      await echoing;
      // A client that does not trust the CA never gets a WebSocket.
      await assertRejects(() => connectWebSocket(`wss://127.0.0.1:${server.port}/tls`, { protocols: PROTOCOLS }));
    } finally {
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
