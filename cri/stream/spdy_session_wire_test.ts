// A SPDY server session driven frame by frame by a raw peer: the exact answers to PING, unknown frames, frames
// for unknown or finished streams, window overruns, SETTINGS, HEADERS and initial bytes, and a clean end on
// malformed input (garbage, a wrong version, a huge length, a header block bomb, bad stream IDs).
import zlib from "node:zlib";
import { Unavailable } from "../../lib/errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import {
  encodeFrame,
  FLAG_FIN,
  GoAwayStatus,
  RstStatus,
  SettingId,
  type SpdyFrame,
  SpdyProtocolError,
} from "./spdy_frame.ts";
import { SpdySession, type SpdySessionOptions } from "./spdy_session.ts";
import type { SpdyStream } from "./spdy_stream.ts";
import { memoryPair, pattern, RawPeer, readAll, tcpPair } from "./spdy_test_peer.ts";

async function serverWithPeer(opts: Partial<SpdySessionOptions> = {}) {
  const [a, b] = await memoryPair();
  const server = new SpdySession(a, { role: "server", ...opts });
  const peer = new RawPeer(b);
  return {
    server,
    peer,
    async [Symbol.asyncDispose]() {
      await peer.close();
      await server.close();
    },
  };
}

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
}

const SETTINGS_FIRST: SpdyFrame = { type: "settings", flags: 0, entries: [] };

