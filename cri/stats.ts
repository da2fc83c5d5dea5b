/**
 * What the four stats RPCs share: the CPU rate cache (usage_nano_cores needs two readings), the filters, and the
 * making of ContainerStats and PodSandboxStats messages from cgroup readings and writable-layer usage. A container
 * or pod whose cgroup is gone (it exited) gets its attributes and timestamps, and whatever could still be read.
 */
import { type CgroupStats, cgroupStats, type ContainerRecord, type PodRecord } from "../runtime/mod.ts";
import { errorMessage } from "../lib/errors.ts";
import type { ContainerRuntime } from "./containers.ts";
import type { Daemon } from "./daemon.ts";
import type { Message } from "./grpc_server.ts";
import type { PodRuntime } from "./pods.ts";
import { labelsMatch } from "./pod_list.ts";
import { podMetadata } from "./pod_status.ts";

/** One reading of a cgroup's cumulative CPU time, and when it was taken (both nanoseconds). */
export interface CpuSample {
  usageNs: bigint;
  atNs: bigint;
}

/**
 * CPU use between two readings in nano cores (1e9 = one core busy all the time), or undefined without an earlier
 * reading, when time did not advance, or when usage went backwards (the cgroup was replaced).
 */
export function nanoCores(prev: CpuSample | undefined, cur: CpuSample): bigint | undefined {
  if (!prev) return undefined;
  const dt = cur.atNs - prev.atNs;
  const du = cur.usageNs - prev.usageNs;
  if (dt <= 0n || du < 0n) return undefined;
  return (du * 1_000_000_000n) / dt;
}

/** The previous CPU reading per container or pod, bounded (least recently read go first). */
export class CpuSamples {
  readonly #last = new Map<string, CpuSample>();
  readonly #max: number;

  constructor(opts: { max?: number } = {}) {
    this.#max = opts.max ?? 8192;
  }

  /** Records `cur` under `key` and returns the rate since the previous reading there, if any. */
  rate(key: string, cur: CpuSample): bigint | undefined {
    const prev = this.#last.get(key);
    this.#last.delete(key);
    this.#last.set(key, cur);
    while (this.#last.size > this.#max) this.#last.delete(this.#last.keys().next().value!);
    return nanoCores(prev, cur);
  }

  /** How many readings are kept. */
  get size(): number {
    return this.#last.size;
  }
}

/** ContainerStatsFilter as decoded (empty strings and maps match everything). */
export interface ContainerStatsFilter {
  id?: string;
  pod_sandbox_id?: string;
  label_selector?: Record<string, string>;
}

/** PodSandboxStatsFilter as decoded. */
export interface PodStatsFilter {
  id?: string;
  label_selector?: Record<string, string>;
}

/** True when a container passes the filter: ID and pod ID by prefix (as ListContainers), labels all equal. */
export function containerMatches(
  c: { id: string; podId: string; labels: Record<string, string> },
  f: ContainerStatsFilter | null | undefined,
): boolean {
  return (!f?.id || c.id.startsWith(f.id)) && (!f?.pod_sandbox_id || c.podId.startsWith(f.pod_sandbox_id)) &&
    labelsMatch(c.labels, f?.label_selector);
}

/** True when a pod passes the filter. */
export function podMatches(p: { id: string; labels: Record<string, string> }, f: PodStatsFilter | null | undefined) {
  return (!f?.id || p.id.startsWith(f.id)) && labelsMatch(p.labels, f?.label_selector);
}

const u64 = (v: bigint | number) => ({ value: String(v) });

/** CpuUsage and MemoryUsage from a cgroup reading; the rate is recorded in `samples` under `key` (pure but that). */
export function usageMessages(
  st: CgroupStats,
  at: bigint,
  key: string,
  samples: CpuSamples,
): { cpu: Message; memory: Message } {
  const timestamp = String(at);
  const cpu: Message = { timestamp };
  if (st.cpuUsageNs !== undefined) {
    cpu.usage_core_nano_seconds = u64(st.cpuUsageNs);
    const rate = samples.rate(key, { usageNs: st.cpuUsageNs, atNs: at });
    if (rate !== undefined) cpu.usage_nano_cores = u64(rate);
  }
  const memory: Message = { timestamp };
  if (st.memoryWorkingSetBytes !== undefined) memory.working_set_bytes = u64(st.memoryWorkingSetBytes);
  if (st.memoryUsageBytes !== undefined) memory.usage_bytes = u64(st.memoryUsageBytes);
  if (st.memoryRssBytes !== undefined) memory.rss_bytes = u64(st.memoryRssBytes);
  return { cpu, memory };
}

/** A writable layer holding more entries than this is reported as far as the walk got (stats are asked often). */
const LAYER_WALK_MAX = 200_000;

function now(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

async function readCgroup(daemon: Daemon, path: string | undefined): Promise<CgroupStats> {
  // The systemd form (`slice:prefix:name`) is not a cgroupfs path; it is not read (yet).
  if (!path || path.includes(":")) return {};
  return await cgroupStats(path).catch((err) => {
    daemon.log.debug("cgroup statistics unreadable", { cgroup: path, error: errorMessage(err) });
    return {};
  });
}

/** The ContainerStats of one container. */
export async function containerStatsOf(
  daemon: Daemon,
  c: ContainerRecord<ContainerRuntime>,
  samples: CpuSamples,
): Promise<Message> {
  const s = c.runtime.spec;
  const at = now();
  const st = await readCgroup(daemon, c.runtime.cgroup);
  const out: Message = {
    attributes: {
      id: c.id,
      metadata: { name: s.name, attempt: s.attempt },
      labels: s.labels,
      annotations: s.annotations,
    },
    ...usageMessages(st, at, `container:${c.id}`, samples),
  };
  const layer = await daemon.rootfs.usage(c.id, { maxEntries: LAYER_WALK_MAX }).catch(() => undefined);
  if (layer) {
    out.writable_layer = {
      timestamp: String(at),
      // The same mountpoint ImageFsInfo reports as the container filesystem, so the kubelet can match them.
      fs_id: { mountpoint: `${daemon.config.davit.root}/containers` },
      used_bytes: u64(layer.bytes),
      inodes_used: u64(layer.inodes),
    };
  }
  return out;
}

/** The PodSandboxStats of one pod: its cgroup (which holds its containers'), process count and its containers. */
export async function podStatsOf(
  daemon: Daemon,
  pod: PodRecord<PodRuntime>,
  containers: ContainerRecord<ContainerRuntime>[],
  samples: CpuSamples,
): Promise<Message> {
  const at = now();
  const st = await readCgroup(daemon, pod.runtime.cgroup);
  const linux: Message = {
    ...usageMessages(st, at, `pod:${pod.id}`, samples),
    containers: await Promise.all(containers.map((c) => containerStatsOf(daemon, c, samples))),
  };
  if (st.pidsCurrent !== undefined) linux.process = { timestamp: String(at), process_count: u64(st.pidsCurrent) };
  return {
    attributes: {
      id: pod.id,
      metadata: podMetadata(pod),
      labels: pod.runtime.spec.labels,
      annotations: pod.runtime.spec.annotations,
    },
    linux,
  };
}
