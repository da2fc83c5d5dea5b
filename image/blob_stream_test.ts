// Tests for the resumable blob stream against a scripted `open` (no network): resume with and without ranges,
// retries and their limit, Retry-After, the no-progress deadline, verification, cancellation.
import { assert, assertEquals, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { DeadlineExceeded, InvalidArgument, NotFound, Unavailable } from "../lib/errors.ts";
import { type BlobResponse, ResumableBlob, type ResumableBlobOptions } from "./blob_stream.ts";
import { digestOf } from "./digest.ts";
import { TransientError } from "./registry_protocol.ts";

const BLOB = crypto.getRandomValues(new Uint8Array(50_000));
const DIGEST = digestOf(BLOB);
const FAST = { baseMs: 1, maxMs: 5, maxRetryAfterMs: 100 };

/** How one attempt answers. */
type Step =
  | { kind: "ok"; ranges?: boolean; ignoreRange?: boolean }
  | { kind: "cut"; after: number; ranges?: boolean }
  | { kind: "stall"; after: number }
  | { kind: "throw"; error: unknown };

/** A body of `bytes` that errors after `cut` bytes or stops sending after `stall` bytes (until aborted). */
function body(bytes: Uint8Array, signal: AbortSignal, o: { cut?: number; stall?: number } = {}) {
  let off = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      const limit = Math.min(o.cut ?? Infinity, o.stall ?? Infinity);
      if (off >= limit) {
        if (o.cut !== undefined) return c.error(new TypeError("error reading a body from connection"));
        return new Promise<void>((_, reject) => {
          if (signal.aborted) return reject(signal.reason);
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      }
      if (off >= bytes.length) return c.close();
      const end = Math.min(bytes.length, off + 7000, limit);
      c.enqueue(bytes.slice(off, end));
      off = end;
    },
  });
}

function scripted(steps: Step[], bytes = BLOB) {
  const calls: { offset: number; range: boolean }[] = [];
  const open: ResumableBlobOptions["open"] = ({ offset, range, signal }) => {
    calls.push({ offset, range });
    const step = steps[Math.min(calls.length - 1, steps.length - 1)]!;
    if (step.kind === "throw") return Promise.reject(step.error);
    const ranges = step.kind === "stall" ? true : step.ranges ?? true;
    const start = range && ranges && !(step.kind === "ok" && step.ignoreRange) ? offset : 0;
    const res: BlobResponse = {
      body: body(bytes.subarray(start), signal, {
        ...(step.kind === "cut" ? { cut: step.after } : {}),
        ...(step.kind === "stall" ? { stall: step.after } : {}),
      }),
      offset: start,
      size: bytes.length,
      resumable: ranges,
    };
    return Promise.resolve(res);
  };
  return { open, calls };
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) out.set(p, (off += p.length) - p.length);
  return out;
}

function blob(open: ResumableBlobOptions["open"], extra: Partial<ResumableBlobOptions> = {}) {
  return new ResumableBlob({ digest: DIGEST, size: BLOB.length, source: "reg.test", open, backoff: FAST, ...extra });
}

Deno.test("ResumableBlob delivers exactly the blob's bytes", async (t) => {
  const cases: [string, Step[], { offset: number; range: boolean }[]][] = [
    ["a clean download: one request", [{ kind: "ok" }], [{ offset: 0, range: false }]],
    ["a cut with ranges resumes at the byte received", [{ kind: "cut", after: 21_000 }, { kind: "ok" }], [
      { offset: 0, range: false },
      { offset: 21_000, range: true },
    ]],
    ["a cut without ranges starts over and skips", [{ kind: "cut", after: 21_000, ranges: false }, {
      kind: "ok",
      ranges: false,
    }], [{ offset: 0, range: false }, { offset: 0, range: false }]],
    ["a server ignoring the range is skipped through", [{ kind: "cut", after: 14_000 }, {
      kind: "ok",
      ignoreRange: true,
    }], [{ offset: 0, range: false }, { offset: 14_000, range: true }]],
    ["two cuts in a row, then success", [{ kind: "cut", after: 7_000 }, { kind: "cut", after: 7_000 }, {
      kind: "ok",
    }], [{ offset: 0, range: false }, { offset: 7_000, range: true }, { offset: 14_000, range: true }]],
    ["a 503 before the first byte is retried", [
      { kind: "throw", error: new TransientError("HTTP 503", { status: 503 }) },
      { kind: "ok" },
    ], [{ offset: 0, range: false }, { offset: 0, range: false }]],
  ];
  for (const [name, steps, wantCalls] of cases) {
    await t.step(name, async () => {
      const s = scripted(steps);
      let progressed = 0;
      const b = blob(s.open, { onProgress: (n) => progressed += n });
      assertEquals(await collect(b.stream), BLOB);
      assertEquals(s.calls, wantCalls);
      assertEquals(progressed, BLOB.length);
      assertEquals(b.received, BLOB.length);
    });
  }
});

