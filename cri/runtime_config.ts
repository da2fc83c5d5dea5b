/** RuntimeConfig: tells the kubelet which cgroup driver davit uses, so the two never disagree. */
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.RuntimeConfig. */
export function runtimeConfig(daemon: Daemon): UnaryHandler {
  return () => ({
    linux: { cgroup_driver: daemon.config.davit.runtime.cgroup_manager === "systemd" ? "SYSTEMD" : "CGROUPFS" },
  });
}
