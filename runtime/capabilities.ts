/**
 * Linux capability names and the capability set of a container, pure: davit's own bounding set is passed in as a fact.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

/** Every capability name (linux/capability.h), as facts, in capability-number order (index = bit). */
export const ALL_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
]; // deno-fmt-ignore

function capName(raw: string, where: string): string {
  const n = raw.toUpperCase().startsWith("CAP_") ? raw.toUpperCase() : `CAP_${raw.toUpperCase()}`;
  if (!ALL_CAPABILITIES.includes(n)) throw new InvalidArgument(`${where}: unknown capability ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The capability names of a mask such as /proc/self/status `CapBnd` (hexadecimal, bit n = capability number n,
 * capability(7)); bits past the names davit knows are ignored.
 */
export function capabilitiesFromMask(hex: string): string[] {
  const mask = BigInt(`0x${hex.trim() || "0"}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/** A container's capability request. */
export interface CapabilityRequest {
  /** The configured default set (operator configuration). */
  defaults: readonly string[];
  add: readonly string[];
  drop: readonly string[];
}

/**
 * The capability set: defaults, then drop (ALL clears), then add (ALL grants every one davit can grant).
 *
 * `held` is davit's own bounding set: nothing outside it can be granted (the OCI runtime would fail applying it).
 * Defaults outside it are left out quietly (operator configuration meant for a fuller host); an explicit add of one
 * is InvalidArgument naming it.
 */
export function computeCapabilities(req: CapabilityRequest, held: readonly string[] = ALL_CAPABILITIES): string[] {
  const can = new Set(held);
  let set = new Set(req.defaults.map((c) => capName(c, "default_capabilities")).filter((c) => can.has(c)));
  if (req.drop.some((d) => d.toUpperCase() === "ALL")) set = new Set();
  else for (const d of req.drop) set.delete(capName(d, "capabilities.drop_capabilities"));
  if (req.add.some((a) => a.toUpperCase() === "ALL")) set = new Set(can);
  else {
    for (const a of req.add) {
      const n = capName(a, "capabilities.add_capabilities");
      if (!can.has(n)) {
        throw new InvalidArgument(
          `capabilities.add_capabilities: ${n} is not in davit's bounding set, so no container of this host can have it`,
        );
      }
      set.add(n);
    }
  }
  return ALL_CAPABILITIES.filter((c) => set.has(c));
}
