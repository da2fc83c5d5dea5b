/**
 * The shape of davit's configuration: the typed {@link Config}, its built-in defaults, and one entry per key with
 * its rule and a one-sentence description. Tables and key names follow crio.conf(5) with `crio` replaced by
 * `davit`; keys CRI-O lacks say so in their description.
 * @module
 */
import { type Level, LEVELS, type LogFormat } from "./log.ts";
import {
  bool,
  byteSize,
  type Check,
  duration,
  int,
  list,
  matching,
  oneOf,
  path,
  portString,
  str,
} from "./config_values.ts";

/** `[davit.api]`: the CRI socket and the streaming server. */
export interface ApiTable {
  listen: string;
  stream_address: string;
  stream_port: string;
  stream_idle_timeout: string;
  stream_token_ttl: string;
  stream_creation_timeout: string;
  stream_enable_tls: boolean;
  stream_tls_cert: string;
  stream_tls_key: string;
  grpc_max_send_msg_size: number;
  grpc_max_recv_msg_size: number;
}

/** `[davit.runtime.runtimes.<handler>]`: one OCI runtime handler. */
export interface RuntimeHandlerTable {
  runtime_path: string;
  runtime_root: string;
  runtime_type: "oci";
  runtime_args: string[];
}

/** `[davit.runtime]`: OCI runtimes and what every container gets by default. */
export interface RuntimeTable {
  default_runtime: string;
  cgroup_manager: "cgroupfs" | "systemd";
  default_capabilities: string[];
  default_sysctls: string[];
  seccomp_profile: string;
  log_size_max: number;
  shm_size: string;
  monitor_pods_per_process: number;
  runtimes: Record<string, RuntimeHandlerTable>;
}

/** `[davit.image]`: pulling and keeping images. */
export interface ImageTable {
  pause_image: string;
  pinned_images: string[];
  signature_policy: string;
  registries_conf: string;
  registries_conf_dir: string;
  global_auth_file: string;
  pull_progress_timeout: string;
  max_concurrent_layer_downloads: number;
  certs_dir: string;
}

/** `[davit.network]`: CNI. */
export interface NetworkTable {
  network_dir: string;
  plugin_dirs: string[];
  cni_default_network: string;
  plugin_timeout: string;
}

/** `[davit.metrics]`: the Prometheus endpoint. */
export interface MetricsTable {
  enable_metrics: boolean;
  metrics_host: string;
  metrics_port: number;
}

/** `[davit]` and its sub-tables. */
export interface DavitTable {
  root: string;
  runroot: string;
  log_dir: string;
  log_level: Level;
  log_format: LogFormat;
  api: ApiTable;
  runtime: RuntimeTable;
  image: ImageTable;
  network: NetworkTable;
  metrics: MetricsTable;
}

/** davit's whole configuration; property names are the TOML key names, so JSON and TOML views match. */
export interface Config {
  davit: DavitTable;
}

/** The placeholder standing for a handler name in {@link KEY_SPECS}. */
export const HANDLER = "<handler>";
/** Prefix of every runtime handler table. */
export const RUNTIMES_TABLE = "davit.runtime.runtimes";

/** The defaults of a runtime handler table named `name` (runc and crun are configured out of the box). */
export function defaultRuntimeHandler(name: string): RuntimeHandlerTable {
  // gVisor on a host without KVM needs its ptrace platform; other runtimes need no global flags.
  return {
    runtime_path: "",
    runtime_root: `/run/${name}`,
    runtime_type: "oci",
    runtime_args: name === "runsc" ? ["--platform=ptrace"] : [],
  };
}

/** The built-in defaults: what davit runs with when no file exists and no flag is given. A fresh object each call. */
export function defaultConfig(): Config {
  return {
    davit: {
      root: "/var/lib/davit",
      runroot: "/run/davit",
      log_dir: "/var/log/pods",
      log_level: "info",
      log_format: "logfmt",
      api: {
        listen: "/run/davit/davit.sock",
        stream_address: "127.0.0.1",
        stream_port: "0",
        stream_idle_timeout: "4h",
        stream_token_ttl: "1m",
        stream_creation_timeout: "30s",
        stream_enable_tls: false,
        stream_tls_cert: "",
        stream_tls_key: "",
        grpc_max_send_msg_size: 80 * 1024 * 1024,
        grpc_max_recv_msg_size: 80 * 1024 * 1024,
      },
      runtime: {
        default_runtime: "runc",
        cgroup_manager: "cgroupfs",
        default_capabilities: [
          "CHOWN",
          "DAC_OVERRIDE",
          "FSETID",
          "FOWNER",
          "SETGID",
          "SETUID",
          "SETPCAP",
          "NET_BIND_SERVICE",
          "KILL",
        ],
        default_sysctls: [],
        seccomp_profile: "",
        log_size_max: -1,
        shm_size: "64Mi",
        monitor_pods_per_process: 8,
        runtimes: { runc: defaultRuntimeHandler("runc"), crun: defaultRuntimeHandler("crun") },
      },
      image: {
        pause_image: "registry.k8s.io/pause:3.10",
        pinned_images: [],
        signature_policy: "",
        registries_conf: "/etc/containers/registries.conf",
        registries_conf_dir: "/etc/containers/registries.conf.d",
        global_auth_file: "",
        pull_progress_timeout: "0s",
        max_concurrent_layer_downloads: 3,
        certs_dir: "/etc/containers/certs.d",
      },
      network: {
        network_dir: "/etc/cni/net.d/",
        plugin_dirs: ["/opt/cni/bin/", "/usr/lib/cni/"],
        cni_default_network: "",
        plugin_timeout: "60s",
      },
      metrics: { enable_metrics: false, metrics_host: "127.0.0.1", metrics_port: 9090 },
    },
  };
}

