/**
 * Pod networking through CNI: network configuration loading and watching, plugin chain execution (ADD, DEL,
 * CHECK, GC), the attachment cache, results and pod IPs, port mappings and other capability arguments, and the
 * default bridge configuration. {@link CniManager} is the entry point for the CRI handlers. Knows nothing about
 * containers.
 * @module
 */
export { CniManager } from "./cni_manager.ts";
export type {
  CallOptions,
  CniManagerOptions,
  PodNetworkSetup,
  PodNetworkStatus,
  PodNetworkTeardown,
} from "./cni_manager.ts";
export { NetworkConfigWatcher } from "./config_watcher.ts";
export type { CurrentNetwork, NetworkConfigWatcherOptions, NetworkReadiness } from "./config_watcher.ts";
export { checkRequiredPlugins, findNetworkConfig } from "./config_dir.ts";
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
export { DenoCniExec } from "./cni_exec.ts";
export type { CniExec, PluginInvocation } from "./cni_exec.ts";
export { passthroughPlugin, pluginError, pluginOk, RecordingCniExec } from "./recording_cni_exec.ts";
export type { FakePlugin, RecordedCall } from "./recording_cni_exec.ts";
export { capabilityArgs, kubernetesCniArgs, parsePodCidrs, portMappings } from "./plugin_request.ts";
export type {
  BandwidthLimits,
  CapabilityArgs,
  DnsCapability,
  PortMapping,
  PortMappingInput,
} from "./plugin_request.ts";
export { CACHE_KIND, ResultCache } from "./result_cache.ts";
export type { CacheEntry } from "./result_cache.ts";
export { DEFAULT_NETWORK_FILE, defaultNetworkConfig } from "./default_config.ts";
export type { DefaultNetworkOptions } from "./default_config.ts";
