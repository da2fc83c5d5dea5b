// Tests of the attach hub with recording sessions and an in-memory stdin: fan-out by stream, EXIT last, and the
// stdin rules with and without stdin_once.
import { assert, assertEquals } from "../tests/assert.ts";
import { logger } from "../lib/log.ts";
import { FrameDecoder, FrameKind, MONITOR_FRAME_KINDS } from "./attach_frame.ts";
import type { ExitRecord } from "./exit_file.ts";
import { type AttachSink, StdioHub } from "./stdio_hub.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const log = logger("stdio_hub_test");
const EXIT: ExitRecord = {
  container_id: "c",
  exit_code: 0,
  finished_at: "2026-11-22T15:00:00.000000000Z",
  reason: "Completed",
  oom_killed: false,
};

class Sink implements AttachSink {
  readonly frames: string[] = [];
  finished = false;
  constructor(readonly stdin: boolean, readonly stdout: boolean, readonly stderr: boolean) {}
  send(frame: Uint8Array): void {
    for (const f of new FrameDecoder(MONITOR_FRAME_KINDS).push(frame)) {
      this.frames.push(`${f.kind}:${dec.decode(f.payload)}`);
    }
  }
  finish(frame: Uint8Array): void {
    assertEquals(frame[0], FrameKind.EXIT);
    this.frames.push("exit");
    this.finished = true;
  }
}

/** A stdin pipe that records writes and whether it was closed. */
function fakeStdin(): { writer: WritableStreamDefaultWriter<Uint8Array>; written: string[]; closed: () => boolean } {
  const written: string[] = [];
  let closed = false;
  const stream = new WritableStream<Uint8Array>({
    write: (chunk) => void written.push(dec.decode(chunk)),
    close: () => void (closed = true),
  });
  return { writer: stream.getWriter(), written, closed: () => closed };
}

Deno.test("StdioHub output", async (t) => {
  await t.step("each session gets the streams it asked for, EXIT last, nothing after", () => {
    const hub = new StdioHub({ containerId: "c", log });
    const both = new Sink(false, true, true);
    const out = new Sink(false, true, false);
    const err = new Sink(false, false, true);
    for (const s of [both, out, err]) hub.add(s);
    hub.output("stdout", enc.encode("a"));
    hub.output("stderr", enc.encode("b"));
    hub.exit(EXIT);
    hub.output("stdout", enc.encode("late"));
    assertEquals(both.frames, ["1:a", "2:b", "exit"]);
    assertEquals(out.frames, ["1:a", "exit"]);
    assertEquals(err.frames, ["2:b", "exit"]);
    assertEquals(hub.size, 0);
  });
  await t.step("a removed session gets nothing more; one added after the exit gets EXIT at once", () => {
    const hub = new StdioHub({ containerId: "c", log });
    const s = new Sink(false, true, false);
    hub.add(s);
    hub.remove(s);
    hub.output("stdout", enc.encode("x"));
    assertEquals(s.frames, []);
    hub.exit(EXIT);
    const late = new Sink(false, true, false);
    hub.add(late);
    assertEquals(late.frames, ["exit"]);
  });
  await t.step("resizes reach a terminal and are ignored for pipes", () => {
    const sizes: string[] = [];
    new StdioHub({ containerId: "c", log, resize: (s) => void sizes.push(`${s.cols}x${s.rows}`) }).resize({
      cols: 80,
      rows: 24,
    });
    new StdioHub({ containerId: "c", log }).resize({ cols: 1, rows: 1 });
    assertEquals(sizes, ["80x24"]);
  });
});

Deno.test("StdioHub stdin", async (t) => {
  await t.step("stdin_once: the first stdin session's end closes stdin for everyone", async () => {
    const pipe = fakeStdin();
    const hub = new StdioHub({ containerId: "c", log, stdin: pipe.writer, stdinOnce: true });
    const first = new Sink(true, true, false);
    const second = new Sink(true, true, false);
    hub.add(first);
    hub.add(second);
    await hub.writeStdin(first, enc.encode("1"));
    await hub.writeStdin(second, enc.encode("2"));
    hub.endStdin(second); // not the first: stdin stays open
    assert(hub.stdinOpen);
    await hub.writeStdin(first, enc.encode("3"));
    hub.endStdin(first);
    assert(!hub.stdinOpen);
    await hub.writeStdin(first, enc.encode("dropped"));
    const third = new Sink(true, true, false);
    hub.add(third);
    await hub.writeStdin(third, enc.encode("dropped too"));
    await new Promise((r) => setTimeout(r, 0));
    assertEquals(pipe.written, ["1", "2", "3"]);
    assert(pipe.closed());
  });
  await t.step("stdin_once: the first stdin session going away counts as its end", async () => {
    const pipe = fakeStdin();
    const hub = new StdioHub({ containerId: "c", log, stdin: pipe.writer, stdinOnce: true });
    const outOnly = new Sink(false, true, false);
    hub.add(outOnly);
    hub.remove(outOnly); // no stdin: not the one that counts
    assert(hub.stdinOpen);
    const s = new Sink(true, false, false);
    hub.add(s);
    hub.remove(s);
    assert(!hub.stdinOpen);
    await new Promise((r) => setTimeout(r, 0));
    assert(pipe.closed());
  });
  await t.step("without stdin_once, stdin outlives every session", async () => {
    const pipe = fakeStdin();
    const hub = new StdioHub({ containerId: "c", log, stdin: pipe.writer });
    const a = new Sink(true, true, false);
    hub.add(a);
    await hub.writeStdin(a, enc.encode("a"));
    hub.endStdin(a);
    await hub.writeStdin(a, enc.encode("after its own end: dropped"));
    hub.remove(a);
    const b = new Sink(true, true, false);
    hub.add(b);
    await hub.writeStdin(b, enc.encode("b"));
    hub.remove(b);
    assert(hub.stdinOpen);
    assertEquals(pipe.written, ["a", "b"]);
    hub.exit(EXIT);
    assert(!hub.stdinOpen);
    await new Promise((r) => setTimeout(r, 0));
    assert(pipe.closed());
  });
  await t.step("a failing pipe closes stdin, and writes never reject", async () => {
    const stream = new WritableStream<Uint8Array>({
      write: () => {
        throw new Error("EPIPE");
      },
    });
    const hub = new StdioHub({ containerId: "c", log, stdin: stream.getWriter() });
    const s = new Sink(true, false, false);
    hub.add(s);
    await hub.writeStdin(s, enc.encode("x"));
    assert(!hub.stdinOpen);
    await hub.writeStdin(s, enc.encode("y"));
  });
});
