/**
 * `davit serve`: loads configuration (defaults < file < drop-ins < flags), starts the daemon, reloads on SIGHUP
 * and shuts down on SIGTERM or SIGINT.
 * @module
 */
import { type Config, describeFlags, loadConfig, parseConfigFlags } from "../lib/config.ts";
import { errorMessage, InvalidArgument } from "../lib/errors.ts";
import { configureLogging, logger } from "../lib/log.ts";
import { Daemon } from "./daemon.ts";

const HELP = `davit serve: run the CRI daemon

Usage: davit [serve] [flags]

Reads /etc/davit/davit.toml, then /etc/davit/davit.conf.d/*.toml, then these flags:
`;

/** Entry point of the serve mode. Returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP + describeFlags());
    return 0;
  }
  const log = logger("serve");
  let parsed: ReturnType<typeof parseConfigFlags>;
  try {
    parsed = parseConfigFlags(args);
    if (parsed.rest.length) throw new InvalidArgument(`davit serve: unknown argument "${parsed.rest[0]}"`);
  } catch (err) {
    console.error(errorMessage(err));
    return 2;
  }
  const load = async (): Promise<Config> =>
    (await loadConfig({ ...parsed.configFiles, flags: parsed.overrides })).config;
  let config: Config;
  try {
    const loaded = await loadConfig({ ...parsed.configFiles, flags: parsed.overrides });
    config = loaded.config;
    configureLogging({ level: config.davit.log_level, format: config.davit.log_format });
    log.info("configuration loaded", {
      sources: loaded.sources.length ? loaded.sources.join(",") : "built-in defaults",
    });
  } catch (err) {
    console.error(`davit: ${errorMessage(err)}`);
    return 1;
  }

  // A bug that leaves a promise rejected without a handler must not take the node's runtime down with it.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log.error("unhandled rejection (a bug; the daemon carries on)", { error: errorMessage(e.reason) });
  });

  // Signal handlers go in before the socket exists: a client may signal the daemon as soon as it can connect, and
  // SIGHUP's default action would end the process. Signals that arrive during start-up are acted on once it is done.
  const { promise: stopped, resolve } = Promise.withResolvers<void>();
  let daemon: Daemon | undefined;
  let pendingStop = false, pendingHup = false;
  const onStop = () => {
    if (daemon) void daemon.stop().then(resolve);
    else pendingStop = true;
  };
  const onHup = () => {
    if (daemon) void daemon.reload();
    else pendingHup = true;
  };
  Deno.addSignalListener("SIGTERM", onStop);
  Deno.addSignalListener("SIGINT", onStop);
  Deno.addSignalListener("SIGHUP", onHup);
  const removeListeners = () => {
    Deno.removeSignalListener("SIGTERM", onStop);
    Deno.removeSignalListener("SIGINT", onStop);
    Deno.removeSignalListener("SIGHUP", onHup);
  };
  try {
    daemon = await Daemon.start({ config, reload: load });
  } catch (err) {
    log.error("cannot start", { error: errorMessage(err) });
    removeListeners();
    return 1;
  }
  if (pendingHup) void daemon.reload();
  if (pendingStop) onStop();
  await stopped;
  removeListeners();
  return 0;
}
