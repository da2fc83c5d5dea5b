// Table tests for the registry client's protocol facts: Retry-After, Content-Range, backoff, error bodies, fetch
// error texts.
import { assertEquals } from "../tests/assert.ts";
import {
  acceptsByteRanges,
  apiHost,
  isTransientStatus,
  parseContentRange,
  parseRetryAfter,
  registryErrorSummary,
  retryDelay,
  transportErrorText,
  transportFailure,
} from "./registry_protocol.ts";

const NOW = Date.parse("2026-01-01T00:00:00Z");

Deno.test("parseRetryAfter", async (t) => {
  const cases: [string | null, number | undefined][] = [
    [null, undefined],
    ["", undefined],
    ["0", 0],
    ["7", 7000],
    [" 12 ", 12000],
    ["-1", undefined],
    ["1.5", undefined],
    ["Thu, 01 Jan 2026 00:00:30 GMT", 30000],
    ["Wed, 31 Dec 2025 23:00:00 GMT", 0],
    ["tomorrow", undefined],
    ["2026-01-01T00:00:30Z", undefined],
  ];
  for (const [value, want] of cases) {
    await t.step(JSON.stringify(value), () => assertEquals(parseRetryAfter(value, NOW), want));
  }
});

Deno.test("parseContentRange", async (t) => {
  const cases: [string | null, ReturnType<typeof parseContentRange>][] = [
    ["bytes 100-199/200", { start: 100, end: 199, total: 200 }],
    ["bytes 0-0/*", { start: 0, end: 0 }],
    ["BYTES 5-9/10", { start: 5, end: 9, total: 10 }],
    ["bytes 10-5/20", undefined],
    ["bytes 0-199/200x", undefined],
    ["bytes 0-199/199", undefined],
    ["bytes */200", undefined],
    ["items 0-1/2", undefined],
    [null, undefined],
  ];
  for (const [value, want] of cases) {
    await t.step(JSON.stringify(value), () => assertEquals(parseContentRange(value), want));
  }
});

Deno.test("retryDelay, isTransientStatus, acceptsByteRanges, apiHost", async (t) => {
  const policy = { baseMs: 100, maxMs: 1000, maxRetryAfterMs: 5000 };
  const delays: [number, number | undefined, number][] = [
    [1, undefined, 100],
    [2, undefined, 200],
    [4, undefined, 800],
    [5, undefined, 1000],
    [30, undefined, 1000],
    [1, 3000, 3000],
    [1, 60_000, 5000],
    [3, 0, 0],
  ];
  for (const [attempt, after, want] of delays) {
    await t.step(`retry ${attempt} after ${after}`, () => assertEquals(retryDelay(attempt, after, policy), want));
  }
  await t.step("transient statuses", () => {
    assertEquals([200, 400, 401, 404, 408, 416, 429, 500, 501, 502, 503, 504].filter(isTransientStatus), [
      408,
      429,
      500,
      502,
      503,
      504,
    ]);
  });
  await t.step("Accept-Ranges", () => {
    assertEquals([null, "", "none", "bytes", "Bytes", "none, bytes"].map(acceptsByteRanges), [
      false,
      false,
      false,
      true,
      true,
      true,
    ]);
  });
  await t.step("Docker Hub's API host", () => {
    assertEquals(["docker.io", "quay.io", "127.0.0.1:5000"].map(apiHost), [
      "registry-1.docker.io",
      "quay.io",
      "127.0.0.1:5000",
    ]);
  });
});

Deno.test("registryErrorSummary", async (t) => {
  const cases: [string, string, number?][] = [
    [
      '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}',
      "MANIFEST_UNKNOWN: manifest unknown",
    ],
    ['{"errors":[{"code":"A"},{"message":"b"}]}', "A; b"],
    ["  <html>\n <b>bad  gateway</b>\n</html> ", "<html> <b>bad gateway</b> </html>"],
    ["", ""],
    ["x".repeat(50), "x".repeat(17) + "...", 20],
  ];
  for (const [body, want, limit] of cases) {
    await t.step(JSON.stringify(body.slice(0, 30)), () => assertEquals(registryErrorSummary(body, limit), want));
  }
});

Deno.test("transportErrorText and transportFailure read Deno's fetch errors", async (t) => {
  const wrap = (inner: string) => new TypeError("fetch failed", { cause: new Error(inner) });
  const cases: [unknown, string, string][] = [
    [
      wrap(
        "error sending request for url (http://127.0.0.1:9/v2/): client error (Connect): tcp connect error: Connection refused (os error 111)",
      ),
      "tcp connect error: Connection refused (os error 111)",
      "refused",
    ],
    [
      wrap(
        "error sending request for url (https://127.0.0.1:9/v2/): client error (Connect): invalid peer certificate: UnknownIssuer",
      ),
      "invalid peer certificate: UnknownIssuer",
      "tls",
    ],
    [
      wrap(
        "error sending request for url (https://x/): client error (Connect): received corrupt message of type InvalidContentType",
      ),
      "received corrupt message of type InvalidContentType",
      "tls",
    ],
    [new TypeError("error reading a body from connection"), "error reading a body from connection", "reset"],
    [
      wrap(
        "error sending request for url (http://nx.invalid/): client error (Connect): dns error: failed to lookup address",
      ),
      "dns error: failed to lookup address",
      "dns",
    ],
    ["odd", "odd", "other"],
  ];
  for (const [err, text, kind] of cases) {
    await t.step(text, () => {
      assertEquals(transportErrorText(err), text);
      assertEquals(transportFailure(transportErrorText(err)), kind);
    });
  }
});