Deno.test("spdy session on the wire", async (t) => {
  await t.step("announces its window first, and answers a peer's PING with the same ID", async () => {
    await using p = await serverWithPeer({ initialWindowBytes: 128 << 10 });
    assertEquals(await p.peer.next(), {
      type: "settings",
      flags: 0,
      entries: [{ flags: 0, id: SettingId.INITIAL_WINDOW_SIZE, value: 128 << 10 }],
    });
    assertEquals(await p.peer.next(), { type: "window_update", streamId: 0, delta: (1 << 20) - 65536 });
    await p.peer.send({ type: "ping", id: 1 });
    assertEquals(await p.peer.next(), { type: "ping", id: 1 });
    // An even ID is the server's own kind: one it never sent is ignored (Section 2.6.5).
    await p.peer.send({ type: "ping", id: 2 });
    await p.peer.send({ type: "ping", id: 3 });
    assertEquals(await p.peer.expect("ping"), { type: "ping", id: 3 });
  });

  await t.step("ignores unknown control frames and RST_STREAM for unknown streams", async () => {
    await using p = await serverWithPeer();
    await p.peer.send({ type: "unknown", controlType: 10, flags: 0, payload: hex("00010203") });
    await p.peer.send({ type: "rst_stream", streamId: 41, status: RstStatus.CANCEL });
    await p.peer.send({ type: "window_update", streamId: 41, delta: 10 });
    await p.peer.send({ type: "ping", id: 5 });
    assertEquals(await p.peer.expect("ping"), { type: "ping", id: 5 });
  });

  await t.step("frames for unknown streams get RST_STREAM INVALID_STREAM", async () => {
    await using p = await serverWithPeer();
    await p.peer.send({ type: "data", streamId: 99, flags: 0, data: hex("01") });
    assertEquals(await p.peer.expect("rst_stream"), {
      type: "rst_stream",
      streamId: 99,
      status: RstStatus.INVALID_STREAM,
    });
    await p.peer.send({ type: "headers", streamId: 97, flags: 0, headerBlock: await p.peer.compress({ a: "b" }) });
    assertEquals(await p.peer.expect("rst_stream"), {
      type: "rst_stream",
      streamId: 97,
      status: RstStatus.INVALID_STREAM,
    });
  });

  await t.step("DATA after the peer's FIN gets RST_STREAM STREAM_ALREADY_CLOSED", async () => {
    await using p = await serverWithPeer({ onStream: (s) => s.reply() });
    await p.peer.synStream(1, { path: "/" }, FLAG_FIN);
    const reply = await p.peer.expect("syn_reply");
    assertEquals(await p.peer.headers(reply.headerBlock), {});
    await p.peer.send({ type: "data", streamId: 1, flags: 0, data: hex("01") });
    assertEquals(await p.peer.expect("rst_stream"), {
      type: "rst_stream",
      streamId: 1,
      status: RstStatus.STREAM_ALREADY_CLOSED,
    });
  });

  await t.step("a flow-controlling peer that overruns a window gets FLOW_CONTROL_ERROR", async () => {
    const streams: SpdyStream[] = [];
    await using p = await serverWithPeer({
      initialWindowBytes: 64 << 10,
      onStream: (s) => {
        streams.push(s);
        return s.reply();
      },
    });
    await p.peer.send(SETTINGS_FIRST);
    await p.peer.synStream(1, {});
    await p.peer.expect("syn_reply");
    for (let i = 0; i < 5; i++) {
      await p.peer.send({ type: "data", streamId: 1, flags: 0, data: new Uint8Array(16 << 10) });
    }
    assertEquals(await p.peer.expect("rst_stream"), {
      type: "rst_stream",
      streamId: 1,
      status: RstStatus.FLOW_CONTROL_ERROR,
    });
    await assertRejects(() => readAll(streams[0]!.readable), SpdyProtocolError);
  });

  await t.step("a peer without flow control is held back, not reset", async () => {
    const got = Promise.withResolvers<Uint8Array>();
    await using p = await serverWithPeer({
      initialWindowBytes: 64 << 10,
      onStream: async (s) => {
        await s.reply();
        await new Promise((r) => setTimeout(r, 30));
        got.resolve(await readAll(s.readable));
      },
    });
    await p.peer.synStream(1, {});
    await p.peer.expect("syn_reply");
    const body = pattern(300 << 10);
    for (let at = 0; at < body.length; at += 32 << 10) {
      await p.peer.send({ type: "data", streamId: 1, flags: 0, data: body.subarray(at, at + (32 << 10)) });
    }
    await p.peer.send({ type: "data", streamId: 1, flags: FLAG_FIN, data: new Uint8Array() });
    assertEquals(await got.promise, body);
  });

  await t.step("the connection window reopens as DATA arrives, stream windows as it is read", async () => {
    const streams: SpdyStream[] = [];
    await using p = await serverWithPeer({
      initialWindowBytes: 256 << 10,
      onStream: (s) => {
        streams.push(s);
        return s.reply();
      },
    });
    await p.peer.send(SETTINGS_FIRST);
    for (const id of [1, 3, 5]) {
      await p.peer.synStream(id, {});
      await p.peer.expect("syn_reply");
    }
    // 600 KiB over three streams, none read yet: past half the 1 MiB connection window, within each stream's.
    for (const id of [1, 3, 5]) {
      for (let i = 0; i < 12; i++) {
        await p.peer.send({ type: "data", streamId: id, flags: 0, data: new Uint8Array(16 << 10) });
      }
    }
    assertEquals(await p.peer.expect("window_update"), { type: "window_update", streamId: 0, delta: 512 << 10 });
    // Reading 192 KiB of stream 3 (past half its window) returns those bytes to it.
    const reader = streams[1]!.readable.getReader();
    for (let got = 0; got < 192 << 10;) got += (await reader.read()).value!.length;
    assertEquals(await p.peer.expect("window_update"), { type: "window_update", streamId: 3, delta: 128 << 10 });
    reader.releaseLock();
  });

  await t.step("the peer's SETTINGS window and WINDOW_UPDATE pace what the session sends", async () => {
    const body = pattern(5000);
    await using p = await serverWithPeer({
      onStream: async (s) => {
        await s.reply();
        await s.write(body);
        await s.closeWrite();
      },
    });
    await p.peer.send({
      type: "settings",
      flags: 0,
      entries: [{ flags: 0, id: SettingId.INITIAL_WINDOW_SIZE, value: 1000 }],
    });
    await p.peer.synStream(1, {}, FLAG_FIN);
    await p.peer.expect("syn_reply");
    const first = await p.peer.expect("data");
    assertEquals(first.data, body.subarray(0, 1000));
    // Nothing more until the window reopens; a PING answer proves the session is idle, not slow.
    await p.peer.send({ type: "ping", id: 7 });
    assertEquals(await p.peer.next(), { type: "ping", id: 7 });
    await p.peer.send({ type: "window_update", streamId: 1, delta: 4000 });
    const rest = await p.peer.expect("data");
    assertEquals(rest.data, body.subarray(1000));
    assertEquals(await p.peer.expect("data"), { type: "data", streamId: 1, flags: FLAG_FIN, data: new Uint8Array() });
  });

  await t.step("HEADERS add to a stream's headers", async () => {
    let stream: SpdyStream | undefined;
    await using p = await serverWithPeer({
      onStream: (s) => {
        stream = s;
      },
    });
    await p.peer.synStream(1, { a: "1" });
    await p.peer.send({ type: "headers", streamId: 1, flags: 0, headerBlock: await p.peer.compress({ b: "2" }) });
    await p.peer.send({ type: "ping", id: 9 });
    await p.peer.expect("ping");
    assertEquals({ ...stream!.headers }, { a: "1", b: "2" });
  });

  await t.step("bytes read past the HTTP upgrade are parsed first", async () => {
    const [a, b] = await memoryPair();
    const peer = new RawPeer(b);
    const block = await peer.compress({ streamtype: "error" });
    const syn = encodeFrame({
      type: "syn_stream",
      streamId: 1,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      flags: 0,
      headerBlock: block,
    });
    const seen = Promise.withResolvers<string | undefined>();
    const server = new SpdySession(a, {
      role: "server",
      initialBytes: syn,
      onStream: (s) => {
        seen.resolve(s.headers["streamtype"]);
        return s.reply();
      },
    });
    assertEquals(await seen.promise, "error");
    assertEquals((await peer.expect("syn_reply")).streamId, 1);
    await peer.close();
    await server.close();
  });

  await t.step("a peer hanging up ends open streams and the session", async () => {
    const stream = Promise.withResolvers<SpdyStream>();
    const p = await serverWithPeer({
      onStream: async (s) => {
        await s.reply();
        stream.resolve(s);
      },
    });
    await p.peer.synStream(1, {});
    const s = await stream.promise;
    await p.peer.close();
    await p.server.closed;
    await assertRejects(() => readAll(s.readable), Unavailable, "closed by the peer");
    await s.closed;
  });
});

