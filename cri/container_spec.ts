/**
 * From a validated CreateContainer request, its pod and its image to the plain inputs of runtime/'s spec
 * generation, reading the few host facts it needs (a Localhost seccomp profile, davit's own oom_score_adj, the
 * cgroup layout, mount propagation of bind sources, the PID namespace a pid POD or TARGET container joins).
 * @module
 */
import type { Config } from "../lib/config.ts";
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { parseImageConfig } from "../image/mod.ts";
import {
  capabilitiesFromMask,
  generateSpec,
  parseMountInfo,
  readCgroupLayout,
  type SeccompProfile,
  type SpecInput,
} from "../runtime/mod.ts";
import type { ContainerRuntime, SpecBuilder, SpecContext } from "./containers.ts";
import type { Message } from "./grpc_server.ts";
import type { PidNamespaces } from "./pid_namespace.ts";
import { apparmorChoice, seccompChoice } from "./security_profile.ts";

async function ownOomScoreAdj(): Promise<number> {
  const text = await Deno.readTextFile("/proc/self/oom_score_adj").catch(() => "0");
  return Number(text.trim()) || 0;
}

/** davit's own bounding set (/proc/self/status CapBnd): no container can be given more. */
export async function ownBoundingCapabilities(): Promise<string[]> {
  const status = await Deno.readTextFile("/proc/self/status");
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (hex === undefined) throw new Error("/proc/self/status has no CapBnd line");
  return capabilitiesFromMask(hex);
}

async function loadProfile(path: string, where: string): Promise<SeccompProfile> {
  if (!path.startsWith("/")) throw new InvalidArgument(`${where} ${JSON.stringify(path)} must be an absolute path`);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new FailedPrecondition(`${where}: cannot read seccomp profile ${path}: ${(err as Error).message}`);
  }
  try {
    const p = JSON.parse(text);
    if (typeof p?.defaultAction !== "string") throw new Error('no "defaultAction"');
    return p as SeccompProfile;
  } catch (err) {
    throw new InvalidArgument(`${where}: seccomp profile ${path} is not valid: ${(err as Error).message}`);
  }
}

function propagationOf(mountinfo: string): (hostPath: string) => "shared" | "slave" | "private" {
  const mounts = parseMountInfo(mountinfo);
  return (hostPath) => {
    // The mount that holds the path: the longest mount point that is a prefix of it.
    let best: (typeof mounts)[number] | undefined;
    for (const m of mounts) {
      const mp = m.mountPoint;
      if (
        (hostPath === mp || hostPath.startsWith(mp.endsWith("/") ? mp : `${mp}/`)) &&
        (!best || mp.length >= best.mountPoint.length)
      ) best = m;
    }
    if (!best) return "private";
    if (best.optional.some((o) => o.startsWith("shared:"))) return "shared";
    if (best.optional.some((o) => o.startsWith("master:"))) return "slave";
    return "private";
  };
}

/** What the spec builder reads besides the configuration. */
export interface SpecBuilderOptions {
  /** Where pid POD and TARGET containers' PID namespaces come from; without it both modes are refused. */
  pidNamespaces?: PidNamespaces;
  /** davit's bounding set; read from /proc/self/status once, at the first container, when not given. */
  boundingCapabilities?: readonly string[];
}

