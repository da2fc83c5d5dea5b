// Tests for one SPDY stream against a recording host: the frames reply, write, closeWrite and reset produce, the
// readable's delivery and end, what counts as consumed, and when writes are refused.
import { FailedPrecondition, Unavailable } from "../../lib/errors.ts";
import { assertEquals, assertRejects } from "../../tests/assert.ts";
import { FLAG_FIN, RstStatus, type SpdyFrame } from "./spdy_frame.ts";
import { decodeHeaderBlock } from "./spdy_header_block.ts";
import { SpdyStream, SpdyStreamReset, type StreamHost } from "./spdy_stream.ts";

function setup(opts: { ours?: boolean; maxSendFrameBytes?: number } = {}) {
  const frames: (SpdyFrame | { type: string; streamId: number; flags: number; headers: Record<string, string> })[] = [];
  const consumed: number[] = [];
  let forgotten = 0;
  const host: StreamHost & { failure: Error | undefined } = {
    send: (f) => {
      frames.push(f.type === "data" ? { ...f, data: f.data.slice() } : f);
      return Promise.resolve();
    },
    sendHeaders: (type, streamId, flags, block) => {
      frames.push({ type, streamId, flags, headers: decodeHeaderBlock(block) });
      return Promise.resolve();
    },
    acquireSendWindow: (_s, want) => Promise.resolve(want),
    consumed: (_s, n) => consumed.push(n),
    forget: () => forgotten++,
    failure: undefined,
    maxSendFrameBytes: opts.maxSendFrameBytes ?? 4,
    maxHeaderBytes: 1 << 16,
  };
  const stream = new SpdyStream(host, {
    id: 3,
    ours: opts.ours ?? false,
    headers: { a: "1" },
    priority: 2,
    sendWindow: 65_536,
    receiveWindow: 65_536,
  });
  return { stream, host, frames, consumed, forgotten: () => forgotten };
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("spdy stream", async (t) => {
  await t.step("reply, writes split into frames, then FIN", async () => {
    const { stream, frames } = setup();
    await assertRejects(() => stream.write(bytes("x")), FailedPrecondition, "reply() must come first");
    await stream.reply({ ":status": "200" });
    await assertRejects(() => stream.reply(), FailedPrecondition, "replied");
    await Promise.all([stream.write(bytes("hello")), stream.write(bytes("!"))]);
    await stream.write(new Uint8Array());
    await stream.closeWrite();
    await stream.closeWrite();
    assertEquals(frames, [
      { type: "syn_reply", streamId: 3, flags: 0, headers: { ":status": "200" } },
      { type: "data", streamId: 3, flags: 0, data: bytes("hell") },
      { type: "data", streamId: 3, flags: 0, data: bytes("o") },
      { type: "data", streamId: 3, flags: 0, data: bytes("!") },
      { type: "data", streamId: 3, flags: FLAG_FIN, data: new Uint8Array() },
    ]);
    await assertRejects(() => stream.write(bytes("late")), FailedPrecondition, "this side closed it");
  });

  await t.step("closeWrite before any reply replies with FIN; our own streams cannot be replied to", async () => {
    const { stream, frames } = setup();
    await stream.closeWrite();
    assertEquals(frames, [{ type: "syn_reply", streamId: 3, flags: FLAG_FIN, headers: {} }]);
    await assertRejects(() => setup({ ours: true }).stream.reply(), FailedPrecondition, "this side opened it");
  });

  await t.step("the readable delivers on demand, counts what is read, and closes after FIN", async () => {
    const { stream, consumed, forgotten } = setup();
    stream.receiveData(bytes("ab"));
    stream.receiveData(bytes("cd"));
    assertEquals(consumed, [], "nothing is consumed before it is read");
    assertEquals(stream.queuedBytes, 4);
    const reader = stream.readable.getReader();
    assertEquals(text((await reader.read()).value!), "ab");
    assertEquals(consumed, [2]);
    const pending = reader.read();
    stream.receiveFin();
    assertEquals(text((await pending).value!), "cd");
    assertEquals((await reader.read()).done, true);
    assertEquals(forgotten(), 0, "our half is still open");
    await stream.reply({}, { fin: true });
    await stream.closed;
    assertEquals(forgotten(), 1);
  });

  await t.step("a cancelled readable discards, counting it all as consumed", async () => {
    const { stream, consumed } = setup();
    stream.receiveData(bytes("abc"));
    await stream.readable.cancel();
    stream.receiveData(bytes("de"));
    assertEquals(consumed, [3, 2]);
    assertEquals(stream.queuedBytes, 0);
  });

  await t.step("reset sends RST_STREAM once and fails reads and writes", async () => {
    const { stream, frames } = setup();
    await stream.reply();
    stream.receiveData(bytes("lost"));
    stream.reset();
    stream.reset(RstStatus.INTERNAL_ERROR);
    assertEquals(frames.slice(1), [{ type: "rst_stream", streamId: 3, status: RstStatus.CANCEL }]);
    await assertRejects(() => stream.readable.getReader().read(), SpdyStreamReset, "by this side (CANCEL)");
    await assertRejects(() => stream.write(bytes("x")), SpdyStreamReset);
    await stream.closeWrite(); // nothing to do, and no error
    await stream.closed;
  });

  await t.step("the peer's reset ends a waiting reader", async () => {
    const { stream } = setup();
    const read = stream.readable.getReader().read();
    stream.receiveReset(RstStatus.REFUSED_STREAM);
    const err = await assertRejects(() => read, SpdyStreamReset, "by the peer (REFUSED_STREAM)");
    assertEquals((err as SpdyStreamReset).byPeer, true);
  });

  await t.step("the session's end keeps data the peer finished sending", async () => {
    const { stream } = setup();
    stream.receiveData(bytes("done"));
    stream.receiveFin();
    stream.end(new Unavailable("session closed"), { keepData: true });
    const reader = stream.readable.getReader();
    assertEquals(text((await reader.read()).value!), "done");
    assertEquals((await reader.read()).done, true);

    const cut = setup().stream;
    cut.receiveData(bytes("partial"));
    cut.end(new Unavailable("session closed"), { keepData: true });
    await assertRejects(() => cut.readable.getReader().read(), Unavailable, "session closed");
  });

  await t.step("headers from HEADERS frames are added as own properties", () => {
    const { stream } = setup();
    stream.addHeaders(JSON.parse('{"b":"2","__proto__":"x"}'));
    assertEquals(Object.keys(stream.headers), ["a", "b", "__proto__"]);
    assertEquals(Object.getPrototypeOf(stream.headers), Object.prototype);
    assertEquals(stream.priority, 2);
  });
});