Deno.test("spdy session close is not held up by a peer that stopped reading", async () => {
  const [a, b] = await tcpPair();
  const writing = Promise.withResolvers<{ done: Promise<void> }>();
  const server = new SpdySession(a, {
    role: "server",
    onStream: async (s) => {
      await s.reply();
      // The peer sent no SETTINGS, so nothing but TCP holds this back: it fills the socket buffers and sticks.
      writing.resolve({ done: s.write(new Uint8Array(64 << 20)) });
    },
  });
  const peer = new RawPeer(b);
  await peer.synStream(1, {});
  const { done: write } = await writing.promise;
  write.catch(() => {});
  await new Promise((r) => setTimeout(r, 100));
  const started = performance.now();
  await server.close();
  const took = performance.now() - started;
  assert(took >= 1900 && took < 5000, `close took ${took} ms`);
  await assertRejects(() => write, Error);
  await peer.close();
});

Deno.test("spdy session ends cleanly on malformed input", async (t) => {
  const bomb = zlib.deflateSync(new Uint8Array(16 << 20));
  const CASES: { name: string; send: (p: RawPeer) => Promise<void>; status?: number }[] = [
    { name: "garbage bytes", send: (p) => p.raw(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) },
    { name: "a control frame of version 2", send: (p) => p.raw(hex("80020006 00000004 00000001")) },
    { name: "a DATA frame of 16 MiB", send: (p) => p.raw(hex("00000001 00ffffff")) },
    { name: "a SYN_STREAM shorter than its fields", send: (p) => p.raw(hex("80030001 00000004 00000001")) },
    {
      name: "a header block that inflates to 16 MiB",
      send: (p) =>
        p.send({
          type: "syn_stream",
          streamId: 1,
          associatedStreamId: 0,
          priority: 0,
          slot: 0,
          flags: 0,
          headerBlock: bomb,
        }),
    },
    {
      name: "a header block that is not zlib",
      send: (p) => p.send({ type: "syn_reply", streamId: 1, flags: 0, headerBlock: hex("0102030405") }),
    },
    { name: "a SYN_STREAM with the server's parity", send: (p) => p.synStream(2, {}) },
    {
      name: "a SYN_STREAM with a lower ID than the last",
      send: async (p) => {
        await p.synStream(5, {});
        await p.synStream(3, {});
      },
    },
  ];
  for (const c of CASES) {
    await t.step(c.name, async () => {
      const streams: SpdyStream[] = [];
      const [a, b] = await memoryPair();
      const server = new SpdySession(a, {
        role: "server",
        onStream: (s) => {
          streams.push(s);
          return s.reply();
        },
      });
      const peer = new RawPeer(b);
      const seen = peer.rest();
      await c.send(peer).catch(() => {}); // the session may hang up mid-send
      await server.closed;
      const frames = await seen;
      const goaway = frames.find((f) => f.type === "goaway");
      assertEquals(goaway?.type === "goaway" && goaway.status, GoAwayStatus.PROTOCOL_ERROR);
      for (const s of streams) {
        await s.closed;
        await assertRejects(() => readAll(s.readable), SpdyProtocolError);
      }
      await assertRejects(() => server.openStream({}), SpdyProtocolError);
      await peer.close();
      await server.close();
      assert(true);
    });
  }
});
