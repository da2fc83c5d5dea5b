/** ListContainers and StreamContainers: containers filtered by ID prefix, pod, state and labels. */
import type { Daemon } from "./daemon.ts";
import type { Message, StreamHandler, UnaryHandler } from "./grpc_server.ts";
import { containerBasics, containerState } from "./container_status.ts";
import { labelsMatch } from "./pod_list.ts";

const BATCH = 200;

async function listed(daemon: Daemon, req: Message): Promise<Message[]> {
  const f = req.filter ?? {};
  return (await daemon.containers.list())
    .filter((c) => !f.id || c.id.startsWith(f.id))
    .filter((c) => !f.pod_sandbox_id || c.podId.startsWith(f.pod_sandbox_id))
    .filter((c) => !f.state || containerState(c) === f.state.state)
    .filter((c) => labelsMatch(c.runtime.spec.labels, f.label_selector))
    .map((c) => ({ ...containerBasics(c), pod_sandbox_id: c.podId }));
}

/** Handler for RuntimeService.ListContainers. */
export function listContainers(daemon: Daemon): UnaryHandler {
  return async (req) => ({ containers: await listed(daemon, req) });
}

/** Handler for RuntimeService.StreamContainers. */
export function streamContainers(daemon: Daemon): StreamHandler {
  return async function* (req) {
    const all = await listed(daemon, req);
    for (let i = 0; i < all.length; i += BATCH) yield { containers: all.slice(i, i + BATCH) };
  };
}