/** The spec builder for a daemon configuration. */
export function specBuilder(config: Config, opts: SpecBuilderOptions = {}): SpecBuilder {
  // The bounding set of a process does not grow, so one read serves the daemon's lifetime.
  let bounding: Promise<readonly string[]> | undefined = opts.boundingCapabilities
    ? Promise.resolve(opts.boundingCapabilities)
    : undefined;
  return async (ctx: SpecContext) => {
    bounding ??= ownBoundingCapabilities();
    const c = ctx.container;
    const linux: Message = c.linux ?? {};
    const sc: Message = linux.security_context ?? {};
    const res: Message = linux.resources ?? {};
    const img = parseImageConfig(ctx.imageConfig);
    const choice = seccompChoice(sc);
    let seccomp: SpecInput["seccomp"];
    if (choice.type === "Localhost") {
      seccomp = { type: "Localhost", profile: await loadProfile(choice.path, choice.field) };
    } else if (choice.type === "Unconfined") seccomp = { type: "Unconfined" };
    else if (config.davit.runtime.seccomp_profile) {
      seccomp = {
        type: "Localhost",
        profile: await loadProfile(config.davit.runtime.seccomp_profile, "seccomp_profile"),
      };
    } else seccomp = { type: "RuntimeDefault" };
    for (const m of c.mounts) {
      if (!(await Deno.lstat(m.hostPath).then(() => true, () => false))) {
        throw new InvalidArgument(`config.mounts: host path ${m.hostPath} does not exist`);
      }
    }
    const layout = await readCgroupLayout();
    const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
    const pod = ctx.pod.runtime;
    const nsOpts: Message = sc.namespace_options ?? {};
    const pidMode = (nsOpts.pid as SpecInput["pod"]["pidMode"] | undefined) ?? "CONTAINER";
    let podPidNamespace: string | undefined, targetPidNamespace: string | undefined;
    if (pidMode === "POD" || pidMode === "TARGET") {
      if (!opts.pidNamespaces) {
        throw new InvalidArgument(`linux.security_context.namespace_options.pid ${pidMode} is not supported here`);
      }
      if (pidMode === "POD") podPidNamespace = await opts.pidNamespaces.pod(ctx.pod);
      else targetPidNamespace = await opts.pidNamespaces.target(ctx.pod, String(nsOpts.target_id ?? ""));
    }
    // Each list on its own: proto3 cannot tell an empty list from an absent one, so an empty list means davit's
    // default list (the kubelet sends the defaults explicitly for procMount Default; Unmasked, which sends both
    // empty, is not distinguishable and gets the defaults).
    const masked: string[] = sc.masked_paths ?? [];
    const readonly: string[] = sc.readonly_paths ?? [];
    const aa = apparmorChoice(sc);
    const input: SpecInput = {
      id: ctx.id,
      name: c.name,
      rootfs: ctx.rootfsPath,
      readonlyRootfs: Boolean(sc.readonly_rootfs),
      command: c.command,
      args: c.args,
      env: c.env,
      workingDir: c.workingDir,
      tty: c.tty,
      labels: c.labels,
      annotations: c.annotations,
      image: {
        ...(img.entrypoint ? { entrypoint: img.entrypoint } : {}),
        ...(img.cmd ? { cmd: img.cmd } : {}),
        ...(img.env ? { env: img.env } : {}),
        ...(img.workingDir ? { workingDir: img.workingDir } : {}),
        ...(img.user ? { user: img.user } : {}),
      },
      user: {
        ...(sc.run_as_user ? { runAsUser: Number(sc.run_as_user.value) } : {}),
        ...(sc.run_as_username ? { runAsUsername: String(sc.run_as_username) } : {}),
        ...(sc.run_as_group ? { runAsGroup: Number(sc.run_as_group.value) } : {}),
        supplementalGroups: (sc.supplemental_groups ?? []).map(Number),
        policy: sc.supplemental_groups_policy === "Strict" ? "Strict" : "Merge",
      },
      ...(ctx.passwd !== undefined ? { passwd: ctx.passwd } : {}),
      ...(ctx.group !== undefined ? { group: ctx.group } : {}),
      privileged: Boolean(sc.privileged),
      capabilities: { add: sc.capabilities?.add_capabilities ?? [], drop: sc.capabilities?.drop_capabilities ?? [] },
      defaultCapabilities: config.davit.runtime.default_capabilities,
      boundingCapabilities: await bounding,
      noNewPrivs: Boolean(sc.no_new_privs),
      ...(masked.length ? { maskedPaths: masked } : {}),
      ...(readonly.length ? { readonlyPaths: readonly } : {}),
      seccomp,
      apparmor: {
        ...aa,
        hostEnabled: await Deno.stat("/sys/kernel/security/apparmor").then(() => true, () => false),
      },
      ...(res.oom_score_adj ? { oomScoreAdj: Number(res.oom_score_adj) } : {}),
      ownOomScoreAdj: await ownOomScoreAdj(),
      resources: {
        ...(res.cpu_shares ? { cpuShares: Number(res.cpu_shares) } : {}),
        ...(res.cpu_quota ? { cpuQuota: Number(res.cpu_quota) } : {}),
        ...(res.cpu_period ? { cpuPeriod: Number(res.cpu_period) } : {}),
        ...(res.cpuset_cpus ? { cpusetCpus: res.cpuset_cpus } : {}),
        ...(res.cpuset_mems ? { cpusetMems: res.cpuset_mems } : {}),
        ...(res.memory_limit_in_bytes ? { memoryLimit: Number(res.memory_limit_in_bytes) } : {}),
        ...(res.memory_swap_limit_in_bytes ? { memorySwapLimit: Number(res.memory_swap_limit_in_bytes) } : {}),
        ...(res.hugepage_limits?.length
          ? {
            hugepageLimits: res.hugepage_limits.map((h: Message) => ({
              pageSize: h.page_size,
              limit: Number(h.limit),
            })),
          }
          : {}),
        ...(res.unified && Object.keys(res.unified).length ? { unified: res.unified } : {}),
      },
      cgroupV2: layout.kind === "v2",
      cgroupsPath: ctx.cgroupsPath,
      pod: {
        hostname: pod.spec.hostname,
        namespaces: pod.namespaces ?? {},
        pidMode,
        ...(podPidNamespace ? { podPidNamespace } : {}),
        ...(targetPidNamespace ? { targetPidNamespace } : {}),
        ...(pod.files ? { files: pod.files } : {}),
        ...(pod.shm ? { shm: pod.shm } : {}),
        sysctls: pod.spec.sysctls,
      },
      mounts: c.mounts,
      sourcePropagation: propagationOf(mountinfo),
    };
    const spec = generateSpec(input);
    const user: ContainerRuntime["user"] = {
      uid: spec.process.user.uid,
      gid: spec.process.user.gid,
      additionalGids: spec.process.user.additionalGids,
    };
    return { spec: spec as unknown as Record<string, unknown>, user };
  };
}

type Spec = {
  process?: { oomScoreAdj?: number };
  linux?: {
    resources?: {
      cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
      memory?: { limit?: number; swap?: number };
      hugepageLimits?: { pageSize: string; limit: number }[];
      unified?: Record<string, string>;
    };
  };
};

/** The CRI `LinuxContainerResources` of what the OCI spec applies (zero values for what it leaves unset). */
export function resourcesFromSpec(spec: Spec): Record<string, unknown> {
  const r = spec.linux?.resources ?? {};
  return {
    linux: {
      cpu_period: r.cpu?.period ?? 0,
      cpu_quota: r.cpu?.quota ?? 0,
      cpu_shares: r.cpu?.shares ?? 0,
      memory_limit_in_bytes: r.memory?.limit ?? 0,
      oom_score_adj: spec.process?.oomScoreAdj ?? 0,
      cpuset_cpus: r.cpu?.cpus ?? "",
      cpuset_mems: r.cpu?.mems ?? "",
      hugepage_limits: (r.hugepageLimits ?? []).map((h) => ({ page_size: h.pageSize, limit: h.limit })),
      unified: r.unified ?? {},
      memory_swap_limit_in_bytes: r.memory?.swap ?? 0,
    },
  };
}
