/**
 * OCI runtime side of davit: runtime handlers and (later) spec generation, invocation, cgroups and namespaces.
 * Takes plain typed inputs; never sees CRI protobuf types.
 * @module
 */
export { resolveRuntimeBinary } from "./handlers.ts";
export type { RuntimeBinary, RuntimeHandlerConfig } from "./handlers.ts";
export { OciRuntimeError } from "./oci_runtime.ts";
export type {
  CreateOptions,
  DeleteOptions,
  ExecOptions,
  ExecProcess,
  ExecResult,
  KillOptions,
  OciRuntime,
  OciState,
  OciStatus,
  OciVerb,
  ProcessStdio,
  ResourceUpdate,
} from "./oci_runtime.ts";
export { DEFAULT_TIMEOUTS_MS, RuncLikeRuntime } from "./runc_like_runtime.ts";
export type { RuncLikeRuntimeOptions } from "./runc_like_runtime.ts";
export { FakeOciRuntime } from "./oci_runtime_fake.ts";
export type { RecordedCall } from "./oci_runtime_fake.ts";
export { parseCgroupLayout, parseMountInfo, readCgroupLayout } from "./cgroup_layout.ts";
export type { CgroupLayout, MountInfo, V1Hierarchy } from "./cgroup_layout.ts";
export {
  addProcessToCgroup,
  cgroupStats,
  checkCgroupManager,
  containerCgroupPath,
  createCgroup,
  createPodCgroup,
  podCgroupPath,
  removeCgroup,
} from "./cgroups.ts";
export type { CgroupManager, CgroupResources, CgroupStats } from "./cgroups.ts";
export {
  checkHostname,
  createPodNamespaces,
  listPinnedNamespaces,
  POD_NAMESPACE_KINDS,
  podNamespacePaths,
  releaseNamespaceRoot,
  removePodNamespaces,
} from "./pod_namespaces.ts";
export type { PinnedNamespace, PodNamespaceKind, PodNamespaceOptions, PodNamespacePaths } from "./pod_namespaces.ts";
export { PortForwarder } from "./port_forward.ts";
export type { PortConnection, PortForwarderOptions } from "./port_forward.ts";
export { connectLoopback } from "./loopback_dial.ts";
export { parseSysctlList, planPodSysctls, sysctlNamespace } from "./pod_sysctls.ts";
export type { PlannedSysctl, SysctlNamespace } from "./pod_sysctls.ts";
export {
  mountPodShm,
  podDir,
  podFilePaths,
  podShmPath,
  removePodFiles,
  renderHostname,
  renderHosts,
  renderResolvConf,
  unmountPodShm,
  updatePodHosts,
  writePodFiles,
} from "./pod_files.ts";
export type { DnsConfig, PodFilePaths } from "./pod_files.ts";
export { STATE_MIGRATIONS, StateStore } from "./state_store.ts";
export type { ContainerRecord, ContainerState, PodRecord, PodState } from "./state_store.ts";
export { ALL_CAPABILITIES, capabilitiesFromMask, computeCapabilities } from "./capabilities.ts";
export type { CapabilityRequest } from "./capabilities.ts";
export { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, DEFAULT_SPEC_OPTS, generateSpec } from "./spec.ts";
export type { OciSpec, SpecInput, SpecMount, SpecOpt } from "./spec.ts";
export { INFRA_ANNOTATION, infraSpec } from "./infra_spec.ts";
export type { InfraSpecInput } from "./infra_spec.ts";
export { computeArgs, mergeEnv, parseGroup, parsePasswd, resolveUser } from "./spec_user.ts";
export type { ResolvedUser, UserRequest } from "./spec_user.ts";
export { allowedSyscalls, defaultSeccompProfile } from "./seccomp.ts";
export type { SeccompProfile } from "./seccomp.ts";
