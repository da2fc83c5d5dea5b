// Development-time generator for the CRI definition. Never run by the daemon.
//
//   deno run -A scripts/gen_cri.ts --facts ../shared/cri/runtime-v1.json   rewrites cri/api.proto from the facts
//   deno run -A scripts/gen_cri.ts                                           rewrites cri/api_descriptor.ts from cri/api.proto
//
// cri/api.proto is the project's readable statement of the contract; cri/api_descriptor.ts is the same contract as a
// protobufjs JSON descriptor, embedded in the binary so nothing is read from disk at run time. A test checks that the
// two agree.
import protobuf from "protobufjs";

type Json = Record<string, any>;

const METHOD_NOTES: Record<string, string> = {
  Version: "Names the runtime and the CRI version it speaks.",
  RunPodSandbox: "Creates a pod's shared environment (namespaces, cgroup, network) and leaves it ready.",
  StopPodSandbox: "Stops every container of a pod and releases its network; safe to call again.",
  RemovePodSandbox: "Removes a pod and all its containers; safe to call for a pod already gone.",
  PodSandboxStatus: "Reports a pod's state, IPs and metadata.",
  ListPodSandbox: "Lists pods, optionally filtered by id, state or labels.",
  StreamPodSandboxes: "Like ListPodSandbox, sent in several messages so large lists fit.",
  CreateContainer: "Creates a container inside a pod; it stays CREATED until started.",
  StartContainer: "Starts a created container.",
  StopContainer: "Signals a container to stop, killing it after the timeout; safe to call again.",
  RemoveContainer: "Removes a container, killing it first if it still runs.",
  ListContainers: "Lists containers, optionally filtered.",
  StreamContainers: "Like ListContainers, sent in several messages so large lists fit.",
  ContainerStatus: "Reports one container's state, exit code, times and metadata.",
  UpdateContainerResources: "Changes a running container's resource limits.",
  ReopenContainerLog: "Asks the runtime to reopen a container's log file (after rotation).",
  ExecSync: "Runs a command in a container and returns its output and exit code.",
  Exec: "Prepares a streaming exec session and answers its URL.",
  Attach: "Prepares a streaming attach session and answers its URL.",
  PortForward: "Prepares a streaming port-forward session and answers its URL.",
  ContainerStats: "Reports one container's resource usage.",
  ListContainerStats: "Reports resource usage for many containers.",
  StreamContainerStats: "Like ListContainerStats, in several messages.",
  PodSandboxStats: "Reports one pod's resource usage.",
  ListPodSandboxStats: "Reports resource usage for many pods.",
  StreamPodSandboxStats: "Like ListPodSandboxStats, in several messages.",
  UpdateRuntimeConfig: "Passes runtime-wide settings from the kubelet, such as the pod CIDR.",
  Status: "Reports whether the runtime and its network are ready.",
  CheckpointContainer: "Checkpoints a running container to an archive.",
  GetContainerEvents: "Streams container lifecycle events as they happen.",
  ListMetricDescriptors: "Describes the metrics ListPodSandboxMetrics can return.",
  ListPodSandboxMetrics: "Reports pod and container metrics in Prometheus-like form.",
  StreamPodSandboxMetrics: "Like ListPodSandboxMetrics, in several messages.",
  RuntimeConfig: "Tells the kubelet runtime-side settings it must match, such as the cgroup driver.",
  UpdatePodSandboxResources: "Tells the runtime about a pod's changed resource requirements.",
  ListImages: "Lists stored images, optionally filtered.",
  StreamImages: "Like ListImages, in several messages.",
  ImageStatus: "Reports one stored image, or nothing when it is absent.",
  PullImage: "Pulls an image from a registry and stores it.",
  RemoveImage: "Removes an image or one of its names; safe to call for an image already gone.",
  ImageFsInfo: "Reports the space and inodes used by image and container storage.",
};

function fieldLine(name: string, f: Json): string {
  const opts: string[] = [];
  if (f.options?.deprecated) opts.push("deprecated = true");
  if (f.options?.debug_redact) opts.push("debug_redact = true");
  const suffix = opts.length ? ` [${opts.join(", ")}]` : "";
  if (f.keyType) return `map<${f.keyType}, ${f.type}> ${name} = ${f.id}${suffix};`;
  return `${f.rule === "repeated" ? "repeated " : ""}${f.type} ${name} = ${f.id}${suffix};`;
}

function emit(name: string, node: Json, indent: string, out: string[]): void {
  if (node.methods) {
    out.push(`${indent}service ${name} {`);
    for (const [m, d] of Object.entries<Json>(node.methods)) {
      const note = METHOD_NOTES[m];
      if (note) out.push(`${indent}  // ${note}`);
      const stream = d.responseStream ? "stream " : "";
      out.push(`${indent}  rpc ${m}(${d.requestType}) returns (${stream}${d.responseType}) {}`);
    }
    out.push(`${indent}}`, "");
  } else if (node.values) {
    out.push(`${indent}enum ${name} {`);
    for (const [v, n] of Object.entries(node.values)) out.push(`${indent}  ${v} = ${n};`);
    out.push(`${indent}}`, "");
  } else {
    out.push(`${indent}message ${name} {`);
    for (const [child, c] of Object.entries<Json>(node.nested ?? {})) emit(child, c, indent + "  ", out);
    for (const [f, d] of Object.entries<Json>(node.fields ?? {})) out.push(`${indent}  ${fieldLine(f, d)}`);
    out.push(`${indent}}`, "");
  }
}

function protoFromFacts(facts: Json): string {
  const v1 = facts.nested.runtime.nested.v1;
  const out = [
    "// davit's statement of the Kubernetes Container Runtime Interface, package runtime.v1.",
    "// Field names, numbers and types are the wire contract a kubelet or crictl speaks; they must never change.",
    "// Generated once from the published facts by scripts/gen_cri.ts, then kept here as the source of truth.",
    'syntax = "proto3";',
    "",
    "package runtime.v1;",
    'option go_package = "k8s.io/cri-api/pkg/apis/runtime/v1";',
    "",
  ];
  for (const [name, node] of Object.entries<Json>(v1.nested)) emit(name, node, "", out);
  return out.join("\n");
}

const root = new URL("../", import.meta.url);
const factsIdx = Deno.args.indexOf("--facts");
if (factsIdx >= 0) {
  const facts = JSON.parse(await Deno.readTextFile(Deno.args[factsIdx + 1]!));
  await Deno.writeTextFile(new URL("cri/api.proto", root), protoFromFacts(facts));
}
const proto = await Deno.readTextFile(new URL("cri/api.proto", root));
const parsed = protobuf.parse(proto, { keepCase: true }).root.toJSON();
const ts = [
  "// The CRI v1 contract as a protobufjs JSON descriptor, generated from cri/api.proto by scripts/gen_cri.ts.",
  "// Embedded so the compiled binary never reads a .proto file at run time. Do not edit by hand.",
  "// deno-fmt-ignore-file",
  `export const CRI_DESCRIPTOR = ${JSON.stringify(parsed)} as const;`,
  "",
].join("\n");
await Deno.writeTextFile(new URL("cri/api_descriptor.ts", root), ts);
console.log("wrote cri/api_descriptor.ts");
