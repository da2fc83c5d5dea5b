export { MonitorClient } from "./client.ts";
export { startMonitor } from "./start.ts";
export type { ContainerStatus } from "./protocol.ts";
