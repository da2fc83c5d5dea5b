/**
 * Pod networking through CNI: configuration lookup now; plugin execution, result cache and port mappings later.
 * Knows nothing about containers.
 * @module
 */
export { checkNetworkConfig, findNetworkConfig } from "./cni_config.ts";
export type { NetworkConfigLookup } from "./cni_config.ts";
