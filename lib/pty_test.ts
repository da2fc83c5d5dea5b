// Tests for Pty over a pseudoterminal opened here: output, input with backpressure, resize, EIO as the end, close.
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { ioctl, POLL, pollAsync, readNonBlocking, setNonBlocking, writeAll } from "./libc.ts";
import { getWindowSize, openPty, type PtyPair } from "./pty.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Clears ICANON and ECHO (struct termios c_lflag at offset 12; TCGETS 0x5401, TCSETS 0x5402). */
function makeRaw(fd: number): void {
  const t = new Uint8Array(60);
  ioctl(fd, 0x5401, t);
  const v = new DataView(t.buffer);
  v.setUint32(12, v.getUint32(12, true) & ~(0x2 | 0x8), true);
  ioctl(fd, 0x5402, t);
}

/** Reads the non-blocking slave until `want` bytes arrived (or 5 s passed). */
async function readSlave(fd: number, want: number): Promise<Uint8Array> {
  const out = new Uint8Array(want);
  const buf = new Uint8Array(65536);
  let got = 0;
  const deadline = Date.now() + 5000;
  while (got < want && Date.now() < deadline) {
    const n = readNonBlocking(fd, buf);
    if (n === undefined) {
      await pollAsync([{ fd, events: POLL.IN }], 100);
      continue;
    }
    out.set(buf.subarray(0, Math.min(n, want - got)), got);
    got += n;
  }
  return out.subarray(0, got);
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let s = "";
  for await (const chunk of stream) s += decoder.decode(chunk, { stream: true });
  return s;
}

async function withPty(fn: (p: PtyPair) => Promise<void>): Promise<void> {
  const pair = openPty();
  try {
    await fn(pair);
  } finally {
    pair.slave.close();
    await pair.master.close();
  }
}

Deno.test("Pty", async (t) => {
  await t.step("what the slave writes comes out of the readable, which ends (EIO) when the slave closes", async () => {
    await withPty(async ({ master, slave, slavePath }) => {
      assert(/^\/dev\/pts\/\d+$/.test(slavePath), slavePath);
      assertEquals(master.name, slavePath);
      const reading = readAll(master.readable);
      writeAll(slave.fd, encoder.encode("hello\nworld\n"));
      slave.close();
      // ONLCR (on by default) turns each newline into CR LF on the way out.
      assertEquals(await reading, "hello\r\nworld\r\n");
    });
  });

  await t.step("write reaches the slave's reader, in order, through a full buffer", async () => {
    await withPty(async ({ master, slave }) => {
      makeRaw(slave.fd);
      setNonBlocking(slave.fd);
      // Far more than a pty buffers, so the master's writes run into EAGAIN and wait for the reader.
      const data = new Uint8Array(1 << 20);
      for (let i = 0; i < data.length; i++) data[i] = 32 + (i % 90);
      const writing = Promise.all([master.write(data.subarray(0, 300_000)), master.write(data.subarray(300_000))]);
      const got = await readSlave(slave.fd, data.length);
      await writing;
      assertEquals(got.length, data.length);
      assert(got.every((b, i) => b === data[i]), "bytes differ");
    });
  });

  await t.step("resize: the slave sees the size", async () => {
    await withPty(async ({ master, slave }) => {
      master.resize(132, 43);
      assertEquals(getWindowSize(slave.fd), { cols: 132, rows: 43 });
      assertEquals(master.size(), { cols: 132, rows: 43 });
      master.resize(80, 24);
      assertEquals(getWindowSize(slave.fd), { cols: 80, rows: 24 });
      assertThrows(() => master.resize(-1, 24), RangeError);
      assertThrows(() => master.resize(80, 70000), RangeError);
      await Promise.resolve();
    });
  });

  await t.step("openPty sets an initial size", async () => {
    const pair = openPty({ size: { cols: 100, rows: 30 } });
    try {
      assertEquals(getWindowSize(pair.slave.fd), { cols: 100, rows: 30 });
    } finally {
      pair.slave.close();
      await pair.master.close();
    }
  });

  await t.step("close ends a waiting read, fails later writes and resizes, and is idempotent", async () => {
    const { master, slave } = openPty();
    try {
      const reader = master.readable.getReader();
      const pending = reader.read();
      await new Promise((r) => setTimeout(r, 50)); // the read is now waiting in poll
      await master.close();
      assertEquals((await pending).done, true);
      reader.releaseLock();
      await assertRejects(() => master.write(encoder.encode("x")), Deno.errors.BadResource);
      assertThrows(() => master.resize(80, 24), Deno.errors.BadResource);
      assertEquals(master.fd, -1);
      await master.close();
    } finally {
      slave.close();
    }
  });

  await t.step("cancelling the readable while a read waits leaves nothing in flight", async () => {
    await withPty(async ({ master }) => {
      const reader = master.readable.getReader();
      const pending = reader.read();
      await new Promise((r) => setTimeout(r, 20));
      await reader.cancel();
      assertEquals((await pending).done, true);
    });
  });

  await t.step("a write waiting on a full buffer fails when the pty closes", async () => {
    await withPty(async ({ master, slave }) => {
      makeRaw(slave.fd);
      const big = master.write(new Uint8Array(1 << 20));
      await new Promise((r) => setTimeout(r, 50));
      const closing = master.close();
      await assertRejects(() => big, Deno.errors.BadResource);
      await closing;
    });
  });
});
