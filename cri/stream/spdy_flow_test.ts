// Table tests for SPDY/3.1 flow control: which mode the peer's first frame selects, the connection header, how
// DATA, reads, SETTINGS and WINDOW_UPDATE move the windows, and writers waiting for a window to open.
import { assert, assertEquals, assertThrows } from "../../tests/assert.ts";
import { FlowControl } from "./spdy_flow.ts";
import { type SpdyFrame, SpdyProtocolError } from "./spdy_frame.ts";
import type { SpdyStream } from "./spdy_stream.ts";

// The fields of a stream that flow control reads and writes.
function fakeStream(id: number, sendWindow = 65_536, receiveWindow = 65_536) {
  return {
    id,
    sendWindow,
    receiveWindow,
    unacked: 0,
    remoteFin: false,
    terminated: false,
    queuedBytes: 0,
    writeError: (): Error | undefined => undefined,
    drained: () => Promise.resolve(),
  } as unknown as SpdyStream;
}

function flow(opts: { window?: number; enabled?: boolean } = {}) {
  const sent: SpdyFrame[] = [];
  const f = new FlowControl({
    window: opts.window ?? 65_536,
    enabled: opts.enabled ?? true,
    send: (x) => sent.push(x),
  });
  return { f, sent };
}

const SETTINGS: SpdyFrame = { type: "settings", flags: 0, entries: [] };
const PING: SpdyFrame = { type: "ping", id: 1 };

Deno.test("spdy flow control", async (t) => {
  await t.step("the connection header announces the stream window and grows the connection window", () => {
    assertEquals(flow({ window: 256 << 10 }).f.connectionHeader(), [
      { type: "settings", flags: 0, entries: [{ flags: 0, id: 7, value: 256 << 10 }] },
      { type: "window_update", streamId: 0, delta: (1 << 20) - 65_536 },
    ]);
    assertEquals(flow({ enabled: false }).f.connectionHeader(), []);
    assertThrows(() => flow({ window: 10 }), RangeError, "outside 1024");
  });

  await t.step("a peer opening with SETTINGS keeps windows: overruns are caught, reads reopen them", () => {
    const { f, sent } = flow({ window: 65_536 });
    f.observe(SETTINGS);
    f.observe(PING); // only the first frame decides
    const s = fakeStream(1);
    assert(f.receiveOnStream(s, 65_536));
    assert(!f.receiveOnStream(s, 1), "one byte past the window");
    const r = fakeStream(3);
    assert(f.receiveOnStream(r, 40_000));
    f.consumed(r, 30_000);
    assertEquals(sent, []);
    f.consumed(r, 3_000);
    assertEquals(sent, [{ type: "window_update", streamId: 3, delta: 33_000 }]);
    assertEquals(r.receiveWindow, 65_536 - 40_000 + 33_000);
  });

  await t.step("the connection window reopens on arrival and refuses an overrun", () => {
    const { f, sent } = flow({ window: 65_536 });
    f.observe({ type: "window_update", streamId: 0, delta: 1 });
    f.receiveOnConnection(300_000);
    assertEquals(sent, []);
    f.receiveOnConnection(300_000);
    assertEquals(sent, [{ type: "window_update", streamId: 0, delta: 600_000 }]);
    assertThrows(() => f.receiveOnConnection(1 << 21), SpdyProtocolError, "connection window");
  });

  await t.step("a peer opening with anything else gets back-pressure and no windows", async () => {
    const { f, sent } = flow();
    f.observe({
      type: "syn_stream",
      streamId: 1,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      flags: 0,
      headerBlock: new Uint8Array(),
    });
    const s = fakeStream(1, 0);
    assert(f.receiveOnStream(s, 10 << 20));
    f.receiveOnConnection(10 << 20);
    f.consumed(s, 10 << 20);
    f.settings([{ flags: 0, id: 7, value: 1 }], [s]);
    assertEquals(sent, []);
    assertEquals(await f.acquire(s, 5000), 5000, "a zero window does not hold the writer");
  });

  await t.step("SETTINGS moves open streams' windows by the change, even below zero", () => {
    const { f } = flow();
    f.observe(SETTINGS);
    const a = fakeStream(1, 60_000);
    const b = fakeStream(3, 1_000);
    f.settings([{ flags: 0, id: 7, value: 16_384 }, { flags: 0, id: 7, value: 999 }], [a, b]);
    assertEquals(f.peerInitialWindow, 16_384);
    assertEquals([a.sendWindow, b.sendWindow], [60_000 - 49_152, 1_000 - 49_152]);
    assertThrows(() => f.settings([{ flags: 0, id: 7, value: 2 ** 31 }], []), SpdyProtocolError, "2^31-1");
  });

  await t.step("a writer waits for both windows and WINDOW_UPDATE releases it", async () => {
    const { f } = flow();
    f.observe(SETTINGS);
    const s = fakeStream(1, 10_000);
    assertEquals(await f.acquire(s, 16_384), 10_000);
    let got: number | undefined;
    const waiting = f.acquire(s, 16_384).then((n) => got = n);
    await new Promise((r) => setTimeout(r, 5));
    assertEquals(got, undefined);
    assert(f.windowUpdate(s, 4_000));
    await waiting;
    assertEquals(got, 4_000);
    // The connection window (64 KiB at the start) holds writers too.
    const other = fakeStream(3, 1 << 20);
    assertEquals(await f.acquire(other, 1 << 20), 65_536 - 14_000);
    assert(f.windowUpdate(null, 100));
    assertEquals(await f.acquire(other, 1 << 20), 100);
  });

  await t.step("WINDOW_UPDATE past 2^31-1 is a stream error, or a session error for the connection", () => {
    const { f } = flow();
    f.observe(SETTINGS);
    assert(!f.windowUpdate(fakeStream(1, 2 ** 31 - 10), 20));
    assertThrows(() => f.windowUpdate(null, 2 ** 31 - 1), SpdyProtocolError, "connection window");
  });

  await t.step("a writer whose stream failed stops waiting", async () => {
    const { f } = flow();
    f.observe(SETTINGS);
    const s = fakeStream(1, 0);
    const state: { failure?: Error } = {};
    (s as unknown as { writeError: () => Error | undefined }).writeError = () => state.failure;
    const waiting = f.acquire(s, 10).catch((err: Error) => err.message);
    state.failure = new Error("stream reset");
    f.wake();
    assertEquals(await waiting, "stream reset");
  });
});
