/**
 * OCI runtime spec generation, pure: a container's spec is built by applying small options to a base object, each
 * reading the plain inputs it needs. Nothing here touches the host; facts such as /etc/passwd, host devices and
 * mount propagation are passed in.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { ALL_CAPABILITIES, computeCapabilities } from "./capabilities.ts";
import { defaultSeccompProfile, type SeccompProfile } from "./seccomp.ts";
import { computeArgs, mergeEnv, type ResolvedUser, resolveUser, type UserRequest } from "./spec_user.ts";

/** The parts of an OCI spec davit writes (runtime-spec config.md / config-linux.md). */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids: number[]; umask?: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: {
      bounding: string[];
      effective: string[];
      permitted: string[];
      inheritable: string[];
      ambient: string[];
    };
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
    apparmorProfile?: string;
    selinuxLabel?: string;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: { destination: string; type?: string; source?: string; options?: string[] }[];
  annotations: Record<string, string>;
  linux: {
    namespaces: { type: string; path?: string }[];
    cgroupsPath: string;
    resources: Record<string, unknown>;
    sysctl?: Record<string, string>;
    rootfsPropagation?: string;
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp?: SeccompProfile;
    devices?: {
      path: string;
      type: string;
      major: number;
      minor: number;
      fileMode?: number;
      uid?: number;
      gid?: number;
    }[];
  };
}

/** A bind mount requested by CRI. */
export interface SpecMount {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  propagation: string;
  recursiveReadOnly: boolean;
}

/** Everything spec generation reads. */
export interface SpecInput {
  id: string;
  name: string;
  rootfs: string;
  readonlyRootfs: boolean;
  command: string[];
  args: string[];
  env: [string, string][];
  workingDir: string;
  tty: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  image: { entrypoint?: string[]; cmd?: string[]; env?: string[]; workingDir?: string; user?: string };
  user: Omit<UserRequest, "imageUser">;
  passwd?: string;
  group?: string;
  privileged: boolean;
  capabilities: { add: string[]; drop: string[] };
  defaultCapabilities: string[];
  /** Host facts: davit's own bounding set (/proc/self/status CapBnd); absent means every capability. */
  boundingCapabilities?: readonly string[];
  noNewPrivs: boolean;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  seccomp: { type: "RuntimeDefault" | "Unconfined" | "Localhost"; profile?: SeccompProfile };
  apparmor: { type: "RuntimeDefault" | "Unconfined" | "Localhost" | ""; name?: string; hostEnabled: boolean };
  oomScoreAdj?: number;
  /** davit's own oom_score_adj: a container's may not be lower (the host may refuse lowering it). */
  ownOomScoreAdj: number;
  resources: {
    cpuShares?: number;
    cpuQuota?: number;
    cpuPeriod?: number;
    cpusetCpus?: string;
    cpusetMems?: string;
    memoryLimit?: number;
    memorySwapLimit?: number;
    hugepageLimits?: { pageSize: string; limit: number }[];
    unified?: Record<string, string>;
  };
  pidsLimit?: number;
  cgroupV2: boolean;
  cgroupsPath: string;
  pod: {
    hostname: string;
    namespaces: { net?: string; ipc?: string; uts?: string };
    pidMode: "POD" | "CONTAINER" | "NODE" | "TARGET";
    /** POD: the pod's PID namespace to join, `/proc/<infra pid>/ns/pid`. */
    podPidNamespace?: string;
    /** TARGET: the target container's PID namespace to join, `/proc/<its init pid>/ns/pid`. */
    targetPidNamespace?: string;
    files?: { hostname: string; hosts: string; resolvConf: string };
    shm?: string;
    sysctls: Record<string, string>;
  };
  mounts: SpecMount[];
  /** Host facts: the propagation of each bind source's mount (shared, slave, private). */
  sourcePropagation?: (hostPath: string) => "shared" | "slave" | "private";
  /** Host facts: every host device, for privileged containers. */
  hostDevices?: OciSpec["linux"]["devices"];
}

/** One composable step of spec generation. */
export type SpecOpt = (spec: OciSpec, input: SpecInput) => void;

/** The standard masked and read-only paths of a non-privileged container. */
export const DEFAULT_MASKED_PATHS = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
]; // deno-fmt-ignore
export const DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export const withProcess: SpecOpt = (spec, input) => {
  spec.process.args = computeArgs(input.name, input, input.image);
  spec.process.env = mergeEnv(input.image.env, input.env, [["HOSTNAME", input.pod.hostname]]);
  spec.process.cwd = input.workingDir || input.image.workingDir || "/";
  spec.process.terminal = input.tty;
  spec.process.noNewPrivileges = input.noNewPrivs;
  const requested = input.oomScoreAdj ?? 0;
  spec.process.oomScoreAdj = Math.min(1000, Math.max(requested, input.ownOomScoreAdj));
};

