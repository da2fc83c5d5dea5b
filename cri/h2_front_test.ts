// Tests of the :authority front: the pure rewriter on hand-built byte streams (every chunking), then the socket
// front between the project's raw HTTP/2 client (and grpc-js's own client) and a real grpc-js server.
import { InvalidArgument, ResourceExhausted, Unavailable } from "../lib/errors.ts";
import { configureLogging } from "../lib/log.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import { ECHO_PATH, echoClient, startEchoServer } from "../tests/grpc_echo_server.ts";
import { RawH2Client, type RawH2Mode, rawUnaryCall } from "../tests/raw_h2_client.ts";
import {
  encodeFrame,
  Flag,
  FRAME_HEADER_LENGTH,
  FrameType,
  headerBlockFrames,
  PREFACE,
  readFrameHeader,
} from "./h2_frame.ts";
import { AuthorityRewriter, isValidAuthority, startAuthorityFront } from "./h2_front.ts";
import { type HeaderField, HpackDecoder, HpackEncoder } from "./hpack.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Uint8Array;
  raw: Uint8Array;
}

function parseFrames(bytes: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const h = readFrameHeader(bytes, pos);
    const end = pos + FRAME_HEADER_LENGTH + h.length;
    frames.push({ ...h, payload: bytes.slice(pos + FRAME_HEADER_LENGTH, end), raw: bytes.slice(pos, end) });
    pos = end;
  }
  return frames;
}

/** Pushes `input` through a rewriter in chunks of the given sizes (cycled) and joins the output. */
function rewrite(rw: AuthorityRewriter, input: Uint8Array, sizes: number[]): Uint8Array {
  const out: Uint8Array[] = [];
  for (let pos = 0, k = 0; pos < input.length; k++) {
    const n = sizes[k % sizes.length]!;
    // A fresh copy per chunk, so that aliasing of the input by the output is caught.
    const chunk = input.slice(pos, pos + n);
    for (const o of rw.push(chunk)) out.push(o.slice());
    chunk.fill(0xee);
    pos += n;
  }
  return concat(out);
}

function request(authority: string, extra: HeaderField[] = []): HeaderField[] {
  return [
    { name: ":method", value: "POST" },
    { name: ":scheme", value: "http" },
    { name: ":path", value: ECHO_PATH },
    { name: ":authority", value: authority },
    { name: "content-type", value: "application/grpc" },
    { name: "user-agent", value: "grpc-go/1.58.3" },
    { name: "te", value: "trailers" },
    ...extra,
  ];
}

const SETTINGS = encodeFrame(FrameType.SETTINGS, 0, 0, new Uint8Array([0, 4, 0, 0, 0xff, 0xff]));
const WINDOW_UPDATE = encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, new Uint8Array([0, 0, 0x10, 0]));
const data = (streamId: number, text: string) =>
  encodeFrame(FrameType.DATA, Flag.END_STREAM, streamId, enc.encode(text));

const CHUNKINGS: [string, number[]][] = [
  ["in one chunk", [1 << 20]],
  ["byte by byte", [1]],
  ["in uneven chunks", [7, 1, 13, 2, 100, 5, 9, 3]],
];

Deno.test("h2 front: isValidAuthority", async (t) => {
  const cases: [string, boolean][] = [
    ["localhost", true],
    ["localhost:10250", true],
    ["[::1]:80", true],
    ["%2Frun%2Fdavit%2Fdavit.sock", true],
    ["a~b_c-d.e!$&'()*+,;=", true],
    ["host:", true],
    ["", false],
    ["/run/davit/davit.sock", false],
    ["unix:///run/davit/davit.sock", false],
    ["user@host", false],
    ["a b", false],
    ["h?x", false],
    ["h#x", false],
    ["%zz", false],
    ["\u00e9", false],
    ["[", false],
    ["host:8a", false],
  ];
  for (const [value, valid] of cases) {
    await t.step(JSON.stringify(value), () => assertEquals(isValidAuthority(value), valid));
  }
});

