/** ListPodSandbox and StreamPodSandboxes: pods filtered by ID (or prefix), state and labels. */
import type { PodRecord } from "../runtime/mod.ts";
import type { Daemon } from "./daemon.ts";
import type { Message, StreamHandler, UnaryHandler } from "./grpc_server.ts";
import type { PodRuntime } from "./pods.ts";
import { podMetadata, podState } from "./pod_status.ts";

const BATCH = 200;

/** True when every `selector` label is present with the same value. */
export function labelsMatch(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

function listed(daemon: Daemon, req: Message): Message[] {
  const f = req.filter ?? {};
  const wantState = f.state?.state as string | undefined;
  return daemon.state.pods<PodRuntime>()
    .filter((p: PodRecord<PodRuntime>) => p.state !== "creating")
    .map((p) => daemon.pods.reconcileInfra(p))
    .filter((p) => !f.id || p.id.startsWith(f.id))
    .filter((p) => !f.state || podState(p) === wantState)
    .filter((p) => labelsMatch(p.runtime.spec.labels, f.label_selector))
    .map((p) => ({
      id: p.id,
      metadata: podMetadata(p),
      state: podState(p),
      created_at: p.createdAt,
      labels: p.runtime.spec.labels,
      annotations: p.runtime.spec.annotations,
      runtime_handler: p.runtimeHandler,
    }));
}

/** Handler for RuntimeService.ListPodSandbox. */
export function listPodSandbox(daemon: Daemon): UnaryHandler {
  return (req) => ({ items: listed(daemon, req) });
}

/** Handler for RuntimeService.StreamPodSandboxes. */
export function streamPodSandboxes(daemon: Daemon): StreamHandler {
  return async function* (req) {
    const all = listed(daemon, req);
    for (let i = 0; i < all.length; i += BATCH) yield { pod_sandboxes: all.slice(i, i + BATCH) };
  };
}
