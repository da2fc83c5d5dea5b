// Table tests for the monitor protocol: request validation, answer encoding and parsing, line splitting.
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { FailedPrecondition, NotFound, ResourceExhausted } from "../lib/errors.ts";
import {
  encodeError,
  encodeRequest,
  encodeResult,
  isValidId,
  LineSplitter,
  parseRequest,
  parseResponse,
  type Request,
} from "./protocol.ts";

const CREATE = {
  id: 7,
  op: "create",
  container_id: "c1",
  runtime_path: "/usr/sbin/runc",
  runtime_root: "/run/davit/runc",
  bundle: "/run/davit/c1",
  log_path: "/var/log/pods/p/c/0.log",
};

Deno.test("parseRequest accepts", async (t) => {
  const cases: [string, unknown, Request][] = [
    ["ping", { id: 0, op: "ping" }, { id: 0, op: "ping" }],
    ["status of all", { id: 1, op: "status" }, { id: 1, op: "status" }],
    ["status of one", { id: 2, op: "status", container_id: "c1" }, { id: 2, op: "status", container_id: "c1" }],
    ["wait", { id: 3, op: "wait", container_id: "a.b_c-d" }, { id: 3, op: "wait", container_id: "a.b_c-d" }],
    ["reopen_log", { id: 4, op: "reopen_log", container_id: "c" }, { id: 4, op: "reopen_log", container_id: "c" }],
    ["forget", { id: 5, op: "forget", container_id: "c" }, { id: 5, op: "forget", container_id: "c" }],
    ["shutdown", { id: 6, op: "shutdown" }, { id: 6, op: "shutdown", force: false }],
    ["forced shutdown", { id: 6, op: "shutdown", force: true }, { id: 6, op: "shutdown", force: true }],
    ["attach to output", { id: 8, op: "attach", container_id: "c", stdout: true }, {
      id: 8,
      op: "attach",
      container_id: "c",
      stdin: false,
      stdout: true,
      stderr: false,
    }],
    ["attach to everything", { id: 9, op: "attach", container_id: "c", stdin: true, stdout: true, stderr: true }, {
      id: 9,
      op: "attach",
      container_id: "c",
      stdin: true,
      stdout: true,
      stderr: true,
    }],
    ["attach to stdin alone", { id: 9, op: "attach", container_id: "c", stdin: true }, {
      id: 9,
      op: "attach",
      container_id: "c",
      stdin: true,
      stdout: false,
      stderr: false,
    }],
    ["create with defaults", CREATE, {
      ...CREATE,
      op: "create",
      runtime_args: [],
      log_size_max: 0,
      terminal: false,
      stdin: false,
      stdin_once: false,
      timeout_ms: 60000,
    }],
    ["create with everything", {
      ...CREATE,
      log_size_max: 8192,
      stdin: true,
      stdin_once: true,
      timeout_ms: 5000,
    }, {
      ...CREATE,
      op: "create",
      runtime_args: [],
      log_size_max: 8192,
      terminal: false,
      stdin: true,
      stdin_once: true,
      timeout_ms: 5000,
    }],
    ["create with a terminal and stdin", { ...CREATE, terminal: true, stdin: true, stdin_once: true }, {
      ...CREATE,
      op: "create",
      runtime_args: [],
      log_size_max: 0,
      terminal: true,
      stdin: true,
      stdin_once: true,
      timeout_ms: 60000,
    }],
    ["runtime flags for runsc", { ...CREATE, runtime_args: ["--platform=ptrace"] }, {
      ...CREATE,
      op: "create",
      runtime_args: ["--platform=ptrace"],
      log_size_max: 0,
      terminal: false,
      stdin: false,
      stdin_once: false,
      timeout_ms: 60000,
    }],
    ["negative log limit means none", { ...CREATE, log_size_max: -1 }, {
      ...CREATE,
      op: "create",
      runtime_args: [],
      log_size_max: -1,
      terminal: false,
      stdin: false,
      stdin_once: false,
      timeout_ms: 60000,
    }],
  ];
  for (const [name, input, want] of cases) {
    await t.step(name, () => {
      const got = parseRequest(JSON.stringify(input));
      assert(got.ok, got.ok ? "" : got.error.message);
      assertEquals(got.request, want);
    });
  }
});

