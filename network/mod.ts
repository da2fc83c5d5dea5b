/**
 * Pod networking through CNI: network configuration parsing and lookup, results and pod IPs, request derivation
 * (runtimeConfig, CNI_ARGS), plugin error interpretation. Knows nothing about containers.
 * @module
 */
export { findNetworkConfig } from "./config_dir.ts";
export type { FindNetworkConfigOptions, NetworkConfigLookup, SkippedConfig } from "./config_dir.ts";
export {
  checkNetworkConfig,
  CONFIG_EXTENSIONS,
  configFileNames,
  parseNetworkConfig,
  parseNetworkConfigObject,
} from "./cni_config.ts";
export type { NetworkConfigList, ParsedNetworkConfig, PluginConf } from "./cni_config.ts";
export { SUPPORTED_VERSIONS } from "./cni_version.ts";
export { convertResult, parseResult, podIps } from "./cni_result.ts";
export type { CniDns, CniInterface, CniIpConfig, CniResult, CniRoute, PodIps } from "./cni_result.ts";
export { CniPluginError } from "./cni_errors.ts";
export type { PluginOutput } from "./cni_errors.ts";
export { capabilityArgs, kubernetesCniArgs, parsePodCidrs, portMappings } from "./plugin_request.ts";
export type {
  BandwidthLimits,
  CapabilityArgs,
  DnsCapability,
  PortMapping,
  PortMappingInput,
} from "./plugin_request.ts";
