// End to end: containers with a terminal (CRI `tty: true`) through a real daemon, its pod monitor, real runc and a
// busybox image from the loopback registry, attached to over SPDY and WebSocket the way `kubectl attach -it` and
// `crictl attach -it` do: resizes, typed lines, an interactive shell, stdin_once, exit codes in ContainerStatus,
// and the CRI log holding the terminal's output as `stdout` records.
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import type { Msg } from "./cri_client.ts";
import { startDaemon } from "./daemon.ts";
import { registryFiles, removeAllPods, waitFor } from "./cri_helpers.ts";
import { startRegistry } from "./fixtures/registry.ts";
import { busybox } from "./fixtures/images.ts";
import { spdyRemote, wsRemote } from "./stream_client.ts";
import { joinCriLog, parseCriLogLine } from "../monitor/log_format.ts";

const enc = new TextEncoder();

/** Waits for the 40x100 size a resize set (the resize and stdin streams reach the daemon in either order). */
const WAIT_SIZE = 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do s=$(stty size); [ "$s" = "40 100" ] && break; ' +
  "sleep 0.2; done";

Deno.test("containers with a terminal: create, attach with tty over SPDY and WebSocket, logs, exit codes", async (t) => {
  await using reg = await startRegistry();
  const image = (await busybox(reg)).reference;
  await using d = await startDaemon({
    files: {
      ...registryFiles(reg),
    },
  });
  using c = d.client();
  await using _pods = { [Symbol.asyncDispose]: () => removeAllPods(c) };
  await c.call("PullImage", { image: { image } });
  const logDir = `${d.dir}/logs`;
  const config = { metadata: { name: "tty", namespace: "test", uid: "uid-tty" }, log_directory: logDir };
  const podId = (await c.call("RunPodSandbox", { config })).pod_sandbox_id;
  /** Creates and starts a container with a terminal, stdin and stdin_once (as `kubectl run -it` does). */
  const run = async (name: string, command: string[], extra: Msg = {}) => {
    const id = (await c.call("CreateContainer", {
      pod_sandbox_id: podId,
      config: {
        metadata: { name },
        image: { image },
        command,
        log_path: `${name}.log`,
        tty: true,
        stdin: true,
        stdin_once: true,
        ...extra,
      },
      sandbox_config: config,
    })).container_id as string;
    await c.call("StartContainer", { container_id: id });
    return id;
  };
  const exited = (id: string) =>
    waitFor(`container ${id} to exit`, async () => {
      const s = (await c.call("ContainerStatus", { container_id: id })).status;
      return s.state === "CONTAINER_EXITED" ? s : undefined;
    });
  /** The container's log: every line a `stdout` record, F or P; returns the joined lines. */
  const logLines = async (name: string) => {
    const text = await Deno.readTextFile(`${logDir}/${name}.log`);
    const records = text.split("\n").filter((l) => l !== "").map(parseCriLogLine);
    assert(records.length > 0, "empty log");
    for (const r of records) {
      assertEquals(r.stream, "stdout", JSON.stringify(r));
      assert(r.tag === "F" || r.tag === "P", JSON.stringify(r));
    }
    return joinCriLog(text).map((l) => l.line);
  };

  await t.step("SPDY attach with tty: the size from the resize stream, a typed line, the exit code", async () => {
    const id = await run("sized", ["sh", "-c", `read l; ${WAIT_SIZE}; echo "size $s"; tty; echo "got $l"; exit 3`]);
    // A terminal is attached to with tty, and only so (crictl attach without -t).
    const bad = await c.call("Attach", { container_id: id, stdin: true, stdout: true }).then(() => undefined, (e) => e);
    assertEquals(bad?.codeName, "INVALID_ARGUMENT");
    assertStringIncludes(bad.message, "tty");

    const url = (await c.call("Attach", { container_id: id, tty: true, stdin: true, stdout: true })).url as string;
    const r = await spdyRemote(url, {
      tty: true,
      stdin: enc.encode("hello\n"),
      stdout: true,
      resize: [{ Width: 100, Height: 40 }],
    });
    // The terminal echoes the typed line and ends lines with \r\n.
    assertStringIncludes(r.stdout, "hello\r\n");
    assertStringIncludes(r.stdout, "size 40 100\r\n");
    assertStringIncludes(r.stdout, "/dev/pts/0\r\n");
    assertStringIncludes(r.stdout, "got hello\r\n");
    assertEquals(r.stderr, "");
    // Attach succeeds when the container ends; its own exit code is in ContainerStatus.
    assertEquals(r.exitCode, 0);
    const s = await exited(id);
    assertEquals([s.exit_code, s.reason], [3, "Error"]);
    const lines = await logLines("sized");
    for (const want of ["hello\r", "size 40 100\r", "/dev/pts/0\r", "got hello\r"]) {
      assert(lines.includes(want), `${JSON.stringify(want)} not in ${JSON.stringify(lines)}`);
    }
  });

  await t.step("an interactive shell, as kubectl run -it gives it", async () => {
    const id = await run("shell", ["sh"]);
    const url = (await c.call("Attach", { container_id: id, tty: true, stdin: true, stdout: true })).url as string;
    const r = await spdyRemote(url, {
      tty: true,
      stdin: enc.encode("echo $((6*7))\nexit 5\n"),
      stdout: true,
      resize: [{ Width: 120, Height: 30 }],
    });
    assertStringIncludes(r.stdout, "42\r\n");
    // Each command is followed by a prompt on the terminal: busybox sh knew it was interactive.
    assertStringIncludes(r.stdout.slice(r.stdout.indexOf("42\r\n")), "/ # ");
    assertEquals((await exited(id)).exit_code, 5);
    const log = (await logLines("shell")).join("\n");
    assertStringIncludes(log, "/ # ");
    assertStringIncludes(log, "42\r");
  });

  await t.step("WebSocket attach with tty; stdin_once ends the input with an EOT", async () => {
    const id = await run("ws", [
      "sh",
      "-c",
      `read l; ${WAIT_SIZE}; echo "ws $l $s"; if read m; then echo "more $m"; else echo eof; fi`,
    ]);
    const url = (await c.call("Attach", { container_id: id, tty: true, stdin: true, stdout: true })).url as string;
    const r = await wsRemote(url, {
      tty: true,
      stdin: enc.encode("one\n"),
      stdout: true,
      resize: [{ Width: 100, Height: 40 }],
    });
    assertStringIncludes(r.stdout, "ws one 40 100\r\n");
    assertStringIncludes(r.stdout, "eof\r\n");
    assertEquals((await exited(id)).exit_code, 0);
    const lines = await logLines("ws");
    assertEquals(lines.slice(-2), ["ws one 40 100\r", "eof\r"]);
  });
});
