/**
 * Validation of a RunPodSandbox request into the plain pod description the rest of davit works with. Every
 * refusal is INVALID_ARGUMENT naming the field and the value.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import type { Message } from "./grpc_server.ts";

/** Namespace sharing modes of CRI's NamespaceOption. */
export type NamespaceMode = "POD" | "CONTAINER" | "NODE" | "TARGET";

/** A validated pod. */
export interface PodSpec {
  name: string;
  namespace: string;
  uid: string;
  attempt: number;
  hostname: string;
  logDirectory: string;
  dns?: { servers: string[]; searches: string[]; options: string[] };
  portMappings: { protocol: string; containerPort: number; hostPort: number; hostIp: string }[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  cgroupParent: string;
  sysctls: Record<string, string>;
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
  privileged: boolean;
  /** From the `kubernetes.io/ingress-bandwidth` and `egress-bandwidth` annotations, in bits per second. */
  bandwidth?: { ingressRate?: number; egressRate?: number };
}

const QUANTITY = /^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/;
const FACTORS: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** A Kubernetes quantity such as "10M" (bits per second for the bandwidth annotations). */
export function parseQuantity(text: string, where: string): number {
  const m = QUANTITY.exec(text.trim());
  if (!m) throw new InvalidArgument(`${where} ${JSON.stringify(text)} is not a quantity such as "10M"`);
  return Math.round(Number(m[1]) * FACTORS[m[2] ?? ""]!);
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/**
 * The log directory of a pod that names none (`<log_dir>/<namespace>_<name>_<uid>`, the kubelet's own layout):
 * CreateContainer writes there, RemovePodSandbox removes it.
 */
export function defaultPodLogDir(logDir: string, spec: Pick<PodSpec, "namespace" | "name" | "uid">): string {
  return `${logDir}/${spec.namespace}_${spec.name}_${spec.uid}`;
}

/** The name under which a pod is reserved: a retried RunPodSandbox finds the first attempt's pod by it. */
export function podReservedName(spec: Pick<PodSpec, "name" | "namespace" | "uid" | "attempt">): string {
  return `${spec.name}_${spec.namespace}_${spec.uid}_${spec.attempt}`;
}

/** Checks a RunPodSandboxRequest's config. */
export function validatePodConfig(config: Message | null | undefined): PodSpec {
  if (!config) throw new InvalidArgument("config is required");
  const md = config.metadata;
  if (!md) throw new InvalidArgument("config.metadata is required");
  for (const f of ["name", "namespace", "uid"] as const) {
    if (str(md[f]).trim() === "") throw new InvalidArgument(`config.metadata.${f} is empty`);
    if (/[\s/\0]/.test(str(md[f]))) {
      throw new InvalidArgument(`config.metadata.${f} ${JSON.stringify(md[f])} contains whitespace, "/" or NUL`);
    }
  }
  const hostname = str(config.hostname) || str(md.name).toLowerCase().slice(0, 63);
  if (hostname.length > 253 || !hostname.split(".").every((l) => DNS_LABEL.test(l))) {
    throw new InvalidArgument(`config.hostname ${JSON.stringify(hostname)} is not a valid host name`);
  }
  const logDirectory = str(config.log_directory);
  if (logDirectory !== "" && (!logDirectory.startsWith("/") || logDirectory.split("/").includes(".."))) {
    throw new InvalidArgument(
      `config.log_directory ${JSON.stringify(logDirectory)} must be an absolute path without ".."`,
    );
  }
  const portMappings = (config.port_mappings ?? []).map((p: Message, i: number) => {
    const where = `config.port_mappings[${i}]`;
    const containerPort = Number(p.container_port ?? 0), hostPort = Number(p.host_port ?? 0);
    if (!(containerPort >= 1 && containerPort <= 65535)) {
      throw new InvalidArgument(`${where}.container_port ${containerPort} is not a port`);
    }
    if (!(hostPort >= 0 && hostPort <= 65535)) {
      throw new InvalidArgument(`${where}.host_port ${hostPort} is not a port`);
    }
    return { protocol: str(p.protocol) || "TCP", containerPort, hostPort, hostIp: str(p.host_ip) };
  });
  const linux = config.linux ?? {};
  const sc = linux.security_context ?? {};
  const ns = sc.namespace_options ?? {};
  const mode = (v: unknown): NamespaceMode => (typeof v === "string" ? v : "POD") as NamespaceMode;
  const spec: PodSpec = {
    name: str(md.name),
    namespace: str(md.namespace),
    uid: str(md.uid),
    attempt: Number(md.attempt ?? 0),
    hostname,
    logDirectory,
    portMappings,
    labels: { ...(config.labels ?? {}) },
    annotations: { ...(config.annotations ?? {}) },
    cgroupParent: str(linux.cgroup_parent),
    sysctls: { ...(linux.sysctls ?? {}) },
    network: mode(ns.network),
    // Without any namespace_options the pod's processes do not share a PID namespace (what the kubelet asks for a
    // pod without shareProcessNamespace): only a pod that asks for pid POD pays for an infra process.
    pid: sc.namespace_options ? mode(ns.pid) : "CONTAINER",
    ipc: mode(ns.ipc),
    privileged: Boolean(sc.privileged),
  };
  if (spec.network !== "POD" && spec.network !== "NODE") {
    throw new InvalidArgument(
      `config.linux.security_context.namespace_options.network ${spec.network} is not POD or NODE`,
    );
  }
  if (spec.ipc !== "POD" && spec.ipc !== "NODE") {
    throw new InvalidArgument(`config.linux.security_context.namespace_options.ipc ${spec.ipc} is not POD or NODE`);
  }
  if (spec.pid === "TARGET") {
    throw new InvalidArgument("config.linux.security_context.namespace_options.pid TARGET is for containers, not pods");
  }
  if (spec.cgroupParent !== "" && (spec.cgroupParent.split("/").includes("..") || /[\0\n]/.test(spec.cgroupParent))) {
    throw new InvalidArgument(`config.linux.cgroup_parent ${JSON.stringify(spec.cgroupParent)} is not a cgroup path`);
  }
  if (ns.userns_options && ns.userns_options.mode && ns.userns_options.mode !== "NODE") {
    throw new InvalidArgument(
      "config.linux.security_context.namespace_options.userns_options: user namespaces are not supported yet",
    );
  }
  for (
    const [key, field] of [["kubernetes.io/ingress-bandwidth", "ingressRate"], [
      "kubernetes.io/egress-bandwidth",
      "egressRate",
    ]] as const
  ) {
    const v = spec.annotations[key];
    if (v !== undefined) {
      spec.bandwidth ??= {};
      spec.bandwidth[field] = parseQuantity(v, `config.annotations["${key}"]`);
    }
  }
  const dns = config.dns_config;
  if (dns && (dns.servers?.length || dns.searches?.length || dns.options?.length)) {
    spec.dns = {
      servers: [...(dns.servers ?? [])],
      searches: [...(dns.searches ?? [])],
      options: [...(dns.options ?? [])],
    };
  }
  return spec;
}
