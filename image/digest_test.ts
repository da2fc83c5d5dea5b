// Tests for digest parsing and the streaming verifier; the 200 MB throughput measurement runs with DAVIT_BENCH=1.
import { assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { digestOf, DigestVerifier, isDigest, parseDigest, verifyingStream } from "./digest.ts";

const HELLO = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const hello = new TextEncoder().encode("hello");

Deno.test("parseDigest", async (t) => {
  const good: [string, string, number][] = [
    [HELLO, "sha256", 64],
    ["sha512:" + "ab".repeat(64), "sha512", 128],
  ];
  for (const [input, algorithm, len] of good) {
    await t.step(`accepts ${input.slice(0, 20)}`, () => {
      const d = parseDigest(input);
      assertEquals(d.algorithm, algorithm);
      assertEquals(d.encoded.length, len);
      assertEquals(isDigest(input), true);
    });
  }
  const bad: [string, string][] = [
    ["", "expected algorithm:hex"],
    ["sha256", "expected algorithm:hex"],
    ["sha256:" + "a".repeat(63), "must be 64 lower-case hex"],
    ["sha256:" + "A".repeat(64), "must be 64 lower-case hex"],
    ["sha256:" + "g".repeat(64), "must be 64 lower-case hex"],
    ["sha512:" + "a".repeat(64), "must be 128 lower-case hex"],
    ["md5:" + "a".repeat(32), 'unsupported digest algorithm "md5"'],
    ["sha256+b64u:abc", 'unsupported digest algorithm "sha256+b64u"'],
    [" sha256:" + "a".repeat(64), "expected algorithm:hex"],
  ];
  for (const [input, message] of bad) {
    await t.step(`refuses ${JSON.stringify(input.slice(0, 24))}`, () => {
      assertThrows(() => parseDigest(input), InvalidArgument, message);
      assertEquals(isDigest(input), false);
    });
  }
});

Deno.test("DigestVerifier", async (t) => {
  await t.step("digestOf", () => assertEquals(digestOf(hello), HELLO));
  await t.step("accepts matching content in pieces", () => {
    const v = new DigestVerifier({ digest: HELLO, size: 5 });
    v.update(hello.subarray(0, 2));
    v.update(hello.subarray(2));
    assertEquals(v.finish(), HELLO);
    assertEquals(v.bytes, 5);
  });
  await t.step("size unknown is fine", () => {
    const v = new DigestVerifier({ digest: HELLO });
    v.update(hello);
    assertEquals(v.finish(), HELLO);
  });
  await t.step("names both digests on mismatch", () => {
    const v = new DigestVerifier({ digest: "sha256:" + "0".repeat(64), what: "layer" });
    v.update(hello);
    assertThrows(
      () => v.finish(),
      InvalidArgument,
      `layer digest mismatch: expected sha256:${"0".repeat(64)}, got ${HELLO}`,
    );
  });
  await t.step("short content names both sizes", () => {
    const v = new DigestVerifier({ digest: HELLO, size: 6 });
    v.update(hello);
    assertThrows(() => v.finish(), InvalidArgument, "size mismatch: expected 6 bytes, got 5");
  });
  await t.step("long content is refused at the overflowing chunk", () => {
    const v = new DigestVerifier({ digest: HELLO, size: 4 });
    assertThrows(() => v.update(hello), InvalidArgument, "expected 4 bytes, got more than that");
  });
  await t.step("bad expectations are refused up front", () => {
    assertThrows(() => new DigestVerifier({ digest: "sha256:xyz" }), InvalidArgument, "invalid digest");
    assertThrows(() => new DigestVerifier({ digest: HELLO, size: -1 }), InvalidArgument, "invalid expected size");
  });
});

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.byteLength;
  return n;
}

Deno.test("verifyingStream", async (t) => {
  await t.step("passes bytes through", async () => {
    const out = ReadableStream.from([hello.subarray(0, 1), hello.subarray(1)]).pipeThrough(
      verifyingStream({ digest: HELLO, size: 5 }),
    );
    assertEquals(await drain(out), 5);
  });
  await t.step("errors at the end on a digest mismatch", async () => {
    const other = "sha256:" + "1".repeat(64);
    const out = ReadableStream.from([hello]).pipeThrough(verifyingStream({ digest: other, size: 5, what: "blob" }));
    await assertRejects(() => drain(out), InvalidArgument, `blob digest mismatch: expected ${other}, got ${HELLO}`);
  });
  await t.step("errors on a size mismatch", async () => {
    const out = ReadableStream.from([hello]).pipeThrough(verifyingStream({ digest: HELLO, size: 3 }));
    await assertRejects(() => drain(out), InvalidArgument, "size mismatch");
  });
});

Deno.test({
  name: "verifyingStream throughput (200 MB, DAVIT_BENCH=1)",
  ignore: Deno.env.get("DAVIT_BENCH") !== "1",
  fn: async () => {
    const chunk = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
    const count = 200;
    const whole = new DigestVerifier({ digest: HELLO });
    for (let i = 0; i < count; i++) whole.update(chunk);
    let expected = "";
    try {
      whole.finish();
    } catch (err) {
      expected = /got (sha256:[0-9a-f]+)/.exec((err as Error).message)?.[1] ?? "";
    }
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < count) controller.enqueue(chunk);
        else controller.close();
      },
    });
    let sent = 0;
    const start = performance.now();
    const n = await drain(source.pipeThrough(verifyingStream({ digest: expected, size: count << 20 })));
    const seconds = (performance.now() - start) / 1000;
    assertEquals(n, count << 20);
    console.log(`sha256 verify: ${count} MiB in ${seconds.toFixed(2)} s = ${(count / seconds).toFixed(0)} MiB/s`);
  },
});