Deno.test("h2 front: the rewriter re-encodes every header block and passes other frames through", async (t) => {
  interface Case {
    name: string;
    mode: { huffman: "auto" | "always" | "never"; indexing: "none" | "incremental" };
    authorities: string[];
    expected: string[];
    replaced: number;
  }
  const cases: Case[] = [
    {
      name: "grpc-go encoding, raw path, three calls reusing the client's dynamic table",
      mode: { huffman: "auto", indexing: "incremental" },
      authorities: ["/run/davit/davit.sock", "/run/davit/davit.sock", "/run/davit/davit.sock"],
      expected: ["localhost", "localhost", "localhost"],
      replaced: 3,
    },
    {
      name: "Huffman without indexing, valid authorities kept",
      mode: { huffman: "always", indexing: "none" },
      authorities: ["%2Frun%2Fdavit%2Fdavit.sock", "localhost", "unix:/x"],
      expected: ["%2Frun%2Fdavit%2Fdavit.sock", "localhost", "localhost"],
      replaced: 1,
    },
    {
      name: "plain literals",
      mode: { huffman: "never", indexing: "none" },
      authorities: ["/a", "b:1", "[::1]"],
      expected: ["localhost", "b:1", "[::1]"],
      replaced: 1,
    },
  ];
  for (const c of cases) {
    for (const [chunking, sizes] of CHUNKINGS) {
      await t.step(`${c.name}, ${chunking}`, () => {
        const client = new HpackEncoder(c.mode);
        const parts = [PREFACE, SETTINGS, WINDOW_UPDATE];
        c.authorities.forEach((a, k) => {
          parts.push(headerBlockFrames(1 + 2 * k, client.encode(request(a))), data(1 + 2 * k, `message ${k}`));
        });
        const rw = new AuthorityRewriter();
        const out = rewrite(rw, concat(parts), sizes);
        assertEquals(out.subarray(0, PREFACE.length), PREFACE);
        const frames = parseFrames(out.subarray(PREFACE.length));
        assertEquals(frames.map((f) => f.type), [4, 8, 1, 0, 1, 0, 1, 0]);
        assertEquals(frames[0]!.raw, SETTINGS);
        assertEquals(frames[1]!.raw, WINDOW_UPDATE);
        const server = new HpackDecoder();
        c.expected.forEach((a, k) => {
          const h = frames[2 + 2 * k]!;
          assertEquals([h.streamId, h.flags], [1 + 2 * k, Flag.END_HEADERS]);
          assertEquals(server.decode(h.payload).fields, request(a));
          assertEquals(frames[3 + 2 * k]!.raw, data(1 + 2 * k, `message ${k}`));
        });
        assertEquals(server.tableLength, 0, "the server's dynamic table stays empty");
        assertEquals([rw.headerBlocks, rw.authoritiesReplaced], [3, c.replaced]);
      });
    }
  }
});

