/**
 * A pod's network, IPC and UTS namespaces without an infra container: util-linux `unshare` creates them and
 * bind-mounts each onto `<runroot>/ns/<kind>/<podId>` (the pinned file keeps it alive with no process in it),
 * and the process it runs there sets the hostname, brings up loopback and applies the pod's sysctls before
 * exiting. Containers join through the spec's `linux.namespaces[].path`. `<runroot>/ns` is made a private bind
 * mount of itself once, so the pins neither propagate to other mount namespaces nor receive theirs.
 *
 * A pod on the host network shares the host's network and UTS namespaces (its hostname is the node's); one on
 * the host IPC namespace gets no IPC namespace.
 * @module
 */
import { AlreadyExists, FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import { isErrno, MNT, mount, MS, umount2 } from "../lib/libc.ts";
import { parseMountInfo } from "./cgroup_layout.ts";
import { runCommand } from "./command.ts";
import { type PlannedSysctl, planPodSysctls } from "./pod_sysctls.ts";

/** The namespaces davit pins per pod. */
export const POD_NAMESPACE_KINDS = ["net", "ipc", "uts"] as const;
/** One of {@link POD_NAMESPACE_KINDS}. */
export type PodNamespaceKind = typeof POD_NAMESPACE_KINDS[number];

/** Pinned namespace files of one pod; absent kinds are the host's. */
export type PodNamespacePaths = Partial<Record<PodNamespaceKind, string>>;

/** Options of {@link createPodNamespaces}. */
export interface PodNamespaceOptions {
  hostname: string;
  hostNetwork?: boolean;
  hostIpc?: boolean;
  /** Namespaced sysctls, validated by {@link planPodSysctls}. */
  sysctls?: Record<string, string>;
  timeoutMs?: number;
  /** Host tools: `unshare` (util-linux), `sh`, `ip` (iproute2); found in PATH by default. */
  tools?: { unshare?: string; sh?: string; ip?: string };
}

/** A pinned namespace file found under the runroot. */
export interface PinnedNamespace {
  podId: string;
  kind: PodNamespaceKind;
  path: string;
  /** False for a leftover file with nothing mounted on it. */
  mounted: boolean;
}

const POD_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$/;

function checkPodId(podId: string): void {
  if (!POD_ID.test(podId)) throw new InvalidArgument(`Invalid pod ID ${JSON.stringify(podId)}`);
}

/** Validates a pod hostname: RFC 1123 labels and dots, at most 64 bytes (the kernel's HOST_NAME_MAX). */
export function checkHostname(hostname: string): void {
  if (!HOSTNAME.test(hostname)) {
    throw new InvalidArgument(`Invalid hostname ${JSON.stringify(hostname)}: letters, digits, "-" and ".", 1-64`);
  }
}

/** Where a pod's namespaces are pinned, for the kinds it does not share with the host (pure). */
export function podNamespacePaths(
  runroot: string,
  podId: string,
  opts: { hostNetwork?: boolean; hostIpc?: boolean } = {},
): PodNamespacePaths {
  checkPodId(podId);
  const out: PodNamespacePaths = {};
  if (!opts.hostNetwork) out.net = `${runroot}/ns/net/${podId}`;
  if (!opts.hostIpc) out.ipc = `${runroot}/ns/ipc/${podId}`;
  if (!opts.hostNetwork) out.uts = `${runroot}/ns/uts/${podId}`;
  return out;
}

/**
 * The argv that creates and pins `paths` and sets them up from inside (pure): the shell script gets the
 * hostname and each sysctl's /proc/sys path and value as positional arguments, never spliced into its text.
 * /proc/sys/kernel/hostname, /proc/sys/net and the IPC sysctls resolve to the writer's own namespaces.
 */
export function podNamespaceArgv(
  paths: PodNamespacePaths,
  opts: { hostname: string; sysctls: readonly PlannedSysctl[]; tools?: PodNamespaceOptions["tools"] },
): string[] {
  const argv = [opts.tools?.unshare ?? "unshare"];
  for (const kind of POD_NAMESPACE_KINDS) if (paths[kind]) argv.push(`--${kind}=${paths[kind]}`);
  const lines = ["set -e"];
  if (paths.uts) lines.push('printf %s "$1" > /proc/sys/kernel/hostname');
  if (paths.net) lines.push(`${opts.tools?.ip ?? "ip"} link set lo up`);
  if (opts.sysctls.length > 0) {
    lines.push("shift", 'while [ "$#" -gt 0 ]; do printf %s "$2" > "/proc/sys/$1"; shift 2; done');
  }
  argv.push("--", opts.tools?.sh ?? "sh", "-c", lines.join("\n"), "davit-pod-ns", opts.hostname);
  for (const s of opts.sysctls) argv.push(s.path, s.value);
  return argv;
}

const privateDirs = new Map<string, Promise<void>>();

/** Makes `dir` a private mount (a bind mount of itself when it is not a mount point yet), once per process. */
function ensurePrivateMount(dir: string): Promise<void> {
  let p = privateDirs.get(dir);
  if (p === undefined) {
    p = (async () => {
      await Deno.mkdir(dir, { recursive: true, mode: 0o711 });
      const mounts = parseMountInfo(await Deno.readTextFile("/proc/self/mountinfo"));
      const own = mounts.filter((m) => m.mountPoint === dir).at(-1);
      if (own === undefined) mount(dir, dir, null, MS.BIND | MS.REC, null);
      if (own === undefined || own.optional.some((o) => o.startsWith("shared:"))) {
        mount(null, dir, null, MS.PRIVATE, null);
      }
    })();
    privateDirs.set(dir, p);
    p.catch(() => privateDirs.delete(dir));
  }
  return p;
}

async function mountPoints(): Promise<Set<string>> {
  return new Set(parseMountInfo(await Deno.readTextFile("/proc/self/mountinfo")).map((m) => m.mountPoint));
}

/** Unmounts everything stacked on `path` (lazily: MNT_DETACH) and deletes the file; missing is fine. */
function unpin(path: string): void {
  for (let i = 0; i < 16; i++) {
    try {
      umount2(path, MNT.DETACH);
    } catch (err) {
      if (isErrno(err, "EINVAL", "ENOENT")) break;
      throw new FailedPrecondition(`Cannot unpin namespace ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/**
 * Creates and pins the pod's namespaces, sets its hostname, brings loopback up and applies `sysctls`; returns
 * the pinned files (none for what the pod shares with the host). A half-made set is removed on failure. A pod
 * whose namespaces are already pinned is {@link AlreadyExists}.
 */
export async function createPodNamespaces(
  runroot: string,
  podId: string,
  opts: PodNamespaceOptions,
): Promise<PodNamespacePaths> {
  checkHostname(opts.hostname);
  const sysctls = planPodSysctls(opts.sysctls ?? {}, opts);
  const paths = podNamespacePaths(runroot, podId, opts);
  const files = Object.values(paths);
  if (files.length === 0) {
    return paths;
  }
  await ensurePrivateMount(`${runroot}/ns`);
  const mounted = await mountPoints();
  for (const [kind, file] of Object.entries(paths)) {
    if (mounted.has(file)) throw new AlreadyExists(`Pod "${podId}" already has a pinned ${kind} namespace (${file})`);
  }
  try {
    for (const kind of POD_NAMESPACE_KINDS) {
      const file = paths[kind];
      if (file === undefined) continue;
      await Deno.mkdir(`${runroot}/ns/${kind}`, { recursive: true, mode: 0o711 });
      await Deno.writeFile(file, new Uint8Array(0), { mode: 0o444 });
    }
    const argv = podNamespaceArgv(paths, {
      hostname: opts.hostname,
      sysctls,
      ...(opts.tools ? { tools: opts.tools } : {}),
    });
    const res = await runCommand(argv, { what: `pod ${podId}: unshare`, timeoutMs: opts.timeoutMs ?? 10_000 });
    if (res.code !== 0) {
      const err = new TextDecoder().decode(res.stderr).trim().split("\n").at(-1) ?? "";
      throw new FailedPrecondition(
        `Cannot create namespaces of pod "${podId}": unshare exited with ${res.code}: ${err}`,
      );
    }
    return paths;
  } catch (err) {
    for (const file of files) unpin(file);
    throw err;
  }
}

/**
 * Unpins and deletes the pod's namespace files (whichever exist); idempotent. Processes still in a namespace
 * keep it alive; the pin is all davit holds.
 */
export function removePodNamespaces(runroot: string, podId: string): Promise<void> {
  checkPodId(podId);
  for (const kind of POD_NAMESPACE_KINDS) unpin(`${runroot}/ns/${kind}/${podId}`);
  return Promise.resolve();
}

/** Every pinned namespace file under the runroot, mounted or leftover, for reconciliation after a restart. */
export async function listPinnedNamespaces(runroot: string): Promise<PinnedNamespace[]> {
  const mounted = await mountPoints();
  const out: PinnedNamespace[] = [];
  for (const kind of POD_NAMESPACE_KINDS) {
    const dir = `${runroot}/ns/${kind}`;
    try {
      for await (const e of Deno.readDir(dir)) {
        const path = `${dir}/${e.name}`;
        out.push({ podId: e.name, kind, path, mounted: mounted.has(path) });
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return out.sort((a, b) => a.podId.localeCompare(b.podId) || a.kind.localeCompare(b.kind));
}

/**
 * Undoes the private bind mount of `<runroot>/ns` when no pod namespace is pinned under it any more (the daemon
 * calls this at shutdown, so a daemon with no pods leaves no mount behind). Returns whether it unmounted.
 */
export async function releaseNamespaceRoot(runroot: string): Promise<boolean> {
  if ((await listPinnedNamespaces(runroot)).length > 0) return false;
  const dir = `${runroot}/ns`;
  let released = false;
  for (let i = 0; i < 16; i++) {
    try {
      umount2(dir, MNT.DETACH);
      released = true;
    } catch (err) {
      if (isErrno(err, "EINVAL", "ENOENT")) break;
      throw err;
    }
  }
  privateDirs.delete(dir);
  return released;
}