export const withUser: SpecOpt = (spec, input) => {
  const req: UserRequest = { ...input.user };
  if (input.image.user !== undefined) req.imageUser = input.image.user;
  const u: ResolvedUser = resolveUser(req, input.passwd, input.group);
  spec.process.user = { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids };
  if (u.username && !input.env.some(([k]) => k === "HOME")) {
    const home = (input.passwd ?? "").split("\n").map((l) => l.split(":")).find((f) => f[0] === u.username)?.[5];
    if (home) spec.process.env.push(`HOME=${home}`);
  }
};

export const withCapabilities: SpecOpt = (spec, input) => {
  // Privileged and ALL mean every capability davit can grant: its own bounding set, not every name there is.
  const held = input.boundingCapabilities ?? ALL_CAPABILITIES;
  const caps = input.privileged
    ? ALL_CAPABILITIES.filter((c) => held.includes(c))
    : computeCapabilities({ defaults: input.defaultCapabilities, ...input.capabilities }, held);
  spec.process.capabilities = { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] };
};

export const withSecurity: SpecOpt = (spec, input) => {
  if (input.privileged) {
    spec.linux.maskedPaths = [];
    spec.linux.readonlyPaths = [];
  } else {
    spec.linux.maskedPaths = input.maskedPaths ?? DEFAULT_MASKED_PATHS;
    spec.linux.readonlyPaths = input.readonlyPaths ?? DEFAULT_READONLY_PATHS;
  }
  if (!input.privileged && input.seccomp.type !== "Unconfined") {
    spec.linux.seccomp = input.seccomp.type === "Localhost"
      ? input.seccomp.profile!
      : defaultSeccompProfile(spec.process.capabilities.bounding);
  }
  const aa = input.apparmor;
  if (aa.type !== "" && aa.type !== "Unconfined") {
    if (!aa.hostEnabled) {
      throw new InvalidArgument(
        `apparmor profile ${aa.type}${
          aa.name ? ` "${aa.name}"` : ""
        } requested, but AppArmor is not enabled on this host`,
      );
    }
    spec.process.apparmorProfile = aa.type === "Localhost" ? aa.name! : "davit-default";
  }
};

const PROPAGATION: Record<string, string> = {
  PROPAGATION_PRIVATE: "rprivate",
  PROPAGATION_HOST_TO_CONTAINER: "rslave",
  PROPAGATION_BIDIRECTIONAL: "rshared",
};

export const withMounts: SpecOpt = (spec, input) => {
  const base: OciSpec["mounts"] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/sys",
      type: "sysfs",
      source: "sysfs",
      options: ["nosuid", "noexec", "nodev", input.privileged ? "rw" : "ro"],
    },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["nosuid", "noexec", "nodev", "relatime", input.privileged ? "rw" : "ro"],
    },
  ]; // deno-fmt-ignore
  base.push(
    input.pod.shm
      ? { destination: "/dev/shm", type: "bind", source: input.pod.shm, options: ["rbind", "nosuid", "noexec", "nodev"] }
      : { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
  );
  const files = input.pod.files;
  if (files) {
    for (
      const [dest, src] of [["/etc/hostname", files.hostname], ["/etc/hosts", files.hosts], [
        "/etc/resolv.conf",
        files.resolvConf,
      ]]
    ) {
      base.push({
        destination: dest!,
        type: "bind",
        source: src!,
        options: ["rbind", "rprivate", input.readonlyRootfs ? "ro" : "rw"],
      });
    }
  }
  const requested = [...input.mounts].sort((a, b) =>
    a.containerPath.split("/").length - b.containerPath.split("/").length
  );
  const byDest = new Map(base.map((m) => [m.destination, m]));
  for (const m of requested) {
    const prop = PROPAGATION[m.propagation] ?? "rprivate";
    const hostProp = input.sourcePropagation?.(m.hostPath) ?? "private";
    if (prop === "rshared" && hostProp !== "shared") {
      throw new InvalidArgument(
        `mount ${m.hostPath}: BIDIRECTIONAL propagation needs a shared host mount, and it is ${hostProp}`,
      );
    }
    if (prop === "rslave" && hostProp === "private") {
      throw new InvalidArgument(
        `mount ${m.hostPath}: HOST_TO_CONTAINER propagation needs a shared or slave host mount, and it is private`,
      );
    }
    const options = ["rbind", prop, m.readonly ? "ro" : "rw"];
    if (m.recursiveReadOnly) {
      if (!m.readonly) throw new InvalidArgument(`mount ${m.containerPath}: recursive_read_only needs readonly`);
      options.push("rro");
    }
    byDest.delete(m.containerPath);
    byDest.set(m.containerPath, { destination: m.containerPath, type: "bind", source: m.hostPath, options });
  }
  spec.mounts = [...byDest.values()];
  // A bind's propagation only reaches the host if the container's root mount passes it on: runc makes the root
  // rslave unless told otherwise, which stops BIDIRECTIONAL mounts propagating back (config-linux.md, "Rootfs
  // Mount Propagation").
  const props = input.mounts.map((m) => m.propagation);
  if (props.includes("PROPAGATION_BIDIRECTIONAL")) spec.linux.rootfsPropagation = "rshared";
  else if (props.includes("PROPAGATION_HOST_TO_CONTAINER")) spec.linux.rootfsPropagation = "rslave";
};