Deno.test("parseRequest refuses", async (t) => {
  const cases: [string, string, number | null, string, string][] = [
    ["not JSON", "{", null, "InvalidArgument", "not valid JSON"],
    ["not an object", "[1]", null, "InvalidArgument", "not a JSON object"],
    ["no id", `{"op":"ping"}`, null, "InvalidArgument", `"id"`],
    ["negative id", `{"id":-1,"op":"ping"}`, null, "InvalidArgument", `"id"`],
    ["unknown op", `{"id":1,"op":"exec"}`, 1, "InvalidArgument", "unknown op"],
    ["unknown field", `{"id":1,"op":"ping","pod":"x"}`, 1, "InvalidArgument", `unknown field "pod"`],
    ["wait without id", `{"id":1,"op":"wait"}`, 1, "InvalidArgument", "container_id"],
    ["path traversal id", `{"id":1,"op":"wait","container_id":"../x"}`, 1, "InvalidArgument", "bad container_id"],
    ["relative bundle", JSON.stringify({ ...CREATE, bundle: "b" }), 7, "InvalidArgument", "absolute path"],
    ["NUL in path", JSON.stringify({ ...CREATE, log_path: "/a\0b" }), 7, "InvalidArgument", "NUL"],
    ["small log limit", JSON.stringify({ ...CREATE, log_size_max: 100 }), 7, "InvalidArgument", "at least 8192"],
    ["fractional timeout", JSON.stringify({ ...CREATE, timeout_ms: 1.5 }), 7, "InvalidArgument", "timeout_ms"],
    ["huge timeout", JSON.stringify({ ...CREATE, timeout_ms: 1e9 }), 7, "InvalidArgument", "timeout_ms"],
    [
      "string terminal",
      JSON.stringify({ ...CREATE, terminal: 1 }),
      7,
      "InvalidArgument",
      `"terminal" must be a boolean`,
    ],
    ["stdin_once alone", JSON.stringify({ ...CREATE, stdin_once: true }), 7, "InvalidArgument", "stdin_once"],
    ["string bool", JSON.stringify({ ...CREATE, stdin: "yes" }), 7, "InvalidArgument", "boolean"],
    ["attach to nothing", `{"id":2,"op":"attach","container_id":"c"}`, 2, "InvalidArgument", "one of stdin"],
    ["attach without id", `{"id":2,"op":"attach","stdout":true}`, 2, "InvalidArgument", "container_id"],
    [
      "attach with tty",
      `{"id":2,"op":"attach","container_id":"c","stdout":true,"tty":true}`,
      2,
      "InvalidArgument",
      `unknown field "tty"`,
    ],
    [
      "attach, number for bool",
      `{"id":2,"op":"attach","container_id":"c","stdout":1}`,
      2,
      "InvalidArgument",
      "boolean",
    ],
  ];
  for (const [name, line, id, kind, part] of cases) {
    await t.step(name, () => {
      const got = parseRequest(line);
      assert(!got.ok);
      assertEquals(got.id, id);
      assertEquals(got.error.kind, kind);
      assert(got.error.message.includes(part), got.error.message);
    });
  }
});

Deno.test("answers encode and parse back", async (t) => {
  await t.step("result", () => {
    const line = encodeResult(3, { pid: 42 });
    assert(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
    assertEquals(parseResponse(line.trimEnd()), { id: 3, ok: true, result: { pid: 42 } });
  });
  await t.step("a result cannot override id or ok", () => {
    assertEquals(JSON.parse(encodeResult(3, { id: 9, ok: false })), { id: 3, ok: true });
  });
  await t.step("domain error keeps its kind", () => {
    const got = parseResponse(encodeError(4, new NotFound(`no container "x"`)).trimEnd());
    assert(!got.ok && got.error instanceof NotFound);
    assertEquals(got.error.message, `no container "x"`);
  });
  await t.step("other errors are Internal", () => {
    const got = parseResponse(encodeError(null, new TypeError("boom")).trimEnd());
    assert(!got.ok);
    assertEquals([got.id, got.error.kind, got.error.message], [null, "Internal", "boom"]);
  });
  await t.step("FailedPrecondition", () => {
    const got = parseResponse(encodeError(1, new FailedPrecondition("live")).trimEnd());
    assert(!got.ok && got.error instanceof FailedPrecondition);
  });
  await t.step("request encoding", () => {
    assertEquals(JSON.parse(encodeRequest(5, "wait", { container_id: "c" })), { container_id: "c", id: 5, op: "wait" });
  });
  await t.step("bad answers", () => {
    assertThrows(() => parseResponse("nope"), Error, "not valid JSON");
    assertThrows(() => parseResponse(`{"id":1}`), Error, `"ok"`);
    assertThrows(() => parseResponse(`{"id":"1","ok":true}`), Error, "bad id");
  });
});

Deno.test("LineSplitter", async (t) => {
  const enc = new TextEncoder();
  await t.step("splits, holds and joins", () => {
    const s = new LineSplitter(100);
    assertEquals(s.push(enc.encode("a\nb")), ["a"]);
    assertEquals(s.heldBytes, 1);
    assertEquals(s.push(enc.encode("c")), []);
    assertEquals(s.push(enc.encode("d\n\ne\n")), ["bcd", "", "e"]);
    assertEquals(s.heldBytes, 0);
  });
  await t.step("UTF-8 split across chunks", () => {
    const s = new LineSplitter(100);
    const bytes = enc.encode("héllo\n");
    assertEquals(s.push(bytes.slice(0, 2)), []);
    assertEquals(s.push(bytes.slice(2)), ["héllo"]);
  });
  await t.step("too long", () => {
    const s = new LineSplitter(4);
    assertEquals(s.push(enc.encode("abcd\n")), ["abcd"]);
    assertThrows(() => s.push(enc.encode("abcde")), ResourceExhausted);
    assertThrows(() => new LineSplitter(4).push(enc.encode("ab")) && new LineSplitter(4).push(enc.encode("abcdef\n")));
  });
  await t.step("pushOne stops after the first line and gives back the rest", () => {
    const s = new LineSplitter(100);
    assertEquals(s.pushOne(enc.encode(`{"op":`)), undefined);
    const got = s.pushOne(enc.encode(`1}\n\x01\x00\n`));
    assert(got !== undefined);
    assertEquals(got.line, `{"op":1}`);
    assertEquals([...got.rest], [1, 0, 10]);
    assertEquals(s.heldBytes, 0);
    assertEquals(s.pushOne(new Uint8Array(0)), undefined);
    assertThrows(() => new LineSplitter(3).pushOne(enc.encode("abcd")), ResourceExhausted);
  });
  await t.step("isValidId", () => {
    for (const ok of ["a", "0abc", "a.b-c_d", "x".repeat(128)]) assert(isValidId(ok), ok);
    for (const bad of ["", ".a", "-a", "_a", "a/b", "..", "x".repeat(129), "a b"]) assert(!isValidId(bad), bad);
  });
});
