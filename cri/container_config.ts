/**
 * Validation of a CreateContainer request into the plain container description davit works with. Every refusal is
 * INVALID_ARGUMENT naming the field and the value.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import type { Message } from "./grpc_server.ts";
import type { PodSpec } from "./pod_config.ts";

/** A validated container request (still close to CRI; runtime inputs are derived from it). */
export interface ContainerSpec {
  name: string;
  attempt: number;
  image: string;
  command: string[];
  args: string[];
  workingDir: string;
  env: [string, string][];
  mounts: {
    containerPath: string;
    hostPath: string;
    readonly: boolean;
    propagation: string;
    recursiveReadOnly: boolean;
  }[];
  devices: { containerPath: string; hostPath: string; permissions: string }[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Relative to the pod's log directory. */
  logPath: string;
  stdin: boolean;
  stdinOnce: boolean;
  tty: boolean;
  stopSignal: string;
  /** The CRI `linux` block, passed to spec generation. */
  linux: Message;
}

const dec = new TextDecoder();

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** The name under which a container is reserved in its pod. */
export function containerReservedName(spec: Pick<ContainerSpec, "name" | "attempt">, pod: PodSpec): string {
  return `${spec.name}_${pod.name}_${pod.namespace}_${pod.uid}_${spec.attempt}`;
}

/** Checks a CreateContainerRequest's config. */
export function validateContainerConfig(config: Message | null | undefined): ContainerSpec {
  if (!config) throw new InvalidArgument("config is required");
  const name = str(config.metadata?.name);
  if (name.trim() === "") throw new InvalidArgument("config.metadata.name is empty");
  if (/[\s/\0]/.test(name)) {
    throw new InvalidArgument(`config.metadata.name ${JSON.stringify(name)} contains whitespace, "/" or NUL`);
  }
  const image = str(config.image?.image).trim();
  if (image === "") throw new InvalidArgument("config.image.image is empty");
  const logPath = str(config.log_path);
  if (logPath.startsWith("/") || logPath.split("/").includes("..")) {
    throw new InvalidArgument(
      `config.log_path ${JSON.stringify(logPath)} must be relative to the pod's log directory, without ".."`,
    );
  }
  const env: [string, string][] = (config.envs ?? []).map((kv: Message, i: number) => {
    const key = str(kv.key);
    if (key === "" || key.includes("=") || key.includes("\0")) {
      throw new InvalidArgument(`config.envs[${i}].key ${JSON.stringify(key)} is not a valid variable name`);
    }
    const value = kv.value instanceof Uint8Array ? dec.decode(kv.value) : str(kv.value);
    return [key, value];
  });
  const mounts = (config.mounts ?? []).map((m: Message, i: number) => {
    const where = `config.mounts[${i}]`;
    const containerPath = str(m.container_path), hostPath = str(m.host_path);
    if (!containerPath.startsWith("/")) {
      throw new InvalidArgument(`${where}.container_path ${JSON.stringify(containerPath)} is not absolute`);
    }
    if (m.image?.image) throw new InvalidArgument(`${where}.image: image volumes are not supported yet`);
    if (!hostPath.startsWith("/")) {
      throw new InvalidArgument(`${where}.host_path ${JSON.stringify(hostPath)} is not absolute`);
    }
    if ((m.uidMappings ?? []).length || (m.gidMappings ?? []).length) {
      throw new InvalidArgument(`${where}: ID-mapped mounts are not supported yet`);
    }
    return {
      containerPath,
      hostPath,
      readonly: Boolean(m.readonly),
      propagation: str(m.propagation) || "PROPAGATION_PRIVATE",
      recursiveReadOnly: Boolean(m.recursive_read_only),
    };
  });
  const devices = (config.devices ?? []).map((d: Message, i: number) => {
    const containerPath = str(d.container_path), hostPath = str(d.host_path), permissions = str(d.permissions) || "rwm";
    if (!containerPath.startsWith("/") || !hostPath.startsWith("/")) {
      throw new InvalidArgument(`config.devices[${i}]: container_path and host_path must be absolute`);
    }
    if (!/^[rwm]{1,3}$/.test(permissions)) {
      throw new InvalidArgument(
        `config.devices[${i}].permissions ${JSON.stringify(permissions)} is not a subset of "rwm"`,
      );
    }
    return { containerPath, hostPath, permissions };
  });
  if ((config.CDI_devices ?? []).length) {
    throw new InvalidArgument("config.CDI_devices: CDI devices are not supported yet");
  }
  const sc: Message = config.linux?.security_context ?? {};
  // CRI: run_as_group may only be given with run_as_user or run_as_username; otherwise the runtime must error.
  if (sc.run_as_group && !sc.run_as_user && !str(sc.run_as_username)) {
    throw new InvalidArgument(
      "config.linux.security_context.run_as_group is set without run_as_user or run_as_username",
    );
  }
  const stopSignal = str(config.stop_signal);
  return {
    name,
    attempt: Number(config.metadata?.attempt ?? 0),
    image,
    command: [...(config.command ?? [])],
    args: [...(config.args ?? [])],
    workingDir: str(config.working_dir),
    env,
    mounts,
    devices,
    labels: { ...(config.labels ?? {}) },
    annotations: { ...(config.annotations ?? {}) },
    logPath,
    stdin: Boolean(config.stdin),
    stdinOnce: Boolean(config.stdin_once),
    tty: Boolean(config.tty),
    stopSignal: stopSignal === "RUNTIME_DEFAULT" ? "" : stopSignal,
    linux: config.linux ?? {},
  };
}
