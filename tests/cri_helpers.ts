// Helpers shared by the end-to-end tests that drive a real daemon over CRI: polling, clean-up, the daemon files
// that trust the loopback registry, pod and container creation, container status, and CRI log lines. Test-only.
import type { CriCallError, CriClient, Msg } from "./cri_client.ts";
import { LOOPBACK_NETWORK } from "./daemon.ts";

/** A pod as the tests keep it: its ID and the config it was run with (the sandbox_config of its containers). */
export interface PodRef {
  id: string;
  config: Msg;
}

/** Polls `fn` every `intervalMs` until it returns a truthy value, and returns it; fails after `ms`. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  ms = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Removes every pod, ignoring failures (clean-up after a failed step). */
export async function removeAllPods(c: CriClient): Promise<void> {
  const pods = await c.call("ListPodSandbox", {}).catch(() => ({ items: [] }));
  for (const p of pods.items) await c.call("RemovePodSandbox", { pod_sandbox_id: p.id }).catch(() => {});
}

/** The daemon files for the loopback network and a registries.conf that trusts `reg` over plain HTTP. */
export function registryFiles(reg: { host: string }): Record<string, string> {
  return {
    ...LOOPBACK_NETWORK,
    "etc/containers/registries.conf": `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`,
  };
}

/** Runs a pod named `name` in namespace "test" whose logs go to `logDir`. */
export async function pod(c: CriClient, name: string, logDir: string): Promise<PodRef> {
  const config = { metadata: { name, namespace: "test", uid: `uid-${name}` }, hostname: name, log_directory: logDir };
  return { id: (await c.call("RunPodSandbox", { config })).pod_sandbox_id, config };
}

/**
 * Creates (does not start) a container `name` from `image` in pod `p`, logging to `<name>.log`. `extra` is merged
 * into its config; an array is taken as its command.
 */
export async function container(
  c: CriClient,
  p: PodRef,
  name: string,
  image: string,
  extra: Msg | string[] = {},
): Promise<string> {
  const more = Array.isArray(extra) ? { command: extra } : extra;
  const config = { metadata: { name }, image: { image }, log_path: `${name}.log`, ...more };
  return (await c.call("CreateContainer", { pod_sandbox_id: p.id, config, sandbox_config: p.config })).container_id;
}

/** The container's ContainerStatus `status`. */
export async function status(c: CriClient, id: string): Promise<Msg> {
  return (await c.call("ContainerStatus", { container_id: id })).status;
}

/** Waits for the container to exit; returns its status then. */
export async function exited(c: CriClient, id: string): Promise<Msg> {
  return await waitFor(`container ${id} to exit`, async () => {
    const s = await status(c, id);
    return s.state === "CONTAINER_EXITED" ? s : undefined;
  });
}

/** The error a call that must fail failed with; fails if it succeeded. */
export async function failure(p: Promise<unknown>): Promise<CriCallError> {
  return await p.then(() => {
    throw new Error("the call succeeded");
  }, (e) => e as CriCallError);
}

/** The log file's lines, parsed: [stream, tag, content]; none if the file is missing. */
export async function logLines(path: string): Promise<[string, string, string][]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => {
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([FP]) (.*)$/.exec(l);
    if (!m) throw new Error(`bad CRI log line: ${JSON.stringify(l)}`);
    return [m[2]!, m[3]!, m[4]!];
  });
}
