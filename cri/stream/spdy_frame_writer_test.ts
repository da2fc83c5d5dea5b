// Tests for the SPDY frame writer: frames and compressed header blocks reach the wire whole and in order, a peer
// that stops reading is detected, and closing cannot be held up by a write that never completes.
import { ResourceExhausted, Unavailable } from "../../lib/errors.ts";
import { assert, assertEquals, assertRejects } from "../../tests/assert.ts";
import type { SpdyFrame } from "./spdy_frame.ts";
import { SpdyFrameParser } from "./spdy_frame_parser.ts";
import { SpdyFrameWriter } from "./spdy_frame_writer.ts";
import { decodeHeaderBlock, encodeHeaderBlock } from "./spdy_header_block.ts";
import { SpdyHeaderDecompressor } from "./spdy_headers.ts";

function recorder() {
  const chunks: Uint8Array[] = [];
  return { chunks, writable: new WritableStream<Uint8Array>({ write: (c) => void chunks.push(c) }) };
}

Deno.test("spdy frame writer", async (t) => {
  await t.step("frames and header frames go out in call order, header blocks in compression order", async () => {
    const { chunks, writable } = recorder();
    const failures: Error[] = [];
    const w = new SpdyFrameWriter(writable, { onFailure: (e) => failures.push(e) });
    const syn = (streamId: number) => (headerBlock: Uint8Array): SpdyFrame => ({
      type: "syn_stream",
      streamId,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      flags: 0,
      headerBlock,
    });
    await Promise.all([
      w.sendHeaders(syn(1), encodeHeaderBlock({ n: "1" })),
      w.sendHeaders(syn(3), encodeHeaderBlock({ n: "3" })),
      w.send({ type: "ping", id: 1 }),
      w.sendHeaders(syn(5), encodeHeaderBlock({ n: "5" })),
    ]);
    await w.close();
    const frames = new SpdyFrameParser().push(new Uint8Array(chunks.flatMap((c) => [...c])));
    const inflate = new SpdyHeaderDecompressor();
    try {
      const seen: string[] = [];
      for (const f of frames) {
        if (f.type === "syn_stream") seen.push(decodeHeaderBlock(await inflate.decompress(f.headerBlock))["n"]!);
        else seen.push(f.type);
      }
      // The PING was queued before the header blocks finished compressing; the blocks keep their order.
      assertEquals(seen.filter((s) => s !== "ping"), ["1", "3", "5"]);
      assertEquals(seen.length, 4);
    } finally {
      inflate.close();
    }
    assertEquals(failures, []);
    await assertRejects(() => w.send({ type: "ping", id: 3 }), Unavailable, "closed");
  });

  await t.step("a field out of range rejects, without a throw", async () => {
    const { writable } = recorder();
    const w = new SpdyFrameWriter(writable, { onFailure: () => {} });
    await assertRejects(() => w.send({ type: "ping", id: 0 }), Error, "PING ID 0");
    await w.close();
  });

  await t.step("a peer that stops reading fails the writer, and close gives up on it", async () => {
    let hardClosed = false;
    const stuck = Promise.withResolvers<void>();
    const writable = new WritableStream<Uint8Array>({ write: () => stuck.promise });
    const failures: Error[] = [];
    const w = new SpdyFrameWriter(writable, {
      onFailure: (e) => failures.push(e),
      hardClose: () => {
        hardClosed = true;
        stuck.reject(new Error("connection closed"));
      },
      flushMs: 20,
    });
    // Eight 1 MiB frames (plus their headers) pass the 8 MiB bound.
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 8; i++) {
      sends.push(w.send({ type: "data", streamId: 1, flags: 0, data: new Uint8Array(1 << 20) }).catch((e) => e));
    }
    const refused = await sends[7];
    assert(refused instanceof ResourceExhausted && refused.message.includes("not reading"), String(refused));
    assert(failures[0] === refused);
    await w.close();
    assert(hardClosed, "the connection was closed outright");
    await Promise.all(sends);
  });

  await t.step("a failed write fails the writer once", async () => {
    const writable = new WritableStream<Uint8Array>({ write: () => Promise.reject(new Error("EPIPE")) });
    const failures: Error[] = [];
    const w = new SpdyFrameWriter(writable, { onFailure: (e) => failures.push(e) });
    await assertRejects(() => w.send({ type: "ping", id: 1 }), Error, "EPIPE");
    await assertRejects(() => w.send({ type: "ping", id: 3 }), Unavailable, "write failed");
    assertEquals(failures.length, 1);
    await w.close();
  });
});
