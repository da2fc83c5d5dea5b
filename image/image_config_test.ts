// Table tests for image config parsing.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import { parseImageConfig } from "./image_config.ts";

const D1 = "sha256:" + "1".repeat(64);
const D2 = "sha256:" + "2".repeat(64);
const bytes = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

Deno.test("parseImageConfig", async (t) => {
  await t.step("a full config", () => {
    const c = parseImageConfig(bytes({
      architecture: "amd64",
      os: "linux",
      created: "2024-01-01T00:00:00Z",
      author: "someone",
      config: {
        User: "1000:1000",
        Env: ["PATH=/usr/bin:/bin", "A=b=c"],
        Entrypoint: ["/bin/sh", "-c"],
        Cmd: ["echo hi"],
        WorkingDir: "/work",
        StopSignal: "SIGQUIT",
        Labels: { "org.example": "yes" },
        ExposedPorts: { "80/tcp": {}, "53/udp": {} },
        Volumes: { "/data": {} },
      },
      rootfs: { type: "layers", diff_ids: [D1, D2] },
      history: [
        { created: "2024-01-01T00:00:00Z", created_by: "ADD file", comment: "c" },
        { created_by: "ENV A=b", empty_layer: true, author: "me" },
        { created_by: "RUN x" },
      ],
    }));
    assertEquals(c, {
      architecture: "amd64",
      os: "linux",
      created: "2024-01-01T00:00:00Z",
      author: "someone",
      user: "1000:1000",
      env: ["PATH=/usr/bin:/bin", "A=b=c"],
      entrypoint: ["/bin/sh", "-c"],
      cmd: ["echo hi"],
      workingDir: "/work",
      stopSignal: "SIGQUIT",
      labels: { "org.example": "yes" },
      exposedPorts: ["80/tcp", "53/udp"],
      volumes: ["/data"],
      diffIds: [D1, D2],
      history: [
        { created: "2024-01-01T00:00:00Z", createdBy: "ADD file", comment: "c", emptyLayer: false },
        { createdBy: "ENV A=b", author: "me", emptyLayer: true },
        { createdBy: "RUN x", emptyLayer: false },
      ],
    });
  });
  await t.step("a minimal config; nulls and empty strings are absent", () => {
    const c = parseImageConfig(bytes({
      config: { Entrypoint: null, Cmd: null, Env: null, Labels: null, User: "", WorkingDir: "" },
      rootfs: { type: "layers", diff_ids: [] },
    }));
    assertEquals(c, { env: [], labels: {}, exposedPorts: [], volumes: [], diffIds: [], history: [] });
  });
  await t.step("an empty Cmd stays an empty list", () => {
    const c = parseImageConfig(bytes({ config: { Cmd: [] }, rootfs: { type: "layers", diff_ids: [D1] } }));
    assertEquals(c.cmd, []);
  });
  const bad: [string, unknown, string][] = [
    ["not JSON", "{", "not valid UTF-8 JSON"],
    ["not an object", "1", "not a JSON object"],
    ["no rootfs", { config: {} }, "missing rootfs"],
    ["wrong rootfs type", { rootfs: { type: "other", diff_ids: [] } }, 'rootfs.type must be "layers", got "other"'],
    ["bad diff_id", { rootfs: { type: "layers", diff_ids: ["sha256:x"] } }, 'rootfs.diff_ids[0] "sha256:x"'],
    ["Env not strings", { config: { Env: [1] }, rootfs: { type: "layers" } }, "config.Env is not an array of strings"],
    ["Cmd a string", { config: { Cmd: "ls" }, rootfs: { type: "layers" } }, "config.Cmd is not an array of strings"],
    ["User a number", { config: { User: 0 }, rootfs: { type: "layers" } }, "config.User is not a string"],
    [
      "Labels not strings",
      { config: { Labels: { a: 1 } }, rootfs: { type: "layers" } },
      "config.Labels is not an object of strings",
    ],
    [
      "ExposedPorts a list",
      { config: { ExposedPorts: ["80"] }, rootfs: { type: "layers" } },
      "config.ExposedPorts is not an object",
    ],
    ["config a list", { config: [], rootfs: { type: "layers" } }, "config is not an object"],
    ["history not a list", { rootfs: { type: "layers" }, history: {} }, "history is not an array"],
    [
      "history entry",
      { rootfs: { type: "layers" }, history: [{ created_by: 1 }] },
      "history[0].created_by is not a string",
    ],
  ];
  for (const [name, doc, message] of bad) {
    await t.step(name, () => {
      assertThrows(() => parseImageConfig(bytes(doc)), InvalidArgument, `invalid image config: ${message}`);
    });
  }
});