/** One configuration key: its dotted name, documentation type, rule and description. */
export interface KeySpec {
  /** Dotted key; handler keys use {@link HANDLER} in place of the handler's name. */
  key: string;
  /** The value's type as shown in the documentation. */
  type: string;
  check: Check;
  description: string;
  /** Applied by a running daemon on SIGHUP; every other key needs a restart. */
  reloadable?: boolean;
}

/** Runtime handler names are what a RuntimeClass's handler may hold: an RFC 1123 label. */
export const HANDLER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const CAPABILITY = /^(CAP_)?[A-Z][A-Z0-9_]*$/;
const SYSCTL = /^\s*[A-Za-z0-9_][A-Za-z0-9_./-]*\s*=.*$/;
const levels = LEVELS as readonly string[];
const enumType = (values: readonly string[]) => `one of ${values.join(", ")}`;

/** Every key davit reads, table by table, in the order `davit config` writes them. */
export const KEY_SPECS: readonly KeySpec[] = [
  {
    key: "davit.root",
    type: "path",
    check: path(),
    description: "Directory for durable state: the metadata database, image layers and container root filesystems.",
  },
  {
    key: "davit.runroot",
    type: "path",
    check: path(),
    description:
      "Directory for state that must not outlive a reboot (sockets, exit files, pinned namespaces); best on a tmpfs.",
  },
  {
    key: "davit.log_dir",
    type: "path",
    check: path(),
    description: "Directory for container logs of pods for which the kubelet names no log directory of their own.",
  },
  {
    key: "davit.log_level",
    type: enumType(levels),
    check: oneOf(levels),
    description: "Least severe level of the daemon's own log lines that is written; a SIGHUP applies a new value.",
    reloadable: true,
  },
  {
    key: "davit.log_format",
    type: enumType(["logfmt", "json"]),
    check: oneOf(["logfmt", "json"]),
    description: "Encoding of the daemon's own log lines on stderr, applied on SIGHUP; davit's own key (not in CRI-O).",
    reloadable: true,
  },
  {
    key: "davit.api.listen",
    type: "path",
    check: path(),
    description: "Unix socket on which davit serves the CRI gRPC API to the kubelet and to crictl.",
  },
  {
    key: "davit.api.stream_address",
    type: "string",
    check: str({ nonEmpty: true }),
    description: "IP address the streaming server for exec, attach and port-forward binds to.",
  },
  {
    key: "davit.api.stream_port",
    type: "port (string)",
    check: portString(),
    description: 'TCP port of the streaming server, written as a string; "0" lets the kernel choose a free port.',
  },
  {
    key: "davit.api.stream_idle_timeout",
    type: "duration",
    check: duration(),
    description:
      'How long an exec, attach or port-forward stream may sit idle before davit closes it; "0s" means never.',
  },
  {
    key: "davit.api.stream_token_ttl",
    type: "duration",
    check: duration(),
    description:
      "How long the URL an Exec, Attach or PortForward call answers stays valid; each URL works once, for that " +
      "one request.",
  },
  {
    key: "davit.api.stream_creation_timeout",
    type: "duration",
    check: duration(),
    description:
      "How long a SPDY client may take to open the streams of an exec or attach (or both streams of a forwarded " +
      "connection) before davit gives up on it.",
  },
  {
    key: "davit.api.stream_enable_tls",
    type: "boolean",
    check: bool(),
    description: "Serve the streaming server over TLS with stream_tls_cert and stream_tls_key instead of plain HTTP.",
  },
  {
    key: "davit.api.stream_tls_cert",
    type: "path or empty",
    check: path({ optional: true }),
    description: "PEM certificate chain of the TLS streaming server; required when stream_enable_tls is true.",
  },
  {
    key: "davit.api.stream_tls_key",
    type: "path or empty",
    check: path({ optional: true }),
    description: "PEM private key belonging to stream_tls_cert; required when stream_enable_tls is true.",
  },
  {
    key: "davit.api.grpc_max_send_msg_size",
    type: "integer (bytes)",
    check: int({ min: 1, max: 2 ** 31 - 1 }),
    description: "Largest gRPC message, in bytes, davit sends in a CRI response.",
  },
  {
    key: "davit.api.grpc_max_recv_msg_size",
    type: "integer (bytes)",
    check: int({ min: 1, max: 2 ** 31 - 1 }),
    description: "Largest gRPC message, in bytes, davit accepts in a CRI request.",
  },
  {
    key: "davit.runtime.default_runtime",
    type: "string",
    check: matching(HANDLER_NAME, "a runtime handler name (lowercase letters, digits and '-')"),
    description:
      "Runtime handler for pods that name none; it must have a [davit.runtime.runtimes.<handler>] table (runc and " +
      "crun have one built in).",
  },
  {
    key: "davit.runtime.cgroup_manager",
    type: enumType(["cgroupfs", "systemd"]),
    check: oneOf(["cgroupfs", "systemd"]),
    description:
      'Who creates container cgroups: "cgroupfs" writes the cgroup filesystem, "systemd" asks systemd; it must ' +
      "match the kubelet's cgroup driver.",
  },
  {
    key: "davit.runtime.default_capabilities",
    type: "list of strings",
    check: list(
      matching(CAPABILITY, 'a capability name such as "CHOWN"', (s) => s.replace(/^CAP_/, "")),
      'capability names such as "CHOWN"',
    ),
    description:
      "Capabilities every container starts with unless its security context drops them; a CAP_ prefix is accepted " +
      "and removed.",
  },
  {
    key: "davit.runtime.default_sysctls",
    type: "list of strings",
    check: list(matching(SYSCTL, 'a sysctl written as "name=value"'), 'sysctls written as "name=value"'),
    description: 'Sysctls set in every pod, each written as "name=value", e.g. "net.ipv4.ping_group_range=0 65535".',
  },
  {
    key: "davit.runtime.seccomp_profile",
    type: "path or empty",
    check: path({ optional: true }),
    description:
      "JSON seccomp profile for containers that ask for the runtime default; empty means davit's built-in profile.",
  },
  {
    key: "davit.runtime.log_size_max",
    type: "integer (bytes)",
    check: int({
      rule: "a negative integer (no limit) or an integer of at least 8192",
      accept: (n) => n < 0 || n >= 8192,
    }),
    description:
      "Largest size in bytes a container's log file may reach; negative means no limit, otherwise at least 8192.",
  },
  {
    key: "davit.runtime.shm_size",
    type: "byte size",
    check: byteSize(),
    description: 'Size of the /dev/shm tmpfs each pod gets, such as "64Mi" or "1G"; davit\'s own key (not in CRI-O).',
  },
  {
    key: "davit.runtime.monitor_pods_per_process",
    type: "integer",
    check: int({ rule: "an integer from 1 to 256", accept: (n) => n >= 1 && n <= 256 }),
    description:
      "How many pods one monitor process serves at most (1: a process per pod), a spare process being kept ready; " +
      "davit's own key.",
  },
  {
    key: `${RUNTIMES_TABLE}.${HANDLER}.runtime_path`,
    type: "path or empty",
    check: path({ optional: true }),
    description:
      "Absolute path of this handler's OCI runtime binary; empty means the first executable named after the handler " +
      "on PATH.",
  },
  {
    key: `${RUNTIMES_TABLE}.${HANDLER}.runtime_root`,
    type: "path",
    check: path(),
    description: "State directory the OCI runtime is given as its --root; defaults to /run/<handler>.",
  },
  {
    key: `${RUNTIMES_TABLE}.${HANDLER}.runtime_type`,
    type: enumType(["oci"]),
    check: oneOf(["oci"]),
    description: 'Kind of runtime behind this handler; davit drives only "oci" runtimes with a runc-like command line.',
  },
  {
    key: `${RUNTIMES_TABLE}.${HANDLER}.runtime_args`,
    type: "list of strings",
    check: list(
      matching(/^--[a-z0-9-]+(=.*)?$/, 'a flag written as "--name" or "--name=value"'),
      'flags written as "--name[=value]"',
    ),
    description:
      'Global flags given to this handler\'s runtime before every command, e.g. ["--platform=ptrace"] for runsc; ' +
      "davit's own key (not in CRI-O).",
  },
  {
    key: "davit.image.pause_image",
    type: "string",
    check: str({ nonEmpty: true }),
    description:
      "Image of the infra process of pods that share a PID namespace (pid POD), named with its registry host; pulled when missing.",
  },
  {
    key: "davit.image.pinned_images",
    type: "list of strings",
    check: list(str({ nonEmpty: true }), "non-empty strings"),
    description:
      "Images reported as pinned so the kubelet never garbage-collects them: exact names, a trailing * glob, or *keyword*.",
  },
  {
    key: "davit.image.signature_policy",
    type: "path or empty",
    check: path({ optional: true }),
    description:
      "containers-policy.json(5) file deciding which images may be pulled; empty means /etc/containers/policy.json.",
  },
  {
    key: "davit.image.registries_conf",
    type: "path",
    check: path(),
    description:
      "containers-registries.conf(5) file with search registries, mirrors and blocked or insecure registries; " +
      "davit's own key (not in CRI-O).",
  },
  {
    key: "davit.image.registries_conf_dir",
    type: "path",
    check: path(),
    description:
      "Directory of registries.conf drop-ins read after registries_conf in lexical order; davit's own key (not in " +
      "CRI-O).",
  },
  {
    key: "davit.image.global_auth_file",
    type: "path or empty",
    check: path({ optional: true }),
    description:
      "Registry credentials in the config.json format, used when a pull request brings none; empty means none.",
  },
  {
    key: "davit.image.pull_progress_timeout",
    type: "duration",
    check: duration(),
    description: 'A pull that receives no data for this long is cancelled; "0s" turns the check off.',
  },
  {
    key: "davit.image.max_concurrent_layer_downloads",
    type: "integer",
    check: int({ min: 1, max: 64 }),
    description: "How many layers of one image are downloaded at the same time; davit's own key (not in CRI-O).",
  },
  {
    key: "davit.image.certs_dir",
    type: "path",
    check: path(),
    description: "Directory of per-registry TLS files (<host[:port]>/ca.crt, client.cert, client.key) as in " +
      "containers-certs.d(5); davit's own key (not in CRI-O).",
  },
  {
    key: "davit.network.network_dir",
    type: "path",
    check: path(),
    description: "Directory searched for CNI network configuration files (.conf, .conflist, .json).",
  },
  {
    key: "davit.network.plugin_dirs",
    type: "list of paths",
    check: list(path(), "absolute paths"),
    description: "Directories searched, in order, for CNI plugin binaries.",
  },
  {
    key: "davit.network.cni_default_network",
    type: "string",
    check: str(),
    description: "Name of the CNI network pods join; empty means the first configuration in network_dir by file name.",
  },
  {
    key: "davit.network.plugin_timeout",
    type: "duration",
    check: duration(),
    description:
      "Longest one CNI plugin run may take before it is killed and the pod fails; davit's own key (not in CRI-O).",
  },
  {
    key: "davit.metrics.enable_metrics",
    type: "boolean",
    check: bool(),
    description: "Serve Prometheus metrics over HTTP on metrics_host and metrics_port.",
  },
  {
    key: "davit.metrics.metrics_host",
    type: "string",
    check: str({ nonEmpty: true }),
    description: "Address the metrics endpoint binds to.",
  },
  {
    key: "davit.metrics.metrics_port",
    type: "integer",
    check: int({ min: 1, max: 65535 }),
    description: "TCP port of the metrics endpoint.",
  },
];

