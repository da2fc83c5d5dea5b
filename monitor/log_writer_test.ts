// Tests of the CRI log writer on real temporary files: appending, the size limit, reopening after a rename.
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { joinCriLog, parseCriLogLine } from "./log_format.ts";
import { LogWriter, pumpStream } from "./log_writer.ts";

const enc = new TextEncoder();
const FIXED = 1_795_356_485_123_456_789n;
const TS = "2026-11-22T14:08:05.123456789Z";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks.map((c) => enc.encode(c)));
}

Deno.test("LogWriter", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-logw-" });
  try {
    await t.step("appends records to an existing file, mode 0600 when created", async () => {
      const path = `${dir}/a.log`;
      using w = LogWriter.open(path, { now: () => FIXED });
      w.write("stdout", [{ tag: "F", content: enc.encode("one") }]);
      await pumpStream(streamOf(["two\nthr", "ee\nfour"]), { name: "stderr", writer: w });
      assertEquals(
        await Deno.readTextFile(path),
        [
          `${TS} stdout F one`,
          `${TS} stderr F two`,
          `${TS} stderr F three`,
          `${TS} stderr F four`,
          "",
        ].join("\n"),
      );
      assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
      assertEquals(w.size, (await Deno.stat(path)).size);
      w.close();
      using again = LogWriter.open(path, { now: () => FIXED });
      again.write("stdout", [{ tag: "F", content: enc.encode("five") }]);
      assertEquals((await Deno.readTextFile(path)).split("\n").length, 6);
    });

    await t.step("cuts long lines into P parts", async () => {
      const path = `${dir}/long.log`;
      using w = LogWriter.open(path);
      assertEquals(w.maxLine, 16384);
      const line = "a".repeat(16384 * 2 + 10);
      await pumpStream(streamOf([line.slice(0, 5000), line.slice(5000) + "\n"]), { name: "stdout", writer: w });
      const recs = (await Deno.readTextFile(path)).trimEnd().split("\n").map(parseCriLogLine);
      assertEquals(recs.map((r) => [r.tag, r.content.length]), [["P", 16384], ["P", 16384], ["F", 10]]);
      assertEquals(joinCriLog(await Deno.readTextFile(path)), [{ stream: "stdout", line }]);
    });

    await t.step("truncates instead of passing log_size_max", async () => {
      const path = `${dir}/capped.log`;
      using w = LogWriter.open(path, { maxSize: 8192, now: () => FIXED });
      assertEquals(w.maxLine, 8192 - 64);
      const recordBytes = `${TS} stdout F `.length + 100 + 1;
      let max = 0;
      for (let i = 0; i < 200; i++) {
        w.write("stdout", [{ tag: "F", content: enc.encode(String(i).padEnd(100, ".")) }]);
        const size = (await Deno.stat(path)).size;
        assert(size <= 8192, `size ${size} past the limit`);
        max = Math.max(max, size);
      }
      assert(max > 8192 - recordBytes, "the file should fill up to the limit before truncation");
      const lines = (await Deno.readTextFile(path)).trimEnd().split("\n").map(parseCriLogLine);
      assertEquals(lines.at(-1)!.content.slice(0, 3), "199");
      // A line longer than the limit still fits, cut into parts of the reduced size.
      w.write("stderr", [{ tag: "P", content: new Uint8Array(8128).fill(0x62) }, {
        tag: "F",
        content: enc.encode("x"),
      }]);
      assert((await Deno.stat(path)).size <= 8192);
      assertThrows(() => LogWriter.open(`${dir}/tiny.log`, { maxSize: 10 }), RangeError);
    });

    await t.step("reopen after rename sends new records to the new file", async () => {
      const path = `${dir}/rot.log`;
      using w = LogWriter.open(path, { now: () => FIXED });
      w.write("stdout", [{ tag: "F", content: enc.encode("before") }]);
      await Deno.rename(path, `${path}.1`);
      w.write("stdout", [{ tag: "F", content: enc.encode("still old") }]);
      w.reopen();
      w.write("stdout", [{ tag: "F", content: enc.encode("after") }]);
      assertEquals(joinCriLog(await Deno.readTextFile(`${path}.1`)).map((l) => l.line), ["before", "still old"]);
      assertEquals(joinCriLog(await Deno.readTextFile(path)).map((l) => l.line), ["after"]);
    });

    await t.step("a closed writer counts what it drops", () => {
      const w = LogWriter.open(`${dir}/closed.log`);
      w.close();
      w.write("stdout", [{ tag: "F", content: enc.encode("lost") }]);
      assert(w.droppedBytes > 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
