// Tests of the streaming server's HTTP/1.1 edge: request heads split at every byte, every refusal with its
// status, response writing, and the hand-over of a real TCP connection after the head.
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import {
  continueReadable,
  encodeResponseHead,
  HttpError,
  readRequest,
  readRequestHead,
  readResponseHead,
  writeResponse,
  writeSwitchingProtocols,
} from "./http1.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function bytes(x: string | Uint8Array): Uint8Array {
  return typeof x === "string" ? enc.encode(x) : x;
}

/** A reader over `chunks`; it ends after them unless `hang`, then it never yields again. */
function readerOf(chunks: (string | Uint8Array)[], hang = false): ReadableStreamDefaultReader<Uint8Array> {
  const queue = chunks.map(bytes);
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = queue.shift();
      if (next) controller.enqueue(next);
      else if (!hang) controller.close();
      else return new Promise(() => {});
    },
  }, { highWaterMark: 0 }).getReader();
}

async function status(chunks: (string | Uint8Array)[], options = {}): Promise<number> {
  const err = await assertRejects(() => readRequestHead(readerOf(chunks), options), HttpError);
  return (err as HttpError).status;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let out = "";
  for await (const chunk of stream) out += dec.decode(chunk, { stream: true });
  return out;
}

const GET = "GET /exec/abc?command=sh&tty=1 HTTP/1.1\r\nHost: 127.0.0.1:10010\r\nUpgrade: websocket\r\n" +
  "X-Dup: a\r\nX-Dup: b\r\n\r\n";

Deno.test("http1: parsing request heads", async (t) => {
  await t.step("a head split at every byte gives the same request and the rest", async () => {
    const all = enc.encode(GET + "\x81\x05hello");
    for (let i = 1; i < all.length; i++) {
      const reader = readerOf([all.slice(0, i), all.slice(i)]);
      const head = await readRequestHead(reader);
      assertEquals(head.method, "GET");
      assertEquals(head.target, "/exec/abc?command=sh&tty=1");
      assertEquals(head.url.pathname, "/exec/abc");
      assertEquals(head.url.searchParams.get("command"), "sh");
      assertEquals(head.version, "HTTP/1.1");
      assertEquals(head.headers.get("upgrade"), "websocket");
      assertEquals(head.headers.get("x-dup"), "a, b");
      // `rest` is what the last read brought past the head; the reader has the remainder.
      assertEquals(await readAll(continueReadable(head.rest, reader)), "\x81\x05hello");
    }
  });

  await t.step("one byte at a time", async () => {
    const head = await readRequestHead(readerOf([...enc.encode(GET)].map((b) => new Uint8Array([b]))));
    assertEquals(head.headers.get("host"), "127.0.0.1:10010");
    assertEquals(head.rest.length, 0);
  });

  await t.step("bare LF line ends, leading empty lines, padded values, HTTP/1.0 without Host", async () => {
    const head = await readRequestHead(readerOf(["\r\n\nPOST /x HTTP/1.0\nA:  spaced \t\n\n"]));
    assertEquals([head.method, head.version, head.headers.get("a")], ["POST", "HTTP/1.0", "spaced"]);
  });

  await t.step("absolute-form targets count by path and query", async () => {
    const head = await readRequestHead(readerOf(["GET http://node:10010/attach/t?x=1 HTTP/1.1\r\nHost: n\r\n\r\n"]));
    assertEquals(head.url.href, "http://localhost/attach/t?x=1");
  });

  await t.step("obs-text bytes in values survive as latin-1", async () => {
    const raw = new Uint8Array([...enc.encode("GET / HTTP/1.1\r\nHost: h\r\nX: a"), 0xe9, ...enc.encode("\r\n\r\n")]);
    const head = await readRequestHead(readerOf([raw]));
    assertEquals(head.headers.get("x"), "a\u00e9");
  });

  await t.step("response heads", async () => {
    const res = await readResponseHead(readerOf(["HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"]));
    assertEquals([res.status, res.reason, res.headers.get("content-length"), dec.decode(res.rest)], [
      403,
      "Forbidden",
      "2",
      "no",
    ]);
    assertEquals((await readResponseHead(readerOf(["HTTP/1.1 101\r\n\r\n"]))).status, 101);
    await assertRejects(() => readResponseHead(readerOf(["HTTP/1.1 1000 x\r\n\r\n"])), HttpError);
  });
});

