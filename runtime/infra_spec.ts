/**
 * The OCI spec of a pod's infra process, pure: the process of the pause image that holds a pod's shared PID
 * namespace. It runs the image's own entrypoint and command in a new PID namespace, inside the pod's network, IPC
 * and UTS namespaces, with no capabilities, no new privileges, the default seccomp allow-list and a read-only root.
 * @module
 */
import { generateSpec, type OciSpec, type SpecInput } from "./spec.ts";

/** Everything the infra's spec reads (plain facts; the caller reads the image and the host). */
export interface InfraSpecInput {
  /** The OCI runtime's container ID of the infra. */
  id: string;
  /** The pod it belongs to (recorded as an annotation). */
  podId: string;
  /** The mounted root filesystem of the pause image. */
  rootfs: string;
  /** The pause image's config. */
  image: SpecInput["image"];
  /** The image's /etc/passwd and /etc/group, when it has them (the pause image usually names a numeric user). */
  passwd?: string;
  group?: string;
  hostname: string;
  /** The pod's pinned namespaces; a missing one means the host's. */
  namespaces: SpecInput["pod"]["namespaces"];
  cgroupsPath: string;
  cgroupV2: boolean;
  /** davit's own oom_score_adj (the infra's may not be lower). */
  ownOomScoreAdj: number;
}

/** The annotation that marks an infra process's spec, with the pod ID as its value. */
export const INFRA_ANNOTATION = "io.davit.pod.infra";

/**
 * The OCI runtime spec of a pod's infra process. Throws InvalidArgument when the image names nothing to run (no
 * Entrypoint and no Cmd).
 */
export function infraSpec(input: InfraSpecInput): OciSpec {
  return generateSpec({
    id: input.id,
    name: "infra",
    rootfs: input.rootfs,
    readonlyRootfs: true,
    command: [],
    args: [],
    env: [],
    workingDir: "",
    tty: false,
    labels: {},
    annotations: { [INFRA_ANNOTATION]: input.podId },
    image: input.image,
    user: {},
    ...(input.passwd !== undefined ? { passwd: input.passwd } : {}),
    ...(input.group !== undefined ? { group: input.group } : {}),
    privileged: false,
    capabilities: { add: [], drop: ["ALL"] },
    defaultCapabilities: [],
    noNewPrivs: true,
    seccomp: { type: "RuntimeDefault" },
    apparmor: { type: "", hostEnabled: false },
    // The kubelet's own figure for sandboxes: the last thing of a pod the OOM killer should pick.
    oomScoreAdj: -998,
    ownOomScoreAdj: input.ownOomScoreAdj,
    resources: {},
    cgroupV2: input.cgroupV2,
    cgroupsPath: input.cgroupsPath,
    pod: { hostname: input.hostname, namespaces: input.namespaces, pidMode: "CONTAINER", sysctls: {} },
    mounts: [],
  });
}