Deno.test("h2 front: the rewriter handles flags, CONTINUATION, size updates and never-indexed fields", async (t) => {
  const big: HeaderField = { name: "x-big", value: "v".repeat(40_000) };
  const cases: {
    name: string;
    build: (client: HpackEncoder) => Uint8Array;
    check: (frames: Frame[], fields: HeaderField[], block: Uint8Array) => void;
  }[] = [
    {
      name: "PADDED and PRIORITY: padding stripped, priority and END_STREAM kept",
      build: (client) => {
        const block = client.encode(request("/sock"));
        const payload = concat([new Uint8Array([3]), new Uint8Array([0x80, 0, 0, 1, 200]), block, new Uint8Array(3)]);
        const flags = Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS | Flag.END_STREAM;
        return encodeFrame(FrameType.HEADERS, flags, 5, payload);
      },
      check: (frames, fields, block) => {
        assertEquals(frames.length, 1);
        assertEquals(frames[0]!.flags, Flag.PRIORITY | Flag.END_HEADERS | Flag.END_STREAM);
        assertEquals(frames[0]!.payload.subarray(0, 5), new Uint8Array([0x80, 0, 0, 1, 200]));
        assertEquals(block.length, frames[0]!.payload.length - 5);
        assertEquals(fields, request("localhost"));
      },
    },
    {
      name: "a block over 16384 octets arrives in CONTINUATIONs and leaves in frames of at most 16384",
      build: (client) => headerBlockFrames(1, client.encode(request("/sock", [big])), { maxFrameSize: 10_000 }),
      check: (frames, fields) => {
        assertEquals(frames.map((f) => f.type), [FrameType.HEADERS, FrameType.CONTINUATION, FrameType.CONTINUATION]);
        assertEquals(frames.map((f) => f.flags), [0, 0, Flag.END_HEADERS]);
        assert(frames.every((f) => f.payload.length <= 16_384 && f.streamId === 1));
        assertEquals(fields, request("localhost", [big]));
      },
    },
    {
      name: "the client's table size updates are forwarded first",
      build: (client) => {
        client.encode(request("/sock"));
        client.setMaxTableSize(0);
        return headerBlockFrames(1, client.encode(request("/sock")));
      },
      check: (_frames, fields, block) => {
        assertEquals(block[0], 0x20);
        assertEquals(fields, request("localhost"));
      },
    },
    {
      name: "a never-indexed authority stays never-indexed",
      build: (client) => {
        const fields = request("/sock").map((f) => f.name === ":authority" ? { ...f, neverIndex: true } : f);
        return headerBlockFrames(1, client.encode(fields));
      },
      check: (_frames, fields) => {
        assertEquals(fields.find((f) => f.name === ":authority"), {
          name: ":authority",
          value: "localhost",
          neverIndex: true,
        });
      },
    },
  ];
  for (const c of cases) {
    for (const [chunking, sizes] of CHUNKINGS) {
      await t.step(`${c.name}, ${chunking}`, () => {
        const client = new HpackEncoder({ indexing: "incremental" });
        const rw = new AuthorityRewriter();
        // The first block (if the case encodes one itself) is only for the client's table; send the last one.
        const input = concat([PREFACE, c.build(client)]);
        const frames = parseFrames(rewrite(rw, input, sizes).subarray(PREFACE.length));
        const first = frames[0]!;
        const start = first.flags & Flag.PRIORITY ? 5 : 0;
        const block = concat([first.payload.subarray(start), ...frames.slice(1).map((f) => f.payload)]);
        const server = new HpackDecoder();
        c.check(frames, server.decode(block).fields, block);
        assertEquals(server.tableLength, 0);
      });
    }
  }
});

