/**
 * What one plugin invocation receives (SPEC.md sections 2 and 3, CONVENTIONS.md): the request configuration
 * derived from the network list (name, cniVersion, runtimeConfig from declared capabilities, prevResult), the
 * CNI_* environment and the Kubernetes CNI_ARGS. Pure.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { NAME_PATTERN, type NetworkConfigList } from "./cni_config.ts";
import { parseCidr, parseIp } from "./ip.ts";

/** The CNI commands davit issues. */
export type CniCommand = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";

/** A pod port mapping as the CRI gives it (protocol in any case; hostPort 0 means "not published"). */
export interface PortMappingInput {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

/** The `portMappings` capability entry (CONVENTIONS.md). */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp" | "sctp";
  hostIP?: string;
}

/** The `bandwidth` capability: rates in bits per second, bursts in bits (CONVENTIONS.md). */
export interface BandwidthLimits {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** The `dns` capability (CONVENTIONS.md). */
export interface DnsCapability {
  servers?: string[];
  searches?: string[];
  options?: string[];
}

/** Capability arguments offered by the runtime; a plugin receives those it declares in `capabilities`. */
export interface CapabilityArgs {
  portMappings?: PortMapping[];
  bandwidth?: BandwidthLimits;
  ipRanges?: { subnet: string }[][];
  dns?: DnsCapability;
  cgroupPath?: string;
}

/** The per-attachment parameters (SPEC.md "Attachment Parameters"). */
export interface Attachment {
  containerId: string;
  /** Namespace path; "" on DEL when the namespace is gone (CNI_NETNS is optional for DEL). */
  netns: string;
  ifname: string;
  cniArgs: [string, string][];
  capabilityArgs: CapabilityArgs;
}

/** What the runtime knows about a pod that matters to CNI. */
export interface PodIdentity {
  id: string;
  name: string;
  namespace: string;
  uid: string;
}

/** The pod's network-relevant settings turned into capability arguments. */
export interface PodCapabilityInput {
  portMappings?: readonly PortMappingInput[];
  bandwidth?: BandwidthLimits;
  dns?: DnsCapability;
  cgroupPath?: string;
}

const PROTOCOLS = new Set(["tcp", "udp", "sctp"]);

/** Validates a container ID or network name against the spec's pattern. */
export function checkCniName(what: string, value: string): void {
  if (!NAME_PATTERN.test(value)) {
    throw new InvalidArgument(`${what} ${JSON.stringify(value)} must match ${NAME_PATTERN.source} (CNI SPEC.md)`);
  }
}

/** Converts CRI port mappings: published ones only (hostPort > 0), protocol lower-case, empty hostIP dropped. */
export function portMappings(input: readonly PortMappingInput[]): PortMapping[] {
  const out: PortMapping[] = [];
  for (const [i, m] of input.entries()) {
    if (!(m.hostPort > 0)) continue;
    const protocol = (m.protocol ?? "tcp").toLowerCase();
    if (!PROTOCOLS.has(protocol)) {
      throw new InvalidArgument(`port mapping ${i}: unknown protocol ${JSON.stringify(m.protocol)}`);
    }
    for (const [k, v] of [["hostPort", m.hostPort], ["containerPort", m.containerPort]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 65535) {
        throw new InvalidArgument(`port mapping ${i}: ${k} ${v} is not a port`);
      }
    }
    const mapping: PortMapping = {
      hostPort: m.hostPort,
      containerPort: m.containerPort,
      protocol: protocol as PortMapping["protocol"],
    };
    if (m.hostIP) {
      if (!parseIp(m.hostIP)) {
        throw new InvalidArgument(`port mapping ${i}: hostIP ${JSON.stringify(m.hostIP)} is not an IP address`);
      }
      mapping.hostIP = m.hostIP;
    }
    out.push(mapping);
  }
  return out;
}

/** Splits and validates a CRI pod CIDR (comma-separated for dual stack); "" means none. */
export function parsePodCidrs(text: string): string[] {
  const cidrs = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const c of cidrs) {
    if (!parseCidr(c)) throw new InvalidArgument(`pod CIDR ${JSON.stringify(c)} is not in CIDR notation`);
  }
  return cidrs;
}

/** The capability arguments davit offers for a pod; empty ones are left out. */
export function capabilityArgs(pod: PodCapabilityInput, podCidrs: readonly string[]): CapabilityArgs {
  const args: CapabilityArgs = {};
  const ports = portMappings(pod.portMappings ?? []);
  if (ports.length > 0) args.portMappings = ports;
  if (pod.bandwidth && Object.values(pod.bandwidth).some((v) => v !== undefined)) args.bandwidth = { ...pod.bandwidth };
  // One outer entry per CIDR: host-local allocates one address from each (dual stack).
  if (podCidrs.length > 0) args.ipRanges = podCidrs.map((subnet) => [{ subnet }]);
  if (pod.dns && (pod.dns.servers?.length || pod.dns.searches?.length || pod.dns.options?.length)) {
    args.dns = structuredClone(pod.dns);
  }
  if (pod.cgroupPath) args.cgroupPath = pod.cgroupPath;
  return args;
}

