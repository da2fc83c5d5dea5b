/**
 * The pod monitor's public API for the daemon: launching a monitor, the client of its protocol, and attach
 * sessions. The monitor mode itself is monitor/main.ts.
 * @module
 */
export { type AttachOptions, MonitorClient } from "./client.ts";
export { startMonitor } from "./start.ts";
export type { ContainerStatus } from "./protocol.ts";
export { ADOPT_SINCE_VERSION, ATTACH_SINCE_VERSION, TERMINAL_SINCE_VERSION } from "./protocol.ts";
export { parsePidFile, processAlive, processStartTime } from "./cli.ts";
export type { AttachSession, AttachStreams } from "./attach_session.ts";
export type { ExitRecord } from "./exit_file.ts";
