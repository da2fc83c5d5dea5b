/** `davit config`: prints the effective configuration (or the built-in defaults) as TOML. */
import { configToToml, defaultConfig, describeFlags, loadConfig, parseConfigFlags } from "../lib/config.ts";
import { errorMessage } from "../lib/errors.ts";

/** Entry point of the config mode. */
export async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(
      "davit config [--default] [flags]: print the effective configuration as TOML\n\n" +
        "  --default  print the built-in defaults, ignoring files and flags\n" + describeFlags(),
    );
    return 0;
  }
  try {
    if (args.includes("--default")) {
      const rest = args.filter((a) => a !== "--default");
      if (rest.length) throw new Error(`davit config: --default takes no other flags, got "${rest[0]}"`);
      console.log(configToToml(defaultConfig()));
      return 0;
    }
    const parsed = parseConfigFlags(args);
    if (parsed.rest.length) {
      console.error(`davit config: unknown argument "${parsed.rest[0]}"`);
      return 2;
    }
    const loaded = await loadConfig({ ...parsed.configFiles, flags: parsed.overrides });
    console.log(configToToml(loaded.config));
    return 0;
  } catch (err) {
    console.error(`davit config: ${errorMessage(err)}`);
    return err instanceof Error && err.name === "InvalidArgumentError" && /flag/.test(err.message) ? 2 : 1;
  }
}