/** The Kubernetes CNI_ARGS pairs for a pod, `IgnoreUnknown=1` first so plugins accept keys they do not know. */
export function kubernetesCniArgs(pod: PodIdentity): [string, string][] {
  const pairs: [string, string][] = [
    ["IgnoreUnknown", "1"],
    ["K8S_POD_NAMESPACE", pod.namespace],
    ["K8S_POD_NAME", pod.name],
    ["K8S_POD_INFRA_CONTAINER_ID", pod.id],
    ["K8S_POD_UID", pod.uid],
  ];
  for (const [k, v] of pairs) {
    if (/[;=\0]/.test(v)) {
      throw new InvalidArgument(`CNI_ARGS ${k} ${JSON.stringify(v)} must not contain ";", "=" or NUL`);
    }
  }
  return pairs;
}

/** Renders CNI_ARGS: `K=V` pairs joined by `;`. */
export function formatCniArgs(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([k, v]) => `${k}=${v}`).join(";");
}

/** Options for {@link pluginRequest}. */
export interface PluginRequestOptions {
  command: CniCommand;
  /** The protocol version selected for the list. */
  version: string;
  prevResult?: Record<string, unknown>;
  capabilityArgs?: CapabilityArgs;
  /** GC only: the attachments that are still valid. */
  validAttachments?: { containerID: string; ifname: string }[];
}

/**
 * Derives the request configuration for plugin `index` of `list` (SPEC.md "Deriving request configuration"):
 * the plugin object with `name` and `cniVersion` from the list, `capabilities` removed, `runtimeConfig` holding the
 * capability arguments it declared (merged over any it already had), `prevResult` when given, and `cni.dev/` keys
 * reserved for the runtime.
 */
export function pluginRequest(
  list: NetworkConfigList,
  index: number,
  opts: PluginRequestOptions,
): Record<string, unknown> {
  const plugin = list.plugins[index];
  if (!plugin) throw new RangeError(`network ${list.name} has no plugin ${index}`);
  const conf: Record<string, unknown> = structuredClone(plugin);
  for (const key of Object.keys(conf)) if (key.startsWith("cni.dev/")) delete conf[key];
  delete conf.capabilities;
  delete conf.prevResult;
  conf.cniVersion = opts.version;
  conf.name = list.name;
  if (opts.command === "ADD" || opts.command === "DEL" || opts.command === "CHECK") {
    const runtimeConfig: Record<string, unknown> = typeof conf.runtimeConfig === "object" && conf.runtimeConfig !== null
      ? { ...conf.runtimeConfig as Record<string, unknown> }
      : {};
    const offered = (opts.capabilityArgs ?? {}) as Record<string, unknown>;
    for (const [cap, wanted] of Object.entries(plugin.capabilities ?? {})) {
      if (wanted && offered[cap] !== undefined) runtimeConfig[cap] = structuredClone(offered[cap]);
    }
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    else delete conf.runtimeConfig;
    if (opts.prevResult) conf.prevResult = opts.prevResult;
  } else {
    delete conf.runtimeConfig;
  }
  if (opts.command === "GC") conf["cni.dev/valid-attachments"] = opts.validAttachments ?? [];
  return conf;
}

/**
 * The plugin's whole environment (the runtime clears everything else): the CNI_* parameters each command needs
 * (SPEC.md section 2) plus PATH, which plugins need to find iptables and friends.
 */
export function pluginEnv(
  command: CniCommand,
  opts: { attachment?: Attachment; pluginDirs: readonly string[]; path: string },
): Record<string, string> {
  const env: Record<string, string> = { CNI_COMMAND: command, PATH: opts.path };
  if (command !== "VERSION") env.CNI_PATH = opts.pluginDirs.join(":");
  if (command === "ADD" || command === "DEL" || command === "CHECK") {
    const a = opts.attachment;
    if (!a) throw new RangeError(`${command} needs attachment parameters`);
    env.CNI_CONTAINERID = a.containerId;
    // CNI_NETNS is optional for DEL (SPEC.md section 2): a namespace that is gone is not mentioned at all.
    if (a.netns !== "" || command !== "DEL") env.CNI_NETNS = a.netns;
    env.CNI_IFNAME = a.ifname;
    env.CNI_ARGS = formatCniArgs(a.cniArgs);
  }
  return env;
}