Deno.test("http1: refusals", async (t) => {
  const cases: [string, (string | Uint8Array)[], number, object?][] = [
    ["two-part request line", ["GET /\r\nHost: h\r\n\r\n"], 400],
    ["double space in the request line", ["GET  / HTTP/1.1\r\nHost: h\r\n\r\n"], 400],
    ["method that is not a token", ["G(T / HTTP/1.1\r\nHost: h\r\n\r\n"], 400],
    ["malformed version", ["GET / HTTP/1\r\nHost: h\r\n\r\n"], 400],
    ["lower-case version", ["GET / http/1.1\r\nHost: h\r\n\r\n"], 400],
    ["HTTP/2.0", ["GET / HTTP/2.0\r\nHost: h\r\n\r\n"], 505],
    ["HTTP/0.9", ["GET / HTTP/0.9\r\n\r\n"], 505],
    ["asterisk target", ["OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"], 400],
    ["control byte in the target", ["GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n"], 400],
    ["no Host in 1.1", ["GET / HTTP/1.1\r\nA: b\r\n\r\n"], 400],
    ["two Host fields", ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"], 400],
    ["space before the colon", ["GET / HTTP/1.1\r\nHost : h\r\n\r\n"], 400],
    ["no colon", ["GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n"], 400],
    ["empty name", ["GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n"], 400],
    ["folded line", ["GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n  c\r\n\r\n"], 400],
    ["NUL in a value", ["GET / HTTP/1.1\r\nHost: h\r\nA: b\x00c\r\n\r\n"], 400],
    ["bare CR in a value", ["GET / HTTP/1.1\r\nHost: h\r\nA: b\rc\r\n\r\n"], 400],
    ["both framing headers", ["GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n"], 400],
    ["closed before the end", ["GET / HTTP/1.1\r\nHost: h\r\n"], 400],
    ["closed before anything", [], 400],
    ["head past the cap without an end", ["GET /" + "a".repeat(200)], 431, { maxHeadBytes: 100 }],
    ["head past the cap with its end", ["GET /" + "a".repeat(200) + " HTTP/1.1\r\nHost: h\r\n\r\n"], 431, {
      maxHeadBytes: 100,
    }],
    ["too many fields", ["GET / HTTP/1.1\r\nHost: h\r\n" + "A: b\r\n".repeat(5) + "\r\n"], 431, { maxHeaders: 5 }],
  ];
  for (const [name, chunks, want, options] of cases) {
    await t.step(`${name}: ${want}`, async () => assertEquals(await status(chunks, options), want));
  }

  await t.step("the default cap is 16 KiB", async () => {
    const big = "GET / HTTP/1.1\r\nHost: h\r\nA: " + "x".repeat(16 * 1024) + "\r\n\r\n";
    assertEquals(await status([big]), 431);
    const fits = "GET / HTTP/1.1\r\nHost: h\r\nA: " + "x".repeat(15 * 1024) + "\r\n\r\n";
    assertEquals((await readRequestHead(readerOf([fits]))).headers.get("a")?.length, 15 * 1024);
  });

  await t.step("a head that does not finish in time is a 408", async () => {
    const started = Date.now();
    const err = await assertRejects(
      () => readRequestHead(readerOf(["GET / HTTP/1.1\r\n"], true), { timeoutMs: 50 }),
      HttpError,
    );
    assertEquals((err as HttpError).status, 408);
    assert(Date.now() - started < 1000);
  });

  await t.step("an abort gives up with a 503", async () => {
    const ac = new AbortController();
    const p = readRequestHead(readerOf([], true), { signal: ac.signal });
    ac.abort();
    assertEquals(((await assertRejects(() => p, HttpError)) as HttpError).status, 503);
    const err = await assertRejects(() => readRequestHead(readerOf([], true), { signal: ac.signal }), HttpError);
    assertEquals((err as HttpError).status, 503);
  });
});

Deno.test("http1: writing responses", async (t) => {
  async function written(fn: (w: WritableStream<Uint8Array>) => Promise<void>): Promise<string> {
    const parts: Uint8Array[] = [];
    const w = new WritableStream<Uint8Array>({ write: (c) => void parts.push(c) });
    await fn(w);
    return parts.map((p) => dec.decode(p)).join("");
  }

  await t.step("a plain answer has Content-Length and Connection: close", async () => {
    const text = await written((w) => writeResponse(w, 404, { headers: { "x-a": "1" }, body: "no such session\n" }));
    assertEquals(
      text,
      "HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 16\r\ncontent-type: text/plain; charset=utf-8\r\n" +
        "x-a: 1\r\n\r\nno such session\n",
    );
  });

  await t.step("an empty body, a writer instead of a stream, an unknown status", async () => {
    const text = await written(async (w) => {
      const writer = w.getWriter();
      await writeResponse(writer, 299);
      writer.releaseLock();
    });
    assertEquals(text, "HTTP/1.1 299 Unknown\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
  });

  await t.step("101 carries Connection: Upgrade and needs an Upgrade header", async () => {
    const text = await written((w) => writeSwitchingProtocols(w, { upgrade: "SPDY/3.1" }));
    assertEquals(text, "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: SPDY/3.1\r\n\r\n");
    await assertRejects(() => written((w) => writeSwitchingProtocols(w, {})), TypeError);
  });

  await t.step("header values cannot split the head", () => {
    let threw = false;
    try {
      encodeResponseHead(200, new Headers({ a: "b\r\nc: d" }));
    } catch {
      threw = true;
    }
    assert(threw);
  });
});

Deno.test("http1: continueReadable yields the rest, then the stream, and cancels through", async () => {
  const reader = readerOf(["two", "three"]);
  assertEquals(await readAll(continueReadable(enc.encode("one"), reader)), "onetwothree");
  let cancelled: unknown;
  const inner = new ReadableStream<Uint8Array>({ cancel: (r) => void (cancelled = r) }).getReader();
  await continueReadable(new Uint8Array(), inner).cancel("bye");
  assertEquals(cancelled, "bye");
});

Deno.test("http1: over real TCP", async (t) => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;

  await t.step("the connection continues after the head, and a reply reaches the client", async () => {
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    using server = await listener.accept();
    const cw = client.writable.getWriter();
    await cw.write(enc.encode("GET /portforward/t HTTP/1.1\r\nHost: x\r\n\r\nfirst"));
    const req = await readRequest(server);
    assertEquals(req.url.pathname, "/portforward/t");
    const r = req.conn.readable.getReader();
    assertEquals(dec.decode((await r.read()).value), "first");
    await cw.write(enc.encode("second"));
    assertEquals(dec.decode((await r.read()).value), "second");
    await writeResponse(req.conn.writable, 200, { body: "ok" });
    cw.releaseLock();
    await client.closeWrite();
    assertEquals((await r.read()).done, true);
    assertStringIncludes(await readAll(client.readable), "HTTP/1.1 200 OK");
  });

  await t.step("a slow client is cut off at the deadline and can still be answered", async () => {
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    const server = await listener.accept();
    const cw = client.writable.getWriter();
    await cw.write(enc.encode("GET / HTTP/1.1\r\n"));
    const err = await assertRejects(() => readRequest(server, { timeoutMs: 100 }), HttpError);
    assertEquals((err as HttpError).status, 408);
    await writeResponse(server.writable, 408, { body: err.message });
    server.close();
    cw.releaseLock();
    assertStringIncludes(await readAll(client.readable), "408 Request Timeout");
  });
});
