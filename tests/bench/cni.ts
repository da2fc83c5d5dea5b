// CNI configurations the benchmarks give both runtimes: loopback only, or a private bridge with no gateway, no
// masquerading and no address on the host side, so pods reach only each other. Each run gets its own network and
// bridge name, an IPAM data directory inside its temporary directory, and removes its bridge afterwards.

/** Plugin binaries: Debian's containernetworking-plugins. */
export const CNI_BIN_DIR = "/usr/lib/cni";

/** The kinds of network the benchmarks can set up. */
export type BenchNetwork = "loopback" | "bridge";

/** A written CNI configuration. */
export interface BenchCni {
  kind: BenchNetwork;
  /** Directory holding the one .conflist file. */
  confDir: string;
  /** The network's name (also the prefix of libcni's cache files). */
  name: string;
  /** The bridge device, for `bridge`. */
  bridge?: string;
  /** Deletes the bridge and libcni's cached results for this network. */
  cleanup(): Promise<void>;
}

/** The conflist text for `kind`; pure. */
export function conflist(kind: BenchNetwork, name: string, bridge: string, ipamDir: string): string {
  const plugins: unknown[] = kind === "loopback" ? [{ type: "loopback" }] : [{
    type: "bridge",
    bridge,
    isGateway: false,
    ipMasq: false,
    hairpinMode: false,
    ipam: { type: "host-local", ranges: [[{ subnet: "10.231.0.0/16" }]], dataDir: ipamDir },
  }, { type: "loopback" }];
  return JSON.stringify({ cniVersion: "0.4.0", name, plugins }, null, 2) + "\n";
}

/** Writes a configuration of `kind` into `<dir>/net.d`. */
export async function writeCni(dir: string, kind: BenchNetwork): Promise<BenchCni> {
  const tag = crypto.randomUUID().slice(0, 8);
  const name = `davit-bench-${tag}`;
  const bridge = `dvb${tag}`; // IFNAMSIZ: at most 15 characters
  const confDir = `${dir}/net.d`;
  await Deno.mkdir(confDir, { recursive: true });
  await Deno.writeTextFile(`${confDir}/10-${name}.conflist`, conflist(kind, name, bridge, `${dir}/ipam`));
  return {
    kind,
    confDir,
    name,
    ...(kind === "bridge" ? { bridge } : {}),
    cleanup: async () => {
      if (kind === "bridge") {
        await new Deno.Command("ip", { args: ["link", "del", bridge], stdout: "null", stderr: "null" }).output();
      }
      // libcni caches results under /var/lib/cni/results/<network>-<container>-<ifname>; a runtime removes them
      // on DEL, so only leftovers of a crash are deleted here.
      for (const sub of ["results", "cache/results"]) {
        try {
          for (const e of Deno.readDirSync(`/var/lib/cni/${sub}`)) {
            if (e.name.startsWith(`${name}-`)) await Deno.remove(`/var/lib/cni/${sub}/${e.name}`).catch(() => {});
          }
        } catch {
          // no cache directory
        }
      }
    },
  };
}
