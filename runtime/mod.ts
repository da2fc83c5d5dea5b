/**
 * OCI runtime side of davit: runtime handlers and (later) spec generation, invocation, cgroups and namespaces.
 * Takes plain typed inputs; never sees CRI protobuf types.
 * @module
 */
export { resolveRuntimeBinary } from "./handlers.ts";
export type { RuntimeBinary, RuntimeHandlerConfig } from "./handlers.ts";
