/**
 * Host-side helpers for networking tests: running commands, a free 10.244.X.0/24 subnet, and removing the
 * iptables rules, chains, bridge and sysctl changes a test's pods caused.
 * @module
 */

/** Runs a command; throws with its stderr unless `allowFail`. */
export async function sh(cmd: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}) {
  const out = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
  }).output();
  const res = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (!out.success && !opts.allowFail) throw new Error(`${cmd.join(" ")}: exit ${out.code}: ${res.stderr}`);
  return res;
}

/** An X such that 10.244.X.0/24 is routed nowhere on this host. */
export async function freeSubnetOctet(): Promise<number> {
  const routes = (await sh(["ip", "-4", "route", "show", "table", "all"])).stdout;
  for (;;) {
    const n = crypto.getRandomValues(new Uint8Array(1))[0]!;
    if (n > 0 && !routes.includes(`10.244.${n}.`)) return n;
  }
}

/** Host state a networking test changes, remembered so it can be put back. */
export interface HostNetState {
  ipForward: string;
  hostportChains: boolean;
}

/** Records ip_forward and whether portmap's shared chains exist. */
export async function saveHostNet(): Promise<HostNetState> {
  return {
    ipForward: (await Deno.readTextFile("/proc/sys/net/ipv4/ip_forward")).trim(),
    hostportChains: (await sh(["iptables", "-t", "nat", "-S"])).stdout.includes("CNI-HOSTPORT-DNAT"),
  };
}

async function deleteMatching(table: string, chain: string, match: (line: string) => boolean): Promise<void> {
  const listing =
    (await sh(["iptables", "-t", table, "-L", chain, "--line-numbers", "-n"], { allowFail: true })).stdout;
  const numbers = listing.split("\n").filter(match).map((l) => parseInt(l, 10)).filter((n) => n > 0).sort((a, b) =>
    b - a
  );
  for (const n of numbers) await sh(["iptables", "-t", table, "-D", chain, String(n)], { allowFail: true });
}

/**
 * Lists (and then removes) iptables rules mentioning `tag` (a bridge or network name the test chose), deletes the
 * bridge, removes portmap's shared chains when the test created them and they are empty, and restores
 * ip_forward. Returns what had to be removed, for the test to assert on.
 */
export async function restoreHostNet(state: HostNetState, tag: string, bridge: string): Promise<string[]> {
  const leftovers: string[] = [];
  for (const table of ["nat", "filter"]) {
    const rules = (await sh(["iptables", "-t", table, "-S"], { allowFail: true })).stdout.split("\n")
      .filter((l) => l.startsWith("-A ") && l.includes(tag));
    leftovers.push(...rules.map((l) => `${table}: ${l}`));
    for (const chain of new Set(rules.map((l) => l.split(" ")[1]!))) {
      await deleteMatching(table, chain, (l) => l.includes(tag));
    }
  }
  const dnat = (await sh(["iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT"], { allowFail: true })).stdout;
  if (!state.hostportChains && dnat.startsWith("-N CNI-HOSTPORT-DNAT") && !dnat.includes("-A CNI-HOSTPORT-DNAT")) {
    for (const chain of ["PREROUTING", "OUTPUT", "POSTROUTING"]) {
      await deleteMatching("nat", chain, (l) => /^\d+\s+CNI-HOSTPORT-/.test(l));
    }
    for (const chain of ["CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-DNAT"]) {
      await sh(["iptables", "-t", "nat", "-F", chain], { allowFail: true });
      await sh(["iptables", "-t", "nat", "-X", chain], { allowFail: true });
    }
  }
  await sh(["ip", "link", "del", bridge], { allowFail: true });
  await Deno.writeTextFile("/proc/sys/net/ipv4/ip_forward", state.ipForward);
  return leftovers;
}