Deno.test("h2 front: the rewriter rejects protocol violations and oversized blocks", async (t) => {
  const client = new HpackEncoder();
  const headers = (flags: number) => encodeFrame(FrameType.HEADERS, flags, 1, client.encode(request("/s")));
  const cases: { name: string; input: Uint8Array; error: typeof InvalidArgument; msg: string }[] = [
    { name: "bad preface", input: enc.encode("GET / HTTP/1.1\r\n\r\n"), error: InvalidArgument, msg: "preface" },
    {
      name: "CONTINUATION without HEADERS",
      input: encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, new Uint8Array([0x82])),
      error: InvalidArgument,
      msg: "outside a header block",
    },
    {
      name: "DATA inside a header block",
      input: concat([headers(0), data(1, "x")]),
      error: InvalidArgument,
      msg: "inside the header block",
    },
    {
      name: "CONTINUATION on another stream",
      input: concat([headers(0), encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 3, new Uint8Array([0x82]))]),
      error: InvalidArgument,
      msg: "outside a header block",
    },
    {
      name: "HEADERS on stream 0",
      input: encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 0, new Uint8Array([0x82])),
      error: InvalidArgument,
      msg: "stream 0",
    },
    {
      name: "PUSH_PROMISE from the client",
      input: encodeFrame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, new Uint8Array(5)),
      error: InvalidArgument,
      msg: "PUSH_PROMISE",
    },
    {
      name: "padding longer than the frame",
      input: encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PADDED, 1, new Uint8Array([9, 0x82])),
      error: InvalidArgument,
      msg: "padding exceeds",
    },
    {
      name: "PRIORITY without room for it",
      input: encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.PRIORITY, 1, new Uint8Array([0, 0, 0])),
      error: InvalidArgument,
      msg: "too short for its priority",
    },
    {
      name: "an HPACK error",
      input: encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, new Uint8Array([0x80])),
      error: InvalidArgument,
      msg: "index 0",
    },
    {
      name: "a header block over the limit, refused before it is buffered",
      input: concat([
        headers(0),
        ...Array.from({ length: 80 }, () => encodeFrame(FrameType.CONTINUATION, 0, 1, new Uint8Array(16_000))),
      ]),
      error: ResourceExhausted,
      msg: "exceeds 1048576 octets",
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const rw = new AuthorityRewriter();
      const input = c.name === "bad preface" ? c.input : concat([PREFACE, c.input]);
      assertThrows(() => rewrite(rw, input, [4096]), c.error, c.msg);
    });
  }
});

