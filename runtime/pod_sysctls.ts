/**
 * Which sysctls a pod may set (pure): only namespaced ones, applied inside the pod's own namespaces. `net.*`
 * belongs to the network namespace; `kernel.sem`, `kernel.shm*`, `kernel.msg*` and `fs.mqueue.*` to the IPC
 * namespace (the kubelet's list). Everything else would change the host, and so would a namespaced sysctl of a
 * pod that shares the host's namespace.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

/** The namespace a sysctl is applied in. */
export type SysctlNamespace = "net" | "ipc";

/** One validated sysctl. */
export interface PlannedSysctl {
  /** As given (dots, or slashes when a component holds a dot, e.g. `net/ipv4/conf/eth0.100/forwarding`). */
  name: string;
  value: string;
  namespace: SysctlNamespace;
  /** The file under /proc/sys. */
  path: string;
}

const COMPONENT = /^[A-Za-z0-9_:-]+$/;
const SLASH_COMPONENT = /^[A-Za-z0-9_.:-]+$/;

/** The name's components: split on `/` when it has one (components may then hold dots), else on `.`. */
function components(name: string): string[] {
  const slash = name.includes("/");
  const parts = name.split(slash ? "/" : ".");
  const ok = slash ? SLASH_COMPONENT : COMPONENT;
  if (name.length > 256 || parts.some((p) => !ok.test(p) || p === "." || p === "..")) {
    throw new InvalidArgument(`Invalid sysctl name ${JSON.stringify(name)}`);
  }
  return parts;
}

/** The namespace that holds sysctl `name`, or undefined for a host-wide one. Throws on a malformed name. */
export function sysctlNamespace(name: string): SysctlNamespace | undefined {
  const [top, second = ""] = components(name);
  if (top === "net") return "net";
  if (top === "kernel" && (second === "sem" || second.startsWith("shm") || second.startsWith("msg"))) return "ipc";
  if (top === "fs" && second === "mqueue") return "ipc";
  return undefined;
}

/**
 * Validates a pod's sysctls and says where each goes. Refused with {@link InvalidArgument}: malformed names or
 * values (a newline or NUL, more than 4096 bytes), host-wide sysctls, UTS ones (the hostname is the pod's
 * hostname field), `net.*` with the host network and IPC ones with the host IPC namespace.
 */
export function planPodSysctls(
  sysctls: Record<string, string>,
  opts: { hostNetwork?: boolean; hostIpc?: boolean } = {},
): PlannedSysctl[] {
  const out: PlannedSysctl[] = [];
  for (const [name, value] of Object.entries(sysctls)) {
    const ns = sysctlNamespace(name);
    const q = JSON.stringify(name);
    if (/[\n\0]/.test(value) || value.length > 4096) throw new InvalidArgument(`Invalid value for sysctl ${q}`);
    if (ns === undefined) {
      const [top, second] = components(name);
      if (top === "kernel" && (second === "hostname" || second === "domainname")) {
        throw new InvalidArgument(`Sysctl ${q} is not allowed: set the pod's hostname instead`);
      }
      throw new InvalidArgument(`Sysctl ${q} is not allowed: it is not namespaced and would change the host`);
    }
    if (ns === "net" && opts.hostNetwork) {
      throw new InvalidArgument(`Sysctl ${q} is not allowed in a pod on the host network: it would change the host`);
    }
    if (ns === "ipc" && opts.hostIpc) {
      throw new InvalidArgument(`Sysctl ${q} is not allowed in a pod sharing the host IPC namespace`);
    }
    out.push({ name, value, namespace: ns, path: components(name).join("/") });
  }
  return out;
}

/** Parses `name=value` lines (the `default_sysctls` setting) into a map; later entries win. */
export function parseSysctlList(entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const i = e.indexOf("=");
    if (i <= 0) throw new InvalidArgument(`Invalid sysctl ${JSON.stringify(e)}: expected name=value`);
    out[e.slice(0, i).trim()] = e.slice(i + 1).trim();
  }
  return out;
}
