// End to end: pod networking through the CRI with Debian's CNI plugins (bridge, host-local, portmap, loopback) on
// a bridge and subnet of the test's own; all traffic stays on that bridge, the pods' namespaces and loopback.
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import type { CriCallError, CriClient, Msg } from "./cri_client.ts";
import { startDaemon, type TestDaemon } from "./daemon.ts";
import { freeSubnetOctet, restoreHostNet, saveHostNet, sh } from "./host_net.ts";
import { selfCommand } from "../lib/self_exec.ts";

const tag = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, "0")).join("");
const bridge = `dvt${tag}`;

function conflist(octet: number, dataDir: string, ipv6 = false): string {
  return JSON.stringify({
    cniVersion: "1.0.0",
    name: `dvt${tag}`,
    plugins: [
      {
        type: "bridge",
        bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir,
          ranges: [
            [{ subnet: `10.244.${octet}.0/24` }],
            ...(ipv6 ? [[{ subnet: `fd00:d5:${octet.toString(16)}::/64` }]] : []),
          ],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  });
}

async function runPod(c: CriClient, name: string, extra: Msg = {}): Promise<string> {
  const config = { metadata: { name, namespace: "net", uid: `uid-${name}` }, hostname: name, ...extra };
  return (await c.call("RunPodSandbox", { config })).pod_sandbox_id;
}

async function podIp(c: CriClient, id: string): Promise<string> {
  return (await c.call("PodSandboxStatus", { pod_sandbox_id: id })).status.network.ip;
}

function netns(d: TestDaemon, id: string): string {
  return `${d.runroot}/ns/net/${id}`;
}

/**
 * Sends `text` to a listener started by `start` and returns what it received. busybox nc is a blunt tool (a sender
 * that races the listener's bind can lose its data), so a round that received nothing is tried again, twice at most.
 */
async function roundTrip(
  start: () => { received: Promise<string>; kill: () => void },
  deliver: () => Promise<void>,
  text: string,
) {
  let got = "";
  for (let round = 0; round < 3 && got !== text; round++) {
    const l = start();
    await deliver().catch(() => {});
    const timer = setTimeout(l.kill, 5000);
    got = await l.received;
    clearTimeout(timer);
  }
  return got;
}

/** Starts `busybox nc -l` inside a pod's network namespace; resolves to what it received. */
function listen(d: TestDaemon, id: string, port: number): { received: Promise<string>; kill: () => void } {
  const child = new Deno.Command("nsenter", {
    args: [`--net=${netns(d, id)}`, "/bin/busybox", "nc", "-l", "-p", String(port), "-w", "10"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  return {
    received: child.output().then((o) => new TextDecoder().decode(o.stdout)),
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited
      }
    },
  };
}

async function send(target: string, port: number, text: string, fromNetns?: string): Promise<void> {
  const cmd = fromNetns ? ["nsenter", `--net=${fromNetns}`, "/bin/busybox", "nc"] : ["/bin/busybox", "nc"];
  for (let i = 0; i < 50; i++) {
    const child = new Deno.Command(cmd[0]!, {
      args: [...cmd.slice(1), "-w", "2", target, String(port)],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const w = child.stdin.getWriter();
    // nc exits at once when nothing listens yet: its stdin is then a broken pipe, which just means "try again".
    await w.write(new TextEncoder().encode(text)).then(() => w.close()).catch(() => {});
    if ((await child.status).success) return;
    await new Promise((r) => setTimeout(r, 50)); // the listener may not be up yet
  }
  throw new Error(`cannot reach ${target}:${port}`);
}

async function hostLocalFiles(dataDir: string): Promise<string[]> {
  const entries = await Array.fromAsync(Deno.readDir(`${dataDir}/dvt${tag}`)).catch(() => []);
  return entries.map((e) => e.name).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n));
}

Deno.test("pod networking with the bridge, host-local and portmap plugins", async (t) => {
  const host = await saveHostNet();
  const octet = await freeSubnetOctet();
  const dir = await Deno.makeTempDir({ prefix: "davit-net-" });
  const dataDir = `${dir}/ipam`;
  // The live daemon and client (the restart step replaces both).
  const live: { d?: TestDaemon; c?: CriClient } = {};
  try {
    live.d = await startDaemon({
      args: ["--plugin-dirs", "/usr/lib/cni"],
      files: { "cni/10-test.conflist": conflist(octet, dataDir) },
    });
    live.c = live.d.client();
    const cri = live.c;
    const daemon = live.d;
    await t.step("NetworkReady once the config is there", async () => {
      const s = await cri.call("Status", {});
      assertEquals(s.status.conditions[1].status, true, JSON.stringify(s.status.conditions[1]));
    });
    let a = "", b = "";
    await t.step("a pod gets an address from the subnet and its status shows it", async () => {
      a = await runPod(cri, "a");
      const ip = await podIp(cri, a);
      assert(ip.startsWith(`10.244.${octet}.`), ip);
      assertEquals(await hostLocalFiles(dataDir), [ip]);
    });
    await t.step("a verbose PodSandboxStatus runs CNI CHECK", async () => {
      const st = await cri.call("PodSandboxStatus", { pod_sandbox_id: a, verbose: true });
      assertEquals(JSON.parse(st.info.info).networkCheck, "ok");
    });
    await t.step("two pods reach each other over TCP", async () => {
      b = await runPod(cri, "b");
      const ip = await podIp(cri, a);
      const got = await roundTrip(
        () => listen(daemon, a, 7000),
        () => send(ip, 7000, "hello from b\n", netns(daemon, b)),
        "hello from b\n",
      );
      assertEquals(got, "hello from b\n");
    });
    await t.step("a host port maps to the pod (portmap), on the bridge address and on 127.0.0.1", async () => {
      const hostPort = 20000 + Math.floor(Math.random() * 20000);
      const localPort = 40000 + Math.floor(Math.random() * 20000);
      const p = await runPod(cri, "web", {
        port_mappings: [
          { protocol: "TCP", container_port: 8080, host_port: hostPort, host_ip: "" },
          { protocol: "TCP", container_port: 8080, host_port: localPort, host_ip: "127.0.0.1" },
        ],
      });
      try {
        const got = await roundTrip(
          () => listen(daemon, p, 8080),
          () => send(`10.244.${octet}.1`, hostPort, "via the host port\n"),
          "via the host port\n",
        );
        assertEquals(got, "via the host port\n");
        const local = await roundTrip(
          () => listen(daemon, p, 8080),
          () => send("127.0.0.1", localPort, "via 127.0.0.1\n"),
          "via 127.0.0.1\n",
        );
        assertEquals(local, "via 127.0.0.1\n");
      } finally {
        await cri.call("RemovePodSandbox", { pod_sandbox_id: p });
      }
    });
    await t.step("hostNetwork pods skip CNI", async () => {
      const before = await hostLocalFiles(dataDir);
      const p = await runPod(cri, "hostnet", {
        // As the kubelet sends it: every mode explicit (an absent pid would be proto3's POD, a shared PID namespace).
        linux: { security_context: { namespace_options: { network: "NODE", pid: "CONTAINER", ipc: "POD" } } },
      });
      assertEquals(await podIp(cri, p), "");
      assertEquals(await hostLocalFiles(dataDir), before);
      await cri.call("RemovePodSandbox", { pod_sandbox_id: p });
    });
    await t.step("20 pods started 5 at a time get distinct addresses, all released after removal", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 20; i += 5) {
        ids.push(...await Promise.all([0, 1, 2, 3, 4].map((j) => runPod(cri, `many-${i + j}`))));
      }
      const ips = await Promise.all(ids.map((id) => podIp(cri, id)));
      assertEquals(new Set(ips).size, 20);
      for (const id of ids) {
        await cri.call("StopPodSandbox", { pod_sandbox_id: id });
        await cri.call("RemovePodSandbox", { pod_sandbox_id: id });
      }
      assertEquals((await hostLocalFiles(dataDir)).sort(), [await podIp(cri, a), await podIp(cri, b)].sort());
    });
    await t.step(
      "a daemon restarted (SIGTERM, then SIGKILL) between run and stop still releases the address",
      async () => {
        for (const signal of ["SIGTERM", "SIGKILL"] as const) {
          const p = await runPod(live.c!, `restart-${signal.slice(3).toLowerCase()}`);
          const ip = await podIp(live.c!, p);
          live.c!.close();
          live.d!.kill(signal);
          await live.d!.status;
          live.d = await startDaemon({ dir: daemon.dir });
          live.c = live.d.client();
          assertEquals(await podIp(live.c, p), ip);
          await live.c.call("StopPodSandbox", { pod_sandbox_id: p });
          assert(!(await hostLocalFiles(dataDir)).includes(ip), `${ip} released`);
          await live.c.call("RemovePodSandbox", { pod_sandbox_id: p });
        }
      },
    );
  } finally {
    const { c, d } = live;
    if (c && d) {
      for (const p of (await c.call("ListPodSandbox", {}).catch(() => ({ items: [] }))).items) {
        await c.call("RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
      }
      c.close();
    }
    await d?.stop();
    const left = await restoreHostNet(host, tag, bridge);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (d) await Deno.remove(d.dir, { recursive: true }).catch(() => {});
    assertEquals(left, [], "no iptables rule of the test's network was left behind");
  }
});

Deno.test("a broken plugin fails RunPodSandbox cleanly; NetworkReady follows the config directory", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "davit-net-" });
  const plugins = `${dir}/plugins`;
  await Deno.mkdir(plugins);
  const scripts: Record<string, string> = {
    "bad-json":
      `#!/bin/sh\ncat >/dev/null\necho '{"cniVersion":"1.0.0","code":11,"msg":"no addresses left in test pool","details":"bad-json plugin"}'\nexit 1\n`,
    "garbage": "#!/bin/sh\ncat >/dev/null\necho 'this is not JSON at all'\nexit 0\n",
    "crash": "#!/bin/sh\ncat >/dev/null\necho 'segfault-ish' >&2\nexit 139\n",
    "hang": "#!/bin/sh\ncat >/dev/null\nexec sleep 600\n",
    // Fails ADD only, after the bridge and portmap have done their work: the rollback must undo theirs.
    "fail-add": `#!/bin/sh\ncat >/dev/null\ncase "$CNI_COMMAND" in\nADD) echo '{"cniVersion":"1.0.0",` +
      `"code":999,"msg":"fail-add refuses every pod","details":"test plugin"}'; exit 1 ;;\nesac\nexit 0\n`,
  };
  for (const [name, text] of Object.entries(scripts)) {
    await Deno.writeTextFile(`${plugins}/${name}`, text, { mode: 0o755 });
  }
  await using d = await startDaemon({
    args: ["--plugin-dirs", `${plugins},/usr/lib/cni`],
    files: { "etc/davit.conf.d/20-timeout.toml": '[davit.network]\nplugin_timeout = "2s"\n' },
  });
  using c = d.client();
  const ready = async () => (await c.call("Status", {})).status.conditions[1];
  const waitReady = async (want: boolean) => {
    for (let i = 0; i < 200 && (await ready()).status !== want; i++) await new Promise((r) => setTimeout(r, 50));
    return await ready();
  };
  await t.step("not ready without a configuration, naming the directory", async () => {
    const cond = await ready();
    assertEquals([cond.status, cond.reason], [false, "NetworkPluginNotReady"]);
    assertStringIncludes(cond.message, `${d.dir}/cni`);
  });
  const broken = [
    ["bad-json", "no addresses left in test pool"],
    ["garbage", "garbage"],
    ["crash", "crash"],
    ["hang", "hang"],
  ] as const;
  for (const [plugin, mentions] of broken) {
    await t.step(`plugin "${plugin}" fails RunPodSandbox and nothing is left`, async () => {
      await Deno.mkdir(`${d.dir}/cni`, { recursive: true });
      await Deno.writeTextFile(
        `${d.dir}/cni/10-broken.conflist`,
        JSON.stringify({ cniVersion: "1.0.0", name: `broken-${plugin}`, plugins: [{ type: plugin }] }),
      );
      assertEquals((await waitReady(true)).status, true);
      // The watcher picks the new file up after a short quiet period: retry until the new plugin answers.
      let err: CriCallError | undefined;
      for (let i = 0; i < 50; i++) {
        err = await runPod(c, `broken-${plugin}`).then(() => undefined, (e) => e as CriCallError);
        if (!err || err.message.includes(`"${plugin}"`)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert(err, "RunPodSandbox failed");
      assertStringIncludes(err.message, mentions);
      assertEquals((await c.call("ListPodSandbox", {})).items, []);
      for (const kind of ["net", "ipc", "uts"]) {
        assertEquals(await Array.fromAsync(Deno.readDir(`${d.runroot}/ns/${kind}`)).catch(() => []), []);
      }
      // A plugin that also fails DEL leaves its attachment record for the next teardown or start-up GC to retry.
    });
  }
  await t.step("a plugin failing after bridge and portmap: the rollback releases their address and rules", async () => {
    const host = await saveHostNet();
    const octet = await freeSubnetOctet();
    const chainBridge = `dvb${tag}`, network = `chain-${tag}`, dataDir = `${dir}/ipam`;
    try {
      await Deno.writeTextFile(
        `${d.dir}/cni/10-broken.conflist`,
        JSON.stringify({
          cniVersion: "1.0.0",
          name: network,
          plugins: [
            {
              type: "bridge",
              bridge: chainBridge,
              isGateway: true,
              ipMasq: true,
              ipam: { type: "host-local", dataDir, ranges: [[{ subnet: `10.244.${octet}.0/24` }]] },
            },
            { type: "portmap", capabilities: { portMappings: true } },
            { type: "fail-add" },
          ],
        }),
      );
      // Past the watcher's 200 ms debounce, so the first try does not meet the hanging plugin of the step before.
      await new Promise((r) => setTimeout(r, 500));
      const hostPort = 20000 + Math.floor(Math.random() * 20000);
      let err: CriCallError | undefined;
      for (let i = 0; i < 50; i++) {
        err = await runPod(c, "broken-chain", {
          port_mappings: [{ protocol: "TCP", container_port: 8080, host_port: hostPort, host_ip: "" }],
        }).then(() => undefined, (e) => e as CriCallError);
        if (!err || err.message.includes('"fail-add"')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert(err, "RunPodSandbox failed");
      assertStringIncludes(err.message, "fail-add refuses every pod");
      // The last failure logged under this name is the one that reached fail-add (earlier retries may not have).
      const podId = [...d.logs().matchAll(/pod creation failed; undoing it.*?pod=([0-9a-f]{64})[^\n]*broken-chain/g)]
        .at(-1)?.[1];
      assert(podId, "the daemon logged the failed pod's ID");
      assertEquals((await c.call("ListPodSandbox", {})).items, []);
      for (const kind of ["net", "ipc", "uts"]) {
        assertEquals(await Array.fromAsync(Deno.readDir(`${d.runroot}/ns/${kind}`)).catch(() => []), []);
      }
      const allocated = await Array.fromAsync(Deno.readDir(`${dataDir}/${network}`)).catch(() => []);
      assertEquals(allocated.map((e) => e.name).filter((n) => /^\d+\./.test(n)), [], "host-local released the IP");
      const saved = (await sh(["iptables-save"])).stdout.split("\n");
      assertEquals(saved.filter((l) => l.includes(podId) || l.includes(network)), [], "no rule of the pod is left");
      assertEquals((await sh(["ip", "-o", "link", "show", "master", chainBridge])).stdout, "", "no veth is left");
      assertEquals(
        await Array.fromAsync(Deno.readDir(`${d.root}/cni-cache/results/${podId}`)).catch(() => []),
        [],
        "no attachment record is left",
      );
    } finally {
      // The configuration stays: the last step empties the directory.
      const left = await restoreHostNet(host, tag, chainBridge);
      assertEquals(left, []);
    }
  });
  await t.step("the hung plugin was killed at the timeout", async () => {
    const ps = await new Deno.Command("pgrep", { args: ["-f", "sleep 600"], stdout: "piped" }).output();
    assertEquals(new TextDecoder().decode(ps.stdout).trim(), "");
  });
  await t.step("ready again is lost when the directory empties", async () => {
    await Deno.remove(`${d.dir}/cni/10-broken.conflist`);
    assertEquals((await waitReady(false)).status, false);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("davit network default prints or installs the default network, never overwriting silently", async () => {
  const dir = await Deno.makeTempDir({ prefix: "davit-netdef-" });
  const run = async (args: string[]) => {
    const out = await selfCommand(["network", "default", ...args], { stdout: "piped", stderr: "piped" }).output();
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
  };
  try {
    const printed = await run([]);
    assertEquals(printed.code, 0);
    const conf = JSON.parse(printed.stdout);
    assertEquals(conf.plugins.map((p: { type: string }) => p.type), ["bridge", "portmap"]);
    assertEquals(conf.plugins[0].bridge, "cni0");
    assertEquals(conf.plugins[0].ipam.ranges[0][0].subnet, "10.88.0.0/16");
    const flags = ["--config-dir", dir, "--network-dir", `${dir}/net.d`];
    await Deno.writeTextFile(`${dir}/davit.toml`, "");
    flags.push("--config", `${dir}/davit.toml`);
    assertEquals((await run(["--write", ...flags])).code, 0);
    assertEquals(await Deno.readTextFile(`${dir}/net.d/10-davit-bridge.conflist`), printed.stdout);
    assertEquals((await run(["--write", ...flags])).code, 0, "the same content again is fine");
    await Deno.writeTextFile(`${dir}/net.d/10-davit-bridge.conflist`, "{}");
    const refused = await run(["--write", ...flags]);
    assertEquals(refused.code, 1);
    assertStringIncludes(refused.stderr, "--force");
    assertEquals(await Deno.readTextFile(`${dir}/net.d/10-davit-bridge.conflist`), "{}");
    assertEquals((await run(["--write", "--force", ...flags])).code, 0);
    assertEquals(await Deno.readTextFile(`${dir}/net.d/10-davit-bridge.conflist`), printed.stdout);
    assertEquals((await run(["--force"])).code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dual stack: the IPv4 address is primary, the IPv6 one additional", async () => {
  const host = await saveHostNet();
  const octet = await freeSubnetOctet();
  const dir = await Deno.makeTempDir({ prefix: "davit-net6-" });
  let d: TestDaemon | undefined;
  try {
    d = await startDaemon({
      args: ["--plugin-dirs", "/usr/lib/cni"],
      files: { "cni/10-test.conflist": conflist(octet, `${dir}/ipam`, true) },
    });
    using c = d.client();
    const id = await runPod(c, "dual");
    const st = (await c.call("PodSandboxStatus", { pod_sandbox_id: id })).status;
    assert(st.network.ip.startsWith(`10.244.${octet}.`), st.network.ip);
    assertEquals(st.network.additional_ips.length, 1);
    assert(
      st.network.additional_ips[0].ip.startsWith(`fd00:d5:${octet.toString(16)}:`),
      st.network.additional_ips[0].ip,
    );
    await c.call("RemovePodSandbox", { pod_sandbox_id: id });
  } finally {
    if (d) {
      // A failed assertion must not leave the pod (and its mounts and rules) behind.
      using c = d.client();
      for (const p of (await c.call("ListPodSandbox", {}).catch(() => ({ items: [] }))).items) {
        await c.call("RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
      }
    }
    await d?.stop();
    const left = await restoreHostNet(host, tag, bridge);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (d) await Deno.remove(d.dir, { recursive: true }).catch(() => {});
    assertEquals(left, []);
  }
});
