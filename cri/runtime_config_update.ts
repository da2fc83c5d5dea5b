/** UpdateRuntimeConfig: the kubelet passes the node's pod CIDR, which CNI plugins that ask for ipRanges receive. */
import { InvalidArgument } from "../lib/errors.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** Handler for RuntimeService.UpdateRuntimeConfig. */
export function updateRuntimeConfig(daemon: Daemon): UnaryHandler {
  return (req) => {
    const cidr = req.runtime_config?.network_config?.pod_cidr ?? "";
    if (typeof cidr !== "string") throw new InvalidArgument("runtime_config.network_config.pod_cidr is not a string");
    if (cidr !== "") {
      try {
        daemon.cni.setPodCidr(cidr);
      } catch (err) {
        throw new InvalidArgument(
          `runtime_config.network_config.pod_cidr ${JSON.stringify(cidr)}: ${(err as Error).message}`,
        );
      }
      daemon.log.info("pod CIDR set", { pod_cidr: cidr });
    }
    return {};
  };
}
