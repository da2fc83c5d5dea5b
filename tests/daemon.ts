/**
 * Starts a real davit daemon for a test: `deno run main.ts serve` on fresh temporary root, runroot and socket,
 * with its stderr collected, and stops it with SIGTERM (SIGKILL as a last resort) and removes what it made.
 * @module
 */
import { selfCommand } from "../lib/self_exec.ts";
import { CriClient } from "./cri_client.ts";

/** A daemon started by {@link startDaemon}. */
export interface TestDaemon {
  dir: string;
  root: string;
  runroot: string;
  socket: string;
  process: Deno.ChildProcess;
  /** Everything the daemon wrote to stderr so far. */
  logs(): string;
  /** A client on the daemon's socket. */
  client(opts?: { authority?: string }): CriClient;
  /** Sends SIGTERM and waits; returns the exit code. */
  stop(): Promise<number>;
  /** Sends a signal. */
  kill(signal: Deno.Signal): void;
  /** Resolves with the exit status once the process ends. */
  status: Promise<Deno.CommandStatus>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options for {@link startDaemon}. */
export interface StartDaemonOptions {
  /** Extra command-line flags after `serve`. */
  args?: string[];
  /** Files to write before start, relative to the test directory (e.g. `etc/davit.toml`). */
  files?: Record<string, string>;
  /** Reuse an existing test directory (restart tests). */
  dir?: string;
  /** Do not wait for the socket (for start-up failure tests). */
  noWait?: boolean;
  env?: Record<string, string>;
}

/** A CNI network of the loopback plugin alone: pods get a namespace with lo up and no addresses. */
export const LOOPBACK_NETWORK: Record<string, string> = {
  "cni/10-loopback.conflist": JSON.stringify({
    cniVersion: "1.0.0",
    name: "loopback-only",
    plugins: [{ type: "loopback" }],
  }),
};

/** The drop-in that points every host-wide file davit reads at the test directory. */
export function testPathsToml(dir: string): string {
  return [
    "[davit.image]",
    `registries_conf = "${dir}/etc/containers/registries.conf"`,
    `registries_conf_dir = "${dir}/etc/containers/registries.conf.d"`,
    `signature_policy = "${dir}/etc/containers/policy.json"`,
    `certs_dir = "${dir}/etc/containers/certs.d"`,
    "",
  ].join("\n");
}

/** Launches davit's serve mode exactly as `deno run main.ts` would, with test paths. */
export async function startDaemon(opts: StartDaemonOptions = {}): Promise<TestDaemon> {
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "davit-test-" });
  for (const [rel, text] of Object.entries(opts.files ?? {})) {
    const path = `${dir}/${rel}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, text);
  }
  const root = `${dir}/root`, runroot = `${dir}/run`, socket = `${dir}/run/davit.sock`;
  const args = [
    "serve",
    "--config",
    `${dir}/etc/davit.toml`,
    "--config-dir",
    `${dir}/etc/davit.conf.d`,
    "--root",
    root,
    "--runroot",
    runroot,
    "--listen",
    socket,
    "--log-level",
    "debug",
    "--network-dir",
    `${dir}/cni`,
    // Logs of pods that name no log directory: kept out of the host's /var/log/pods.
    "--log-dir",
    `${dir}/pod-logs`,
    ...(opts.args ?? []),
  ];
  // davit treats a missing --config file or --config-dir as an error, so both exist, if empty.
  await Deno.mkdir(`${dir}/etc/davit.conf.d`, { recursive: true });
  await Deno.writeTextFile(`${dir}/etc/davit.toml`, "", { append: true });
  // Keep the host's /etc/containers out of tests: registries.conf, policy and certs live in the test directory.
  await Deno.writeTextFile(`${dir}/etc/davit.conf.d/00-test-paths.toml`, testPathsToml(dir));
  const cmd = selfCommand(args, {
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
  });
  const process = cmd.spawn();
  let stderr = "";
  const decoder = new TextDecoder();
  const drained = (async () => {
    for await (const chunk of process.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  const status = process.status.then(async (s) => {
    await drained;
    return s;
  });
  const d: TestDaemon = {
    dir,
    root,
    runroot,
    socket,
    process,
    status,
    logs: () => stderr,
    client: (o = {}) => new CriClient(socket, o),
    kill: (signal) => {
      try {
        process.kill(signal);
      } catch {
        // already gone
      }
    },
    stop: async () => {
      d.kill("SIGTERM");
      const timer = setTimeout(() => d.kill("SIGKILL"), 15_000);
      const s = await status;
      clearTimeout(timer);
      return s.code;
    },
    [Symbol.asyncDispose]: async () => {
      await d.stop();
      endSpareMonitors(runroot);
      if (!opts.dir) {
        await unmountUnder(dir);
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
  if (!opts.noWait) {
    try {
      await waitForSocket(socket, status);
    } catch (err) {
      await d.stop();
      throw new Error(`daemon did not start: ${(err as Error).message}\n--- daemon log ---\n${stderr}`);
    }
  }
  return d;
}

/**
 * Ends the spare monitor process a daemon keeps ready for its next pod (a daemon stopped cleanly ends it itself;
 * one killed cannot). SIGTERM: a monitor exits on it only when none of its containers runs.
 */
function endSpareMonitors(runroot: string): void {
  for (const pid of spareMonitorPids(runroot)) {
    try {
      if (Deno.readTextFileSync(`/proc/${pid}/cmdline`).includes("monitor")) Deno.kill(pid, "SIGTERM");
    } catch {
      // gone already
    }
  }
}

/**
 * Pids of the daemon's spare monitor processes (kept ready for the next pod, serving none): leak checks leave them
 * out. A spare is a process that the pid files of `<runroot>/mon/spare-<hex>` name and no pod's pid file names, or
 * one started as a spare (its command line names such a directory) that no pid file names yet.
 */
export function spareMonitorPids(runroot: string): Set<number> {
  const spareNamed = new Set<number>(), podNamed = new Set<number>();
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(`${runroot}/mon`)].map((e) => e.name);
  } catch {
    // no monitor directory
  }
  for (const name of names) {
    try {
      const pid = Number(Deno.readTextFileSync(`${runroot}/mon/${name}/monitor.pid`).trim().split(" ")[0]);
      (name.startsWith("spare-") ? spareNamed : podNamed).add(pid);
    } catch {
      // no pid file
    }
  }
  const out = new Set([...spareNamed].filter((pid) => !podNamed.has(pid)));
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (spareNamed.has(pid) || podNamed.has(pid)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(`${runroot}/mon/spare-`)) out.add(pid);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Unmounts what is still mounted under a test directory once its daemon is gone: a daemon a test killed with SIGKILL
 * (or that outlived its stop grace) had no chance to release its `<runroot>/ns` mount. Deepest first, lazily.
 */
async function unmountUnder(dir: string): Promise<void> {
  const info = await Deno.readTextFile("/proc/self/mountinfo").catch(() => "");
  const points = info.split("\n").map((l) => l.split(" ")[4] ?? "").filter((m) => m === dir || m.startsWith(`${dir}/`));
  for (const m of points.sort((a, b) => b.length - a.length)) {
    await new Deno.Command("umount", { args: ["-l", m], stdout: "null", stderr: "null" }).output().catch(() => {});
  }
}

async function waitForSocket(path: string, status: Promise<Deno.CommandStatus>): Promise<void> {
  let exited: Deno.CommandStatus | undefined;
  status.then((s) => exited = s);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`exited with code ${exited.code}`);
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      conn.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`no socket at ${path} after 30 s`);
}