Deno.test("ResumableBlob gives up with precise errors", async (t) => {
  await t.step("retries are bounded; the message says how often and where", async () => {
    const s = scripted([{ kind: "throw", error: new TypeError("error reading a body from connection") }]);
    const err = await assertRejects(() => collect(blob(s.open, { maxRetries: 2 }).stream), Unavailable);
    assertStringIncludes(err.message, `pull of ${DIGEST} from reg.test failed 3 times in a row at byte 0`);
    assertEquals(s.calls.length, 3);
  });
  await t.step("an attempt that delivers bytes resets the count", async () => {
    const steps: Step[] = [1, 2, 3, 4, 5, 6].map((i) => ({ kind: "cut", after: 7_000 * i }));
    const s = scripted([...steps, { kind: "ok" }], BLOB);
    // Each cut happens `after` bytes into its own body, so every attempt makes progress.
    assertEquals(await collect(blob(s.open, { maxRetries: 1 }).stream), BLOB);
  });
  await t.step("NotFound is final at once", async () => {
    const s = scripted([{ kind: "throw", error: new NotFound("blob not found") }]);
    await assertRejects(() => collect(blob(s.open).stream), NotFound, "blob not found");
    assertEquals(s.calls.length, 1);
  });
  await t.step("connect() surfaces a refusal before any read", async () => {
    const s = scripted([{ kind: "throw", error: new NotFound("nope") }]);
    await assertRejects(() => blob(s.open).connect(), NotFound);
  });
  await t.step("Retry-After is honoured", async () => {
    const s = scripted([{ kind: "throw", error: new TransientError("429", { status: 429, retryAfterMs: 80 }) }, {
      kind: "ok",
    }]);
    const t0 = performance.now();
    await collect(blob(s.open).stream);
    assert(performance.now() - t0 >= 75, "waited for Retry-After");
  });
  await t.step("no byte for progressTimeoutMs is DeadlineExceeded, not retried", async () => {
    const s = scripted([{ kind: "stall", after: 10_000 }]);
    const t0 = performance.now();
    const err = await assertRejects(
      () => collect(blob(s.open, { progressTimeoutMs: 200 }).stream),
      DeadlineExceeded,
      `pull of ${DIGEST} from reg.test made no progress for 0.2s`,
    );
    const took = performance.now() - t0;
    assert(took >= 190 && took < 2_000, `gave up after ${took} ms`);
    assertEquals(s.calls.length, 1, err.message);
  });
  await t.step("a digest mismatch errors the stream at the end", async () => {
    const bad = BLOB.slice();
    bad[100] = bad[100]! ^ 1;
    const s = scripted([{ kind: "ok" }], bad);
    await assertRejects(() => collect(blob(s.open).stream), InvalidArgument, "digest mismatch");
  });
  await t.step("more bytes than the descriptor says are refused as they arrive", async () => {
    const longer = new Uint8Array(BLOB.length + 10);
    longer.set(BLOB);
    const s = scripted([{ kind: "ok" }], longer);
    const b = new ResumableBlob({ digest: DIGEST, size: BLOB.length, source: "reg.test", open: s.open });
    // The server's stated size differs from the descriptor's: refused before reading.
    await assertRejects(() => collect(b.stream), InvalidArgument, `the registry says ${longer.length} bytes`);
    // Unstated: refused at the chunk that overflows, before it is delivered.
    const open: ResumableBlobOptions["open"] = ({ signal }) =>
      Promise.resolve({ body: body(longer, signal), offset: 0, resumable: false });
    let delivered = 0;
    const quiet = blob(open, { onProgress: (n) => delivered += n });
    await assertRejects(() => collect(quiet.stream), InvalidArgument, "size mismatch");
    assert(delivered <= BLOB.length, `delivered ${delivered} bytes`);
  });
  await t.step("a body ending early is retried, then reported", async () => {
    const short = BLOB.subarray(0, 30_000);
    const open: ResumableBlobOptions["open"] = ({ signal }) =>
      Promise.resolve({ body: body(short, signal), offset: 0, resumable: false });
    const err = await assertRejects(() => collect(blob(open, { maxRetries: 1 }).stream), Unavailable);
    assertStringIncludes(err.message, "the body ended at byte 30000 of 50000");
  });
  await t.step("the caller's abort ends it with the caller's reason", async () => {
    const ctl = new AbortController();
    const s = scripted([{ kind: "stall", after: 7_000 }]);
    const b = blob(s.open, { signal: ctl.signal });
    const reader = b.stream.getReader();
    await reader.read();
    setTimeout(() => ctl.abort(new Error("pod removed")), 20);
    await assertRejects(() => reader.read(), Error, "pod removed");
  });
  await t.step("cancel stops the download", async () => {
    const s = scripted([{ kind: "stall", after: 7_000 }]);
    const b = blob(s.open);
    const reader = b.stream.getReader();
    await reader.read();
    await reader.cancel("enough");
    assertEquals(s.calls.length, 1);
  });
});