export const withNamespaces: SpecOpt = (spec, input) => {
  const ns: OciSpec["linux"]["namespaces"] = [{ type: "mount" }];
  const p = input.pod.namespaces;
  // A missing pod path means the host's namespace (host network / host IPC): nothing to join or create.
  if (p.net) ns.push({ type: "network", path: p.net });
  if (p.ipc) ns.push({ type: "ipc", path: p.ipc });
  if (p.uts) ns.push({ type: "uts", path: p.uts });
  switch (input.pod.pidMode) {
    case "CONTAINER":
      ns.push({ type: "pid" });
      break;
    case "POD":
      // A pod's shared PID namespace is its infra process's: without its path there is nothing to share.
      if (!input.pod.podPidNamespace) {
        throw new InvalidArgument("namespace_options.pid POD needs the pod's PID namespace (its infra process)");
      }
      ns.push({ type: "pid", path: input.pod.podPidNamespace });
      break;
    case "TARGET":
      if (!input.pod.targetPidNamespace) throw new InvalidArgument("namespace_options.pid TARGET needs target_id");
      ns.push({ type: "pid", path: input.pod.targetPidNamespace });
      break;
    case "NODE":
      break;
  }
  if (input.cgroupV2) ns.push({ type: "cgroup" });
  spec.linux.namespaces = ns;
  if (p.uts) spec.hostname = input.pod.hostname;
};

export const withResources: SpecOpt = (spec, input) => {
  const r = input.resources;
  const res: Record<string, unknown> = {
    devices: [
      { allow: false, access: "rwm" },
      ...(input.privileged ? [{ allow: true, access: "rwm" }] : [
        ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2], [136, -1]].map(([major, minor]) => ({
          allow: true,
          type: "c",
          major,
          ...(minor! >= 0 ? { minor } : {}),
          access: "rwm",
        })),
      ]),
    ],
  }; // deno-fmt-ignore
  const cpu: Record<string, unknown> = {};
  if (r.cpuShares) cpu.shares = r.cpuShares;
  if (r.cpuQuota) cpu.quota = r.cpuQuota;
  if (r.cpuPeriod) cpu.period = r.cpuPeriod;
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r.cpusetMems) cpu.mems = r.cpusetMems;
  if (Object.keys(cpu).length) res.cpu = cpu;
  if (r.memoryLimit) {
    res.memory = { limit: r.memoryLimit, ...(r.memorySwapLimit ? { swap: r.memorySwapLimit } : {}) };
  }
  if (r.hugepageLimits?.length) res.hugepageLimits = r.hugepageLimits;
  if (r.unified && Object.keys(r.unified).length) {
    if (!input.cgroupV2) {
      throw new InvalidArgument("resources.unified needs cgroup v2; this host uses cgroup v1 controllers");
    }
    res.unified = r.unified;
  }
  if (input.pidsLimit && input.pidsLimit > 0) res.pids = { limit: input.pidsLimit };
  spec.linux.resources = res;
  spec.linux.cgroupsPath = input.cgroupsPath;
  if (input.privileged && input.hostDevices) spec.linux.devices = input.hostDevices;
};

export const withSysctls: SpecOpt = (spec, input) => {
  if (Object.keys(input.pod.sysctls).length) spec.linux.sysctl = { ...input.pod.sysctls };
};

export const withRoot: SpecOpt = (spec, input) => {
  spec.root = { path: input.rootfs, readonly: input.readonlyRootfs };
  spec.annotations = {
    ...input.annotations,
    "io.davit.container.name": input.name,
    "io.davit.container.id": input.id,
  };
};

/** The default option list, in order. */
export const DEFAULT_SPEC_OPTS: readonly SpecOpt[] = [
  withRoot,
  withProcess,
  withUser,
  withCapabilities,
  withSecurity,
  withMounts,
  withNamespaces,
  withResources,
  withSysctls,
];

/** Builds the OCI runtime spec of a container. */
export function generateSpec(input: SpecInput, opts: readonly SpecOpt[] = DEFAULT_SPEC_OPTS): OciSpec {
  const spec: OciSpec = {
    // The version runc 1.1 writes itself; crun 1.8 refuses "1.2.0" ("unknown version specified").
    ociVersion: "1.0.2-dev",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0, additionalGids: [] },
      args: [],
      env: [],
      cwd: "/",
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      // No rlimits: the container inherits davit's (raising them needs CAP_SYS_RESOURCE, which hosts may withhold).
      rlimits: [],
      noNewPrivileges: false,
    },
    root: { path: "", readonly: false },
    mounts: [],
    annotations: {},
    linux: { namespaces: [], cgroupsPath: "", resources: {}, maskedPaths: [], readonlyPaths: [] },
  };
  for (const opt of opts) opt(spec, input);
  return spec;
}
