// davit: a Kubernetes container runtime speaking CRI v1. This file only dispatches to a mode's main(args).
// Modes are imported on demand, so a short-lived or memory-sensitive mode (the pod monitor) never loads the
// daemon's gRPC and protobuf libraries. The specifiers are string literals, so `deno compile` embeds them all.

type ModeMain = (args: string[]) => Promise<number>;
type Mode = { load: () => Promise<{ main: ModeMain }>; help: string };

const MODES: Record<string, Mode> = {
  serve: { load: () => import("./cri/serve.ts"), help: "run the CRI daemon (the default mode)" },
  config: {
    load: () => import("./cri/config_mode.ts"),
    help: "print the effective configuration as TOML (--default: the built-in defaults)",
  },
  image: {
    load: () => import("./cri/image_mode.ts"),
    help: "import, list and remove stored images (works without the daemon)",
  },
  monitor: {
    load: () => import("./monitor/main.ts"),
    help: "the pod monitor, started by the daemon (serves one or more pods; see docs/monitor-protocol.md)",
  },
  network: {
    load: () => import("./cri/network_mode.ts"),
    help: "print (or --write) the default CNI network configuration",
  },
  portforward: {
    load: () => import("./runtime/port_forward_helper.ts"),
    help: "port-forward helper, started by the daemon in a pod's network namespace",
  },
  version: {
    load: () => import("./cri/version_mode.ts"),
    help: "print versions of davit, Deno, V8, TypeScript and the CRI API",
  },
};

function usage(): string {
  const lines = Object.entries(MODES).map(([name, m]) => `  ${name.padEnd(12)} ${m.help}`);
  return `Usage: davit [MODE] [flags]\n\nModes:\n${lines.join("\n")}\n\nRun "davit MODE --help" for a mode's flags.`;
}

async function dispatch(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === "--help" || first === "-h" || first === "help") {
    console.log(usage());
    return 0;
  }
  if (first === undefined || first.startsWith("-")) return (await MODES.serve!.load()).main(args);
  const mode = MODES[first];
  if (!mode) {
    console.error(`davit: unknown mode "${first}"\n\n${usage()}`);
    return 2;
  }
  return (await mode.load()).main(rest);
}

if (import.meta.main) Deno.exit(await dispatch(Deno.args));