/** A temp dir with the echo server on a private socket and the front on a public one. */
async function setup() {
  configureLogging({ level: "error" });
  const dir = await Deno.makeTempDir({ prefix: "davit-front-" });
  const backendPath = `${dir}/grpc.sock`;
  const publicPath = `${dir}/davit.sock`;
  const server = await startEchoServer(backendPath);
  const front = await startAuthorityFront({ publicPath, backendPath });
  return {
    dir,
    backendPath,
    publicPath,
    server,
    front,
    async [Symbol.asyncDispose]() {
      await front.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const call = (socket: string, authority: string, mode: RawH2Mode, text = "hi") =>
  rawUnaryCall(socket, { authority, path: ECHO_PATH, body: enc.encode(text), mode });

Deno.test("h2 front: a raw socket path authority fails against grpc-js and works through the front", async (t) => {
  await using env = await setup();
  const raw = env.publicPath;
  await t.step("directly: the HTTP/2 server refuses the call (the problem the front solves)", async () => {
    await assertRejects(() => call(env.backendPath, env.backendPath, "grpc-go"), Error, "GOAWAY PROTOCOL_ERROR");
  });
  const modes: RawH2Mode[] = ["grpc-go", "huffman", "plain"];
  const authorities = [raw, encodeURIComponent(raw), "localhost"];
  for (const authority of authorities) {
    for (const mode of modes) {
      await t.step(`through the front: ${authority}, ${mode} encoding`, async () => {
        const r = await call(raw, authority, mode, `${mode} ${authority}`);
        assertEquals([r.httpStatus, r.grpcStatus, r.grpcMessage], [200, 0, "OK"]);
        assertEquals(dec.decode(r.body), `echo:${mode} ${authority}`);
      });
    }
  }
  const stats = env.front.stats();
  assertEquals([stats.connections, stats.headerBlocks, stats.authoritiesReplaced], [9, 9, 3]);
});

Deno.test("h2 front: several calls on one connection reuse the client's dynamic table", async () => {
  await using env = await setup();
  await using client = await RawH2Client.connect(env.publicPath, { mode: "grpc-go" });
  for (let k = 0; k < 6; k++) {
    const r = await client.call({ authority: env.publicPath, path: ECHO_PATH, body: enc.encode(`call ${k}`) });
    assertEquals([r.grpcStatus, dec.decode(r.body)], [0, `echo:call ${k}`]);
  }
  const [first, ...rest] = client.sentBlockSizes;
  assert(rest.every((n) => n <= 8 && n < first! / 4), `later blocks are table references: ${client.sentBlockSizes}`);
  assertEquals(env.front.stats().headerBlocks, 6);
  assertEquals(env.front.stats().authoritiesReplaced, 6);
  assertEquals(env.server.calls(), 6);
  // The client hanging up ends the pair: its EOF is passed on to grpc-js, which then closes its side.
  await client.close();
  await until(() => env.front.stats().active === 0);
});

Deno.test("h2 front: grpc-js's own client works through the front, with its default and a raw path authority", async () => {
  await using env = await setup();
  for (const authority of [undefined, env.publicPath]) {
    const c = echoClient(env.publicPath, authority);
    try {
      for (let k = 0; k < 3; k++) assertEquals(dec.decode(await c.call(enc.encode(`x${k}`))), `echo:x${k}`);
    } finally {
      c.close();
    }
  }
  assertEquals(env.front.stats().authoritiesReplaced, 3);
});

Deno.test("h2 front: a malformed frame closes its connection and no other", async () => {
  await using env = await setup();
  await using good = await RawH2Client.connect(env.publicPath);
  const body = enc.encode("before");
  assertEquals((await good.call({ authority: "localhost", path: ECHO_PATH, body })).grpcStatus, 0);
  await using bad = await RawH2Client.connect(env.publicPath);
  await bad.writeRaw(encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, new Uint8Array([0x82])));
  assertStringIncludes((await bad.closed()).message, "connection closed");
  const after = await good.call({ authority: env.publicPath, path: ECHO_PATH, body: enc.encode("after") });
  assertEquals([after.grpcStatus, dec.decode(after.body)], [0, "echo:after"]);
  assertEquals(env.front.stats().protocolErrors, 1);
  await until(() => env.front.stats().active === 1);
  await assertRejects(() => bad.call({ authority: "localhost", path: ECHO_PATH, body }));
});

Deno.test("h2 front: close() and abort end every connection and remove the socket", async (t) => {
  configureLogging({ level: "error" });
  const dir = await Deno.makeTempDir({ prefix: "davit-front-" });
  const backendPath = `${dir}/grpc.sock`;
  await using _server = await startEchoServer(backendPath);
  for (const how of ["close()", "abort signal"]) {
    await t.step(how, async () => {
      const publicPath = `${dir}/davit.sock`;
      const abort = new AbortController();
      const front = await startAuthorityFront({ publicPath, backendPath, signal: abort.signal });
      const idle = await RawH2Client.connect(publicPath);
      const busy = await RawH2Client.connect(publicPath);
      assertEquals((await busy.call({ authority: "/x", path: ECHO_PATH, body: enc.encode("1") })).grpcStatus, 0);
      assertEquals(front.stats().active, 2);
      if (how === "close()") await front.close();
      else {
        abort.abort();
        await front.close(); // the same close, awaited
      }
      // The clients see their connections end (as a close or a reset, depending on unread data).
      assert((await idle.closed()) instanceof Error);
      assert((await busy.closed()) instanceof Error);
      await idle.close();
      await busy.close();
      assertEquals(front.stats().active, 0);
      await assertRejects(() => Deno.lstat(publicPath), Deno.errors.NotFound);
    });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("h2 front: an unreachable backend drops the client, and a taken public path fails to start", async () => {
  configureLogging({ level: "error" });
  const dir = await Deno.makeTempDir({ prefix: "davit-front-" });
  const publicPath = `${dir}/davit.sock`;
  await using front = await startAuthorityFront({ publicPath, backendPath: `${dir}/missing.sock` });
  await assertRejects(() => call(publicPath, "localhost", "plain"));
  await until(() => front.stats().active === 0);
  assertEquals(front.stats().connections, 1);
  await assertRejects(
    () => startAuthorityFront({ publicPath, backendPath: `${dir}/missing.sock` }),
    Unavailable,
    publicPath,
  );
  await front.close();
  await Deno.remove(dir, { recursive: true });
});
