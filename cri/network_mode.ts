/**
 * `davit network default [--write [--force]] [flags]`: prints the built-in default CNI network (a bridge like
 * CRI-O's example: cni0, host-local 10.88.0.0/16, portmap) or installs it into `network_dir`. The daemon never
 * writes it on its own.
 * @module
 */
import { describeFlags, loadConfig, parseConfigFlags } from "../lib/config.ts";
import { errorMessage } from "../lib/errors.ts";
import { DEFAULT_NETWORK_FILE, defaultNetworkConfig } from "../network/mod.ts";

const HELP = `davit network default [--write [--force]] [flags]

Prints the default CNI network configuration davit ships (bridge cni0, host-local 10.88.0.0/16, portmap).
  --write   install it as <network_dir>/${DEFAULT_NETWORK_FILE} (network_dir from the configuration)
  --force   with --write: replace an existing file of that name whose content differs
`;

/** Entry point of the network mode. */
export async function main(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === "--help" || verb === "-h" || rest.includes("--help")) {
    console.log(HELP + describeFlags());
    return verb === undefined ? 2 : 0;
  }
  if (verb !== "default") {
    console.error(`davit network: unknown command "${verb}"`);
    return 2;
  }
  const write = rest.includes("--write"), force = rest.includes("--force");
  let parsed;
  try {
    parsed = parseConfigFlags(rest.filter((a) => a !== "--write" && a !== "--force"));
  } catch (err) {
    console.error(`davit network default: ${errorMessage(err)}`);
    return 2;
  }
  if (parsed.rest.length) {
    console.error(`davit network default: unknown argument "${parsed.rest[0]}"`);
    return 2;
  }
  if (force && !write) {
    console.error("davit network default: --force goes with --write");
    return 2;
  }
  const text = defaultNetworkConfig().trimEnd() + "\n";
  if (!write) {
    console.log(text.trimEnd());
    return 0;
  }
  try {
    const { config } = await loadConfig({ ...parsed.configFiles, flags: parsed.overrides });
    const dir = config.davit.network.network_dir.replace(/\/+$/, "");
    const path = `${dir}/${DEFAULT_NETWORK_FILE}`;
    const existing = await Deno.readTextFile(path).catch(() => undefined);
    if (existing !== undefined && existing !== text && !force) {
      console.error(`davit network default: ${path} exists with other content; use --force to replace it`);
      return 1;
    }
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    const tmp = `${path}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(tmp, text, { mode: 0o644 });
    await Deno.rename(tmp, path);
    console.log(`wrote ${path}`);
    return 0;
  } catch (err) {
    console.error(`davit network default: ${errorMessage(err)}`);
    return 1;
  }
}