/** The tables of a configuration, in file order; the handler table stands for every handler. */
export const TABLES: readonly string[] = [
  "davit",
  "davit.api",
  "davit.runtime",
  `${RUNTIMES_TABLE}.${HANDLER}`,
  "davit.image",
  "davit.network",
  "davit.metrics",
];

/** Keys that a running daemon applies on SIGHUP. */
export const RELOADABLE_KEYS: readonly string[] = KEY_SPECS.filter((k) => k.reloadable).map((k) => k.key);

/** The table part of a dotted key. */
export function tableOf(key: string): string {
  return key.slice(0, key.lastIndexOf("."));
}

/** The last segment of a dotted key. */
export function leafOf(key: string): string {
  return key.slice(key.lastIndexOf(".") + 1);
}

/** The spec of a dotted key (handler keys by their real name), or undefined. */
export function specOf(key: string): KeySpec | undefined {
  return SPEC_BY_KEY.get(genericKey(key));
}

/** Replaces a handler's name in a dotted key with {@link HANDLER}. */
export function genericKey(key: string): string {
  if (!key.startsWith(RUNTIMES_TABLE + ".")) return key;
  const parts = key.slice(RUNTIMES_TABLE.length + 1).split(".");
  return parts.length === 2 ? `${RUNTIMES_TABLE}.${HANDLER}.${parts[1]}` : key;
}

const SPEC_BY_KEY = new Map(KEY_SPECS.map((s) => [s.key, s]));
