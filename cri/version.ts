/** Version: names the runtime and the CRI API it speaks. */
import { COMMIT, VERSION } from "../lib/build_info.ts";
import { CRI_API_VERSION } from "./codec.ts";
import type { UnaryHandler } from "./grpc_server.ts";

/** The kubelet-facing API version string every CRI runtime answers. */
const KUBELET_API_VERSION = "0.1.0";

/** The runtime version string: davit's version plus the commit when known. */
export function runtimeVersion(): string {
  return COMMIT ? `${VERSION}+${COMMIT.slice(0, 12)}` : VERSION;
}

/** Handler for RuntimeService.Version. */
export const version: UnaryHandler = () => ({
  version: KUBELET_API_VERSION,
  runtime_name: "davit",
  runtime_version: runtimeVersion(),
  runtime_api_version: CRI_API_VERSION,
});
