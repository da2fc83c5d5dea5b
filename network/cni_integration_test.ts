/**
 * CniManager against the real plugins in /usr/lib/cni (bridge, host-local, portmap, loopback), as root: pods in
 * bind-mounted network namespaces on a bridge and subnet of the test's own, TCP between pods, host ports, 20 pods
 * in parallel, DEL after a configuration change and after the namespace vanished, broken plugins. Everything the
 * test creates carries a random tag and is removed at the end (namespaces, bridge, iptables rules, IPAM data,
 * sysctls).
 * @module
 */
import { assert, assertEquals, assertMatch, assertRejects, assertStringIncludes } from "../tests/assert.ts";
import { CniManager } from "./cni_manager.ts";
import type { CniPluginError } from "./cni_errors.ts";

const SYSTEM_PLUGINS = "/usr/lib/cni";
const isRoot = Deno.uid() === 0;
const hasPlugins = await Deno.stat(`${SYSTEM_PLUGINS}/bridge`).then(() => true, () => false);

async function run(cmd: string[], opts: { stdin?: string; allowFail?: boolean } = {}) {
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const res = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (res.code !== 0 && !opts.allowFail) throw new Error(`${cmd.join(" ")} failed (${res.code}): ${res.stderr}`);
  return res;
}

function hex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function freeSubnetOctet(): Promise<number> {
  const routes = (await run(["ip", "-4", "route", "show", "table", "all"])).stdout;
  for (;;) {
    const n = crypto.getRandomValues(new Uint8Array(1))[0]!;
    if (!routes.includes(`10.244.${n}.`)) return n;
  }
}

/** Deletes the rules of `chain` whose `-L --line-numbers` line matches, by number, last first. */
async function deleteRules(tool: string, table: string, chain: string, match: (line: string) => boolean) {
  const listing = (await run([tool, "-t", table, "-L", chain, "--line-numbers", "-n"], { allowFail: true })).stdout;
  const numbers = listing.split("\n").filter(match).map((l) => parseInt(l, 10)).filter((n) => n > 0)
    .sort((a, b) => b - a);
  for (const n of numbers) await run([tool, "-t", table, "-D", chain, String(n)], { allowFail: true });
}

async function dropChain(tool: string, table: string, chain: string) {
  await run([tool, "-t", table, "-F", chain], { allowFail: true });
  await run([tool, "-t", table, "-X", chain], { allowFail: true });
}

/** Everything of the test's own: names, directories, namespaces. */
class Lab {
  readonly tag = hex(3);
  readonly net = `dvt${this.tag}`;
  readonly bridge = `dvt${this.tag}`;
  readonly root: string;
  readonly netnsDir: string;
  readonly netDir: string;
  readonly cacheDir: string;
  readonly ipamDir: string;
  readonly pluginDir: string;
  octet = 0;
  readonly namespaces = new Set<string>();
  readonly listeners: Deno.ChildProcess[] = [];
  ipForward = "";
  /** Whether portmap's shared chains existed before the test (then they are not the test's to remove). */
  hostportChainsBefore = true;

  constructor(root: string) {
    this.root = root;
    this.netnsDir = `${root}/netns`;
    this.netDir = `${root}/net.d`;
    this.cacheDir = `${root}/cni-cache`;
    this.ipamDir = `${root}/ipam`;
    this.pluginDir = `${root}/plugins`;
  }

  static async create(): Promise<Lab> {
    const lab = new Lab(await Deno.makeTempDir({ prefix: "davit-cni-it-" }));
    for (const d of [lab.netnsDir, lab.netDir, lab.cacheDir, lab.ipamDir, lab.pluginDir]) await Deno.mkdir(d);
    // Namespace files can only be bind-mounted onto a private mount.
    await run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", `davit-netns-${lab.tag}`, lab.netnsDir]);
    await run(["mount", "--make-private", lab.netnsDir]);
    lab.octet = await freeSubnetOctet();
    lab.ipForward = (await Deno.readTextFile("/proc/sys/net/ipv4/ip_forward")).trim();
    lab.hostportChainsBefore = (await run(["iptables", "-t", "nat", "-S"])).stdout.includes("CNI-HOSTPORT-DNAT");
    return lab;
  }

