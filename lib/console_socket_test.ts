// Tests for ConsoleSocket against a client made here that plays the runtime: sends a pty master in SCM_RIGHTS.
import { DeadlineExceeded, InvalidArgument } from "./errors.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../tests/assert.ts";
import { ConsoleSocket } from "./console_socket.ts";
import { AF, connectUnix, OwnedFd, sendFds, SOCK, socket, writeAll } from "./libc.ts";
import { openPty } from "./pty.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function tempDir(): { path: string } & Disposable {
  const path = Deno.makeTempDirSync({ prefix: "davit-console-" });
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

/** Connects to `path` as the runtime would (a blocking connect to a listening socket returns at once). */
function dial(path: string): OwnedFd {
  const fd = new OwnedFd(socket(AF.UNIX, SOCK.STREAM));
  connectUnix(fd.fd, path);
  return fd;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("ConsoleSocket", async (t) => {
  await t.step("receives the master a runtime sends, named after the payload, and unlinks itself", async () => {
    using dir = tempDir();
    const sock = ConsoleSocket.listen(`${dir.path}/console.sock`);
    assertEquals(Deno.lstatSync(sock.path).mode! & 0o777, 0o600);
    assert(Deno.lstatSync(sock.path).isSocket);
    const receiving = sock.receive({ timeoutMs: 5000 });
    const pair = openPty();
    try {
      {
        using client = dial(sock.path);
        sendFds(client.fd, encoder.encode(pair.slavePath), [pair.master.fd]);
      }
      const pty = await receiving;
      try {
        assertEquals(pty.name, pair.slavePath);
        assert(!exists(sock.path), "socket file left behind");
        assert(sock.closed);
        // The received descriptor is the same terminal: the slave's output comes out of it.
        const reader = pty.readable.getReader();
        writeAll(pair.slave.fd, encoder.encode("ok\n"));
        const { value } = await reader.read();
        assertEquals(decoder.decode(value), "ok\r\n");
        reader.releaseLock();
        pty.resize(90, 20);
        assertEquals(pair.master.size(), { cols: 90, rows: 20 });
      } finally {
        await pty.close();
      }
    } finally {
      pair.slave.close();
      await pair.master.close();
    }
  });

  await t.step("an abort ends the wait with its reason and removes the socket", async () => {
    using dir = tempDir();
    const sock = ConsoleSocket.listen(`${dir.path}/c.sock`);
    const ac = new AbortController();
    const receiving = sock.receive({ signal: ac.signal });
    setTimeout(() => ac.abort(new Error("client went away")), 30);
    await assertRejects(() => receiving, Error, "client went away");
    assert(!exists(sock.path));
  });

  await t.step("a deadline ends the wait with DeadlineExceeded", async () => {
    using dir = tempDir();
    const sock = ConsoleSocket.listen(`${dir.path}/c.sock`);
    await assertRejects(() => sock.receive({ timeoutMs: 50 }), DeadlineExceeded, "no terminal received within 50ms");
    assert(!exists(sock.path));
  });

  await t.step("close ends a waiting receive and is idempotent", async () => {
    using dir = tempDir();
    const sock = ConsoleSocket.listen(`${dir.path}/c.sock`);
    const receiving = sock.receive();
    await new Promise((r) => setTimeout(r, 20));
    await sock.close();
    await assertRejects(() => receiving, Deno.errors.BadResource);
    await sock.close();
    assert(!exists(sock.path));
  });

  await t.step("a connection that closes without a descriptor is an error", async () => {
    using dir = tempDir();
    const sock = ConsoleSocket.listen(`${dir.path}/c.sock`);
    const receiving = sock.receive({ timeoutMs: 5000 });
    dial(sock.path).close();
    await assertRejects(() => receiving, Error, "closed the connection without sending a terminal");
  });

  await t.step("a message without a descriptor is an error", async () => {
    using dir = tempDir();
    await using sock = ConsoleSocket.listen(`${dir.path}/c.sock`);
    const receiving = sock.receive({ timeoutMs: 5000 });
    using client = dial(sock.path);
    sendFds(client.fd, encoder.encode("/dev/pts/9"), []);
    await assertRejects(() => receiving, Error, "carried no descriptor");
  });

  await t.step("extra descriptors are closed, the first one is the terminal", async () => {
    using dir = tempDir();
    const sock = ConsoleSocket.listen(`${dir.path}/c.sock`);
    const receiving = sock.receive({ timeoutMs: 5000 });
    const pair = openPty();
    try {
      using client = dial(sock.path);
      sendFds(client.fd, encoder.encode("x"), [pair.master.fd, pair.slave.fd]);
      const before = [...Deno.readDirSync("/proc/self/fd")].length;
      await (await receiving).close();
      assert([...Deno.readDirSync("/proc/self/fd")].length <= before, "a received descriptor leaked");
    } finally {
      pair.slave.close();
      await pair.master.close();
    }
  });

  await t.step("paths longer than 107 bytes are refused before anything is made", () => {
    using dir = tempDir();
    const long = `${dir.path}/${"x".repeat(120)}`;
    assertThrows(() => ConsoleSocket.listen(long), InvalidArgument, "a socket path holds 107");
    assertEquals([...Deno.readDirSync(dir.path)], []);
  });

  await t.step("an existing file is not replaced", () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/c.sock`, "");
    const err = assertThrows(() => ConsoleSocket.listen(`${dir.path}/c.sock`));
    assert(err.message.includes("EADDRINUSE"), err.message);
    assert(Deno.lstatSync(`${dir.path}/c.sock`).isFile);
  });

  await t.step("the listening socket is not inherited by children", async () => {
    using dir = tempDir();
    await using sock = ConsoleSocket.listen(`${dir.path}/c.sock`);
    const out = await new Deno.Command("/bin/sh", { args: ["-c", "ls -l /proc/self/fd/"], stdout: "piped" }).output();
    assert(!decoder.decode(out.stdout).includes("socket:"), decoder.decode(out.stdout));
    assert(!sock.closed);
  });
});
