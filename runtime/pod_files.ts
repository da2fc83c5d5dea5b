/**
 * Files every container of a pod bind-mounts, kept in `<runroot>/pods/<podId>/`: hostname, hosts and
 * resolv.conf (pure renderers from plain inputs, thin writers), and the pod's /dev/shm, a tmpfs of a set size
 * at `<runroot>/pods/<podId>/shm`.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { isErrno, MNT, mount, MS, umount2 } from "../lib/libc.ts";
import { parseMountInfo } from "./cgroup_layout.ts";
import { checkHostname } from "./pod_namespaces.ts";

/** DNS settings of a pod (the CRI DNSConfig, as plain data). */
export interface DnsConfig {
  servers: string[];
  searches: string[];
  options: string[];
}

/** Paths of a pod's files. */
export interface PodFilePaths {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

const WORD = /^[^\s#;]+$/;

/** The pod's directory under the runroot. */
export function podDir(runroot: string, podId: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(podId)) {
    throw new InvalidArgument(`Invalid pod ID ${JSON.stringify(podId)}`);
  }
  return `${runroot}/pods/${podId}`;
}

/** The pod's file paths (pure). */
export function podFilePaths(runroot: string, podId: string): PodFilePaths {
  const dir = podDir(runroot, podId);
  return { hostname: `${dir}/hostname`, hosts: `${dir}/hosts`, resolvConf: `${dir}/resolv.conf` };
}

/** /etc/hostname content. */
export function renderHostname(hostname: string): string {
  checkHostname(hostname);
  return `${hostname}\n`;
}

/**
 * /etc/hosts content: the kubelet's localhost block, then one line per pod IP naming the hostname (none until
 * networking reports the IPs), then `extra` entries.
 */
export function renderHosts(
  opts: { hostname: string; ips?: string[]; extra?: { ip: string; names: string[] }[] },
): string {
  checkHostname(opts.hostname);
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "fe00::0\tip6-mcastprefix",
    "fe00::1\tip6-allnodes",
    "fe00::2\tip6-allrouters",
  ];
  const entry = (ip: string, names: string[]) => {
    for (const w of [ip, ...names]) {
      if (!WORD.test(w)) throw new InvalidArgument(`Invalid hosts entry ${JSON.stringify(w)}`);
    }
    lines.push(`${ip}\t${names.join(" ")}`);
  };
  for (const ip of opts.ips ?? []) entry(ip, [opts.hostname]);
  for (const e of opts.extra ?? []) entry(e.ip, e.names);
  return lines.join("\n") + "\n";
}

/** resolv.conf content from a DNS config (resolv.conf(5): `search`, `nameserver` lines, `options`). */
export function renderResolvConf(dns: DnsConfig): string {
  for (const w of [...dns.servers, ...dns.searches, ...dns.options]) {
    if (!WORD.test(w)) throw new InvalidArgument(`Invalid DNS setting ${JSON.stringify(w)}`);
  }
  const lines: string[] = [];
  if (dns.searches.length > 0) lines.push(`search ${dns.searches.join(" ")}`);
  for (const s of dns.servers) lines.push(`nameserver ${s}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(" ")}`);
  return lines.join("\n") + (lines.length > 0 ? "\n" : "");
}

async function writeAtomic(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, content, { mode: 0o644 });
  await Deno.rename(tmp, path);
}

/**
 * Writes hostname, hosts and resolv.conf for the pod. Without `dns`, resolv.conf is a copy of the host's
 * (`hostResolvConf`, default /etc/resolv.conf).
 */
export async function writePodFiles(
  runroot: string,
  podId: string,
  opts: { hostname: string; dns?: DnsConfig; ips?: string[]; hostResolvConf?: string },
): Promise<PodFilePaths> {
  const paths = podFilePaths(runroot, podId);
  const hostname = renderHostname(opts.hostname);
  const hosts = renderHosts({ hostname: opts.hostname, ...(opts.ips ? { ips: opts.ips } : {}) });
  const resolv = opts.dns
    ? renderResolvConf(opts.dns)
    : await Deno.readTextFile(opts.hostResolvConf ?? "/etc/resolv.conf");
  await Deno.mkdir(podDir(runroot, podId), { recursive: true, mode: 0o755 });
  await writeAtomic(paths.hostname, hostname);
  await writeAtomic(paths.hosts, hosts);
  await writeAtomic(paths.resolvConf, resolv);
  return paths;
}

/**
 * Rewrites the pod's hosts file once networking knows its IPs. The file is rewritten in place, not replaced:
 * containers that already bind-mount it keep the same inode and see the change.
 */
export async function updatePodHosts(
  runroot: string,
  podId: string,
  opts: { hostname: string; ips: string[]; extra?: { ip: string; names: string[] }[] },
): Promise<void> {
  await Deno.writeTextFile(podFilePaths(runroot, podId).hosts, renderHosts(opts), { create: false });
}

/** Deletes the pod's hostname, hosts and resolv.conf; missing ones are fine. */
export async function removePodFiles(runroot: string, podId: string): Promise<void> {
  for (const p of Object.values(podFilePaths(runroot, podId))) {
    await Deno.remove(p).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/** Where the pod's /dev/shm tmpfs is mounted. */
export function podShmPath(runroot: string, podId: string): string {
  return `${podDir(runroot, podId)}/shm`;
}

/** Mounts the pod's /dev/shm: tmpfs, nosuid/nodev/noexec, mode 1777, `sizeBytes` large. Idempotent. */
export async function mountPodShm(runroot: string, podId: string, opts: { sizeBytes: number }): Promise<string> {
  if (!Number.isSafeInteger(opts.sizeBytes) || opts.sizeBytes <= 0) {
    throw new InvalidArgument(`Invalid /dev/shm size ${opts.sizeBytes}`);
  }
  const path = podShmPath(runroot, podId);
  await Deno.mkdir(path, { recursive: true, mode: 0o755 });
  const mounts = parseMountInfo(await Deno.readTextFile("/proc/self/mountinfo"));
  if (!mounts.some((m) => m.mountPoint === path)) {
    mount("shm", path, "tmpfs", MS.NOSUID | MS.NODEV | MS.NOEXEC, `mode=1777,size=${opts.sizeBytes}`);
  }
  return path;
}

/** Unmounts (lazily) and removes the pod's /dev/shm directory; idempotent. */
export async function unmountPodShm(runroot: string, podId: string): Promise<void> {
  const path = podShmPath(runroot, podId);
  for (let i = 0; i < 16; i++) {
    try {
      umount2(path, MNT.DETACH);
    } catch (err) {
      if (isErrno(err, "EINVAL", "ENOENT")) break;
      throw err;
    }
  }
  await Deno.remove(path).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}