  get subnet(): string {
    return `10.244.${this.octet}.0/24`;
  }

  get gateway(): string {
    return `10.244.${this.octet}.1`;
  }

  podId(n: number | string): string {
    return `${this.net}-p${n}`;
  }

  config(over: { name?: string; dataDir?: string; bridge?: string; extra?: Record<string, unknown>[] } = {}) {
    return {
      cniVersion: "1.0.0",
      name: over.name ?? this.net,
      plugins: [
        {
          type: "bridge",
          bridge: over.bridge ?? this.bridge,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            dataDir: over.dataDir ?? this.ipamDir,
            ranges: [[{ subnet: this.subnet }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        },
        ...(over.extra ?? [{ type: "portmap", capabilities: { portMappings: true } }]),
      ],
    };
  }

  async writeConfig(dir: string, config: unknown): Promise<void> {
    await Deno.writeTextFile(`${dir}/10-${this.net}.conflist`, JSON.stringify(config, null, 1));
  }

  async newNetns(name: string): Promise<string> {
    const path = `${this.netnsDir}/${name}`;
    await Deno.writeTextFile(path, "");
    await run(["unshare", `--net=${path}`, "true"]);
    this.namespaces.add(path);
    return path;
  }

  async dropNetns(path: string): Promise<void> {
    await run(["umount", path], { allowFail: true });
    await Deno.remove(path).catch(() => {});
    this.namespaces.delete(path);
  }

  pod(
    n: number | string,
    netnsPath: string,
    portMappings: { hostPort: number; containerPort: number; protocol?: string; hostIP?: string }[] = [],
  ) {
    const id = this.podId(n);
    return { id, name: `pod-${n}`, namespace: "davit-test", uid: `uid-${id}`, netnsPath, portMappings };
  }

  /** Files host-local holds for allocated addresses (its lock and last-reserved files aside). */
  async allocations(network = this.net, dataDir = this.ipamDir): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    try {
      for await (const e of Deno.readDir(`${dataDir}/${network}`)) {
        if (/^\d+\.\d+\.\d+\.\d+$/.test(e.name)) {
          out.set(e.name, await Deno.readTextFile(`${dataDir}/${network}/${e.name}`));
        }
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return out;
  }

  /** iptables(-save) lines mentioning the tag. */
  async iptablesLeftovers(): Promise<string[]> {
    const lines: string[] = [];
    for (const tool of ["iptables-save", "ip6tables-save"]) {
      const out = await run([tool], { allowFail: true });
      lines.push(...out.stdout.split("\n").filter((l) => l.includes(this.tag)));
    }
    return lines;
  }

  /** Starts `busybox nc` in a namespace answering every connection on `port` with `reply`. */
  listen(netns: string, port: number, reply: string): void {
    this.listeners.push(
      new Deno.Command("nsenter", {
        args: [`--net=${netns}`, "busybox", "nc", "-ll", "-p", String(port), "-e", "/bin/echo", reply],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
  }

  /** Removes whatever is left, in an order that cannot fail on what is already gone. */
  async cleanup(): Promise<string[]> {
    const problems: string[] = [];
    for (const l of this.listeners) {
      try {
        l.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await l.status;
    }
    for (const ns of [...this.namespaces]) await this.dropNetns(ns);
    // Safety net: rules and chains the plugins left for the test's containers.
    for (const tool of ["iptables", "ip6tables"]) {
      for (const table of ["nat", "filter", "mangle"]) {
        const tagged = (await run([tool, "-t", table, "-S"], { allowFail: true })).stdout.split("\n")
          .filter((l) => l.startsWith("-A ") && l.includes(this.tag));
        problems.push(...tagged.map((l) => `${tool} ${table}: ${l}`));
        for (const chain of new Set(tagged.map((l) => l.split(" ")[1]!))) {
          await deleteRules(tool, table, chain, (l) => l.includes(this.tag));
        }
        for (const l of tagged) {
          const target = / -j (CNI-\S+)/.exec(l)?.[1];
          if (target) await dropChain(tool, table, target);
        }
      }
    }
    // portmap's shared chains are created once and never removed by the plugin; remove them when this test
    // created them and no other user's mapping is in them.
    const dnat = (await run(["iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"], { allowFail: true })).stdout;
    if (!this.hostportChainsBefore && dnat.startsWith("-N CNI-HOSTPORT-DNAT") && !dnat.includes("-A ")) {
      for (const chain of ["PREROUTING", "OUTPUT", "POSTROUTING"]) {
        await deleteRules("iptables", "nat", chain, (l) => /^\d+\s+CNI-HOSTPORT-/.test(l));
      }
      for (const chain of ["CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-DNAT"]) {
        await dropChain("iptables", "nat", chain);
      }
    }
    await run(["ip", "link", "del", this.bridge], { allowFail: true });
    await run(["ip", "link", "del", `${this.bridge}b`], { allowFail: true });
    if (this.ipForward) await Deno.writeTextFile("/proc/sys/net/ipv4/ip_forward", this.ipForward);
    await run(["umount", this.netnsDir], { allowFail: true });
    await Deno.remove(this.root, { recursive: true });
    return problems;
  }
}

async function inNetns(netns: string, ...cmd: string[]) {
  return await run(["nsenter", `--net=${netns}`, ...cmd], { allowFail: true });
}

async function retry<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readLine(hostname: string, port: number): Promise<string | undefined> {
  try {
    using conn = await Deno.connect({ hostname, port });
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    return n ? new TextDecoder().decode(buf.subarray(0, n)).trim() : undefined;
  } catch {
    return undefined;
  }
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: width }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  }));
}

Deno.test({
  name: "CNI with the real plugins",
  ignore: !isRoot || !hasPlugins,
  sanitizeResources: true,
  fn: async (t) => {
    const lab = await Lab.create();
    await lab.writeConfig(lab.netDir, lab.config());
    const mgr = new CniManager({
      networkDir: lab.netDir,
      pluginDirs: [lab.pluginDir, SYSTEM_PLUGINS],
      cacheDir: lab.cacheDir,
      timeoutMs: 30_000,
      watch: false,
    });
    let problems: string[] = [];
    try {
      await mgr.loaded();
      assertEquals(mgr.status(), { ok: true, reason: "", message: "" });
      const ns1 = await lab.newNetns("p1");
      const ns2 = await lab.newNetns("p2");
      let ip1 = "";

      await t.step("a pod gets an address from host-local, lo and eth0 are up", async () => {
        const res = await mgr.setUpPod(lab.pod(1, ns1));
        ip1 = res.ips[0]!;
        assertEquals(res.ips.length, 1);
        assert(ip1.startsWith(`10.244.${lab.octet}.`), ip1);
        assertEquals(res.network, lab.net);
        assertEquals(res.result.interfaces.find((i) => i.sandbox)?.name, "eth0");
        const alloc = await lab.allocations();
        assertStringIncludes(alloc.get(ip1) ?? "", lab.podId(1));
        assertStringIncludes((await inNetns(ns1, "ip", "-4", "addr", "show", "eth0")).stdout, `${ip1}/24`);
        assertMatch((await inNetns(ns1, "ip", "link", "show", "lo")).stdout, /<LOOPBACK,UP,LOWER_UP>/);
        const entry = JSON.parse(
          await Deno.readTextFile(`${lab.cacheDir}/results/${lab.podId(1)}/${lab.net}/eth0.json`),
        );
        assertEquals([entry.state, entry.version, entry.config.name], ["added", "1.0.0", lab.net]);
      });

      await t.step("CHECK passes for a healthy pod", async () => {
        await mgr.checkPod(lab.pod(1, ns1));
      });

      await t.step("two pods reach each other over TCP", async () => {
        const res = await mgr.setUpPod(lab.pod(2, ns2));
        assert(res.ips[0] !== ip1);
        lab.listen(ns1, 5000, "from-pod-1");
        const got = await retry("pod 2 connecting to pod 1", async () => {
          const out = await inNetns(ns2, "busybox", "nc", "-w", "2", ip1, "5000");
          return out.stdout.includes("from-pod-1") ? out.stdout.trim() : undefined;
        });
        assertEquals(got, "from-pod-1");
      });

      await t.step("host ports reach the pod: on the bridge address and on 127.0.0.1", async () => {
        const ns3 = await lab.newNetns("p3");
        const [h1, h2] = [20000 + Math.floor(Math.random() * 20000), 40000 + Math.floor(Math.random() * 20000)];
        await mgr.setUpPod(lab.pod(3, ns3, [
          { hostPort: h1, containerPort: 8080, protocol: "TCP" },
          { hostPort: h2, containerPort: 8080, protocol: "TCP", hostIP: "127.0.0.1" },
          { hostPort: 0, containerPort: 9090 },
        ]));
        lab.listen(ns3, 8080, "from-pod-3");
        assertEquals(await retry("host port on the bridge address", () => readLine(lab.gateway, h1)), "from-pod-3");
        assertEquals(await retry("host port on 127.0.0.1", () => readLine("127.0.0.1", h2)), "from-pod-3");
        assert((await lab.iptablesLeftovers()).some((l) => l.includes(lab.podId(3)) && l.includes(String(h1))));
        await mgr.tearDownPod(lab.pod(3, ns3));
        assertEquals((await lab.iptablesLeftovers()).filter((l) => l.includes(lab.podId(3))), []);
        assertEquals(await readLine(lab.gateway, h1), undefined, "the host port is closed after teardown");
      });

      await t.step("20 pods, 5 at a time: distinct addresses, all released after teardown", async () => {
        const ids = Array.from({ length: 20 }, (_, i) => 100 + i);
        const nss = new Map<number, string>();
        for (const i of ids) nss.set(i, await lab.newNetns(`p${i}`));
        const ips = new Map<number, string>();
        await pool(ids, 5, async (i) => {
          ips.set(i, (await mgr.setUpPod(lab.pod(i, nss.get(i)!))).ips[0]!);
        });
        const distinct = new Set([...ips.values(), ip1]);
        assertEquals(distinct.size, 21);
        const alloc = await lab.allocations();
        for (const [i, ip] of ips) assertStringIncludes(alloc.get(ip) ?? "", lab.podId(i));
        await pool(ids, 5, (i) => mgr.tearDownPod(lab.pod(i, nss.get(i)!)));
        const left = await lab.allocations();
        for (const ip of ips.values()) assert(!left.has(ip), `${ip} still allocated`);
        assertEquals((await lab.iptablesLeftovers()).filter((l) => ids.some((i) => l.includes(lab.podId(i)))), []);
        for (const ns of nss.values()) await lab.dropNetns(ns);
        assertEquals((await mgr.cachedPods()).sort(), [lab.podId(1), lab.podId(2)]);
      });

      await t.step("DEL after the configuration file changed uses the cached configuration", async () => {
        const ns4 = await lab.newNetns("p4");
        const { ips: [ip4] } = await mgr.setUpPod(lab.pod(4, ns4));
        // Another network name, bridge and IPAM directory: a DEL with this configuration would release nothing.
        await lab.writeConfig(
          lab.netDir,
          lab.config({
            name: `${lab.net}b`,
            bridge: `${lab.bridge}b`,
            dataDir: `${lab.root}/ipam2`,
          }),
        );
        await mgr.rescan();
        assertEquals(mgr.currentNetwork()?.name, `${lab.net}b`);
        await mgr.tearDownPod(lab.pod(4, ns4));
        assert(!(await lab.allocations()).has(ip4!), "released through the cached configuration");
        assertEquals((await inNetns(ns4, "ip", "link", "show", "eth0")).code !== 0, true, "eth0 removed");
        assertEquals((await lab.iptablesLeftovers()).filter((l) => l.includes(lab.podId(4))), []);
        await lab.writeConfig(lab.netDir, lab.config());
        await mgr.rescan();
        await lab.dropNetns(ns4);
      });

      await t.step("DEL twice, and DEL of a pod never set up, are fine", async () => {
        const ns5 = await lab.newNetns("p5");
        await mgr.setUpPod(lab.pod(5, ns5));
        await mgr.tearDownPod(lab.pod(5, ns5));
        await mgr.tearDownPod(lab.pod(5, ns5));
        await mgr.tearDownPod({ id: lab.podId("never"), name: "never", namespace: "davit-test", uid: "u" });
        await lab.dropNetns(ns5);
      });

      await t.step("DEL after the namespace vanished releases the address", async () => {
        const ns6 = await lab.newNetns("p6");
        const { ips: [ip6] } = await mgr.setUpPod(lab.pod(6, ns6));
        await lab.dropNetns(ns6);
        await mgr.tearDownPod(lab.pod(6, ns6));
        assert(!(await lab.allocations()).has(ip6!));
        assertEquals(await mgr.cachedStatus(lab.podId(6)), undefined);
        // bridge 1.1.x learns which masquerade rules to remove from the addresses on the pod's interface, so with
        // the namespace gone its rule stays (a plugin limitation; davit tears down before removing namespaces).
        const left = (await lab.iptablesLeftovers()).filter((l) => l.includes(lab.podId(6)));
        for (const l of left) assertMatch(l, /^(:CNI-|-A POSTROUTING|-A CNI-)/);
      });

      await t.step("broken plugins fail set-up cleanly, leaving nothing behind", async (t) => {
        const scripts: Record<string, string> = {
          "dvt-err":
            `echo '{"cniVersion":"1.0.0","code":7,"msg":"Invalid Configuration","details":"subnet too small"}'; exit 1`,
          "dvt-hang": "sleep 30",
          "dvt-garbage": "echo 'this is not json'; exit 0",
          "dvt-exit": "echo boom >&2; exit 2",
        };
        for (const [name, add] of Object.entries(scripts)) {
          await Deno.writeTextFile(
            `${lab.pluginDir}/${name}`,
            `#!/bin/sh\ncat >/dev/null\nif [ "$CNI_COMMAND" = ADD ]; then\n${add}\nfi\nexit 0\n`,
          );
          await Deno.chmod(`${lab.pluginDir}/${name}`, 0o755);
        }
        const brokenDir = `${lab.root}/net.broken`;
        await Deno.mkdir(brokenDir);
        const broken = new CniManager({
          networkDir: brokenDir,
          pluginDirs: [lab.pluginDir, SYSTEM_PLUGINS],
          cacheDir: lab.cacheDir,
          timeoutMs: 1500,
          watch: false,
        });
        try {
          const cases: [string, string, string][] = [
            ["dvt-err", "Internal", 'CNI plugin "dvt-err" ADD on network'],
            ["dvt-hang", "DeadlineExceeded", "did not finish within 1500 ms and was killed"],
            ["dvt-garbage", "Internal", 'succeeded but printed output that is not JSON: "this is not json"'],
            ["dvt-exit", "Internal", 'exited with code 2 without a CNI error result; stderr: "boom"'],
          ];
          for (const [type, kind, message] of cases) {
            await t.step(type, async () => {
              await lab.writeConfig(brokenDir, lab.config({ extra: [{ type }] }));
              await broken.rescan();
              const ns = await lab.newNetns(type);
              const before = await lab.allocations();
              const pod = lab.pod(type, ns);
              const err = await assertRejects(() => broken.setUpPod(pod), Error, message) as CniPluginError;
              assertEquals(err.kind, kind);
              if (type === "dvt-err") {
                assertEquals(err.code, 7);
                assertStringIncludes(err.message, "Invalid Configuration: subnet too small");
              }
              assertEquals(await lab.allocations(), before, "the address was released");
              assert((await inNetns(ns, "ip", "link", "show", "eth0")).code !== 0, "eth0 removed");
              assertEquals((await lab.iptablesLeftovers()).filter((l) => l.includes(pod.id)), []);
              assertEquals(await broken.cachedPods(), [lab.podId(1), lab.podId(2)]);
              await lab.dropNetns(ns);
            });
          }
        } finally {
          await broken.close();
        }
      });

      await t.step("teardown of the remaining pods leaves no address, rule or cache entry", async () => {
        await mgr.tearDownPod(lab.pod(1, ns1));
        await mgr.tearDownPod(lab.pod(2, ns2));
        assertEquals([...(await lab.allocations()).keys()], []);
        assertEquals(await mgr.cachedPods(), []);
        const left = (await lab.iptablesLeftovers()).filter((l) => !l.includes(lab.podId(6)));
        assertEquals(left, []);
      });
    } finally {
      await mgr.close();
      problems = await lab.cleanup();
    }
    // Only the documented bridge limitation (the vanished namespace of pod 6) may have needed the safety net.
    assertEquals(problems.filter((p) => !p.includes(lab.podId(6))), []);
  },
});
