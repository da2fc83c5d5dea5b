/** Status: whether the runtime and the pod network are ready, with reasons; verbose adds the effective config. */
import { resolveRuntimeBinary } from "../runtime/mod.ts";
import type { Daemon } from "./daemon.ts";
import type { Message, UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.Status. */
export function status(daemon: Daemon): UnaryHandler {
  return async (req) => {
    const cfg = daemon.config;
    const handler = daemon.runtimeHandler(cfg.davit.runtime.default_runtime);
    const runtimeCondition: Message = { type: "RuntimeReady", status: true, reason: "", message: "" };
    if (!handler) {
      Object.assign(runtimeCondition, {
        status: false,
        reason: "RuntimeHandlerNotConfigured",
        message: `default_runtime "${cfg.davit.runtime.default_runtime}" has no [davit.runtime.runtimes] entry`,
      });
    } else {
      const binary = await resolveRuntimeBinary(handler);
      if (!binary.ok) {
        Object.assign(runtimeCondition, { status: false, reason: "RuntimeBinaryNotFound", message: binary.reason });
      }
    }
    // The CNI manager watches the network directory, so readiness follows it without a restart or a re-scan here.
    const net = daemon.cni.status();
    const networkCondition: Message = net.ok ? { type: "NetworkReady", status: true, reason: "", message: "" } : {
      type: "NetworkReady",
      status: false,
      reason: net.reason,
      message: `Network plugin returns error: ${net.message}`,
    };
    const res: Message = {
      status: { conditions: [runtimeCondition, networkCondition] },
      // The default handler is listed under "" (what a pod without runtime_handler gets) and by its own name.
      runtime_handlers: ["", ...daemon.runtimeHandlers().map((h) => h.name)].map((name) => ({
        name,
        features: { recursive_read_only_mounts: false, user_namespaces: false },
      })),
      features: { supplemental_groups_policy: false },
    };
    if (req.verbose) res.info = { config: JSON.stringify(cfg) };
    return res;
  };
}
