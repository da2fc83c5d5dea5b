/**
 * Which seccomp and AppArmor profiles a container asked for, from the structured `seccomp` / `apparmor` fields of
 * its security context or, when those are absent, from the deprecated `seccomp_profile_path` / `apparmor_profile`
 * strings. Pure: reading a Localhost profile is the caller's.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import type { Message } from "./grpc_server.ts";

/** The seccomp profile asked for; RuntimeDefault is davit's configured default (`seccomp_profile`, else built in). */
export type SeccompChoice =
  | { type: "RuntimeDefault" }
  | { type: "Unconfined" }
  | { type: "Localhost"; path: string; field: string };

/** The AppArmor profile asked for, in spec generation's terms ("" = none asked for). */
export interface AppArmorChoice {
  type: "RuntimeDefault" | "Unconfined" | "Localhost" | "";
  name?: string;
}

const SC = "linux.security_context";

/**
 * The seccomp choice of a container security context. The structured `seccomp` field wins; without it the
 * deprecated `seccomp_profile_path` is read: "" is the default, "unconfined", "runtime/default" and
 * "docker/default" are what they say, "localhost/<absolute path>" is that file, anything else is InvalidArgument.
 */
export function seccompChoice(sc: Message): SeccompChoice {
  if (sc.seccomp) {
    const t = String(sc.seccomp.profile_type ?? "RuntimeDefault");
    if (t === "Localhost") {
      return { type: "Localhost", path: String(sc.seccomp.localhost_ref ?? ""), field: `${SC}.seccomp.localhost_ref` };
    }
    if (t === "Unconfined") return { type: "Unconfined" };
    return { type: "RuntimeDefault" };
  }
  const path = String(sc.seccomp_profile_path ?? "");
  const field = `${SC}.seccomp_profile_path`;
  if (path === "" || path === "runtime/default" || path === "docker/default") return { type: "RuntimeDefault" };
  if (path === "unconfined") return { type: "Unconfined" };
  if (path.startsWith("localhost/")) {
    const file = path.slice("localhost/".length);
    if (!file.startsWith("/")) {
      throw new InvalidArgument(
        `${field} ${JSON.stringify(path)}: the profile after "localhost/" must be an absolute path`,
      );
    }
    return { type: "Localhost", path: file, field };
  }
  throw new InvalidArgument(
    `${field} ${
      JSON.stringify(path)
    } is not "", "unconfined", "runtime/default", "docker/default" or "localhost/<path>"`,
  );
}

/**
 * The AppArmor choice of a container security context: the structured `apparmor` field, else the deprecated
 * `apparmor_profile` ("" none, "unconfined", "runtime/default", "localhost/<profile name>").
 */
export function apparmorChoice(sc: Message): AppArmorChoice {
  if (sc.apparmor) {
    const type = String(sc.apparmor.profile_type ?? "RuntimeDefault") as AppArmorChoice["type"];
    return { type, ...(sc.apparmor.localhost_ref ? { name: String(sc.apparmor.localhost_ref) } : {}) };
  }
  const p = String(sc.apparmor_profile ?? "");
  if (p === "") return { type: "" };
  if (p === "unconfined") return { type: "Unconfined" };
  if (p === "runtime/default") return { type: "RuntimeDefault" };
  if (p.startsWith("localhost/") && p.length > "localhost/".length) {
    return { type: "Localhost", name: p.slice("localhost/".length) };
  }
  throw new InvalidArgument(
    `${SC}.apparmor_profile ${JSON.stringify(p)} is not "", "unconfined", "runtime/default" or "localhost/<profile>"`,
  );
}
