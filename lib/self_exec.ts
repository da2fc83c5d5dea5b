/**
 * Launching davit itself (the monitor mode, helper modes) in either of its two forms: the compiled executable, or
 * `deno run main.ts` during development and tests. This is the one place that knows the difference.
 * @module
 */
import { markCloseOnExec } from "./libc.ts";

/**
 * Permissions the binary needs; `deno compile` bakes the same list in. It is all of them: a container runtime
 * reads /proc/self (mountinfo, fds), which Deno grants only with --allow-all, and runs as root anyway.
 */
export const PERMISSION_FLAGS = ["--allow-all"] as const;

/** How this process was started. */
export interface SelfForm {
  /** True for a `deno compile` executable. */
  compiled: boolean;
  /** The executable to run. */
  execPath: string;
  /** Arguments that go before davit's own (empty when compiled). */
  prefix: string[];
}

/** Options for {@link selfForm}. */
export interface SelfFormOptions {
  /**
   * The mode launched imports nothing through deno.json's import map (no npm packages): under `deno run` the child
   * then gets `--no-config --no-npm`, so it neither reads the config and lock file nor sets up npm resolution,
   * which costs a long-lived process (the pod monitor) memory for its whole life. No effect when compiled.
   */
  bare?: boolean;
}

/**
 * Works out how to start this program again. A compiled binary runs its embedded main module, so it is launched
 * directly; otherwise (`deno run main.ts`, or `deno test`, whose main module is a test file) the same Deno runs
 * main.ts, found beside this module's folder, with the same config file (unless `bare`) and permissions.
 */
export function selfForm(
  mainModule: string = new URL("../main.ts", import.meta.url).href,
  execPath: string = Deno.execPath(),
  opts: SelfFormOptions = {},
): SelfForm {
  // A compiled executable serves its embedded modules from a virtual file system rooted in a temporary
  // "deno-compile-" directory, and is not itself called deno.
  const base = execPath.slice(execPath.lastIndexOf("/") + 1);
  const compiled = mainModule.includes("/deno-compile-") || !base.startsWith("deno");
  if (compiled) return { compiled: true, execPath, prefix: [] };
  const mainUrl = new URL(mainModule);
  const configUrl = new URL("deno.json", mainModule);
  const prefix = ["run", "--quiet", "--no-prompt", ...PERMISSION_FLAGS];
  if (opts.bare) {
    prefix.push("--no-config", "--no-npm", mainUrl.pathname);
    return { compiled: false, execPath, prefix };
  }
  try {
    Deno.statSync(configUrl);
    prefix.push("--config", configUrl.pathname);
  } catch {
    // no config beside main.ts: the launched process finds its own
  }
  prefix.push(mainUrl.pathname);
  return { compiled: false, execPath, prefix };
}

/** Options for {@link selfCommand}. */
export interface SelfCommandOptions {
  env?: Record<string, string>;
  clearEnv?: boolean;
  cwd?: string;
  stdin?: "piped" | "inherit" | "null";
  stdout?: "piped" | "inherit" | "null";
  stderr?: "piped" | "inherit" | "null";
  /** Start in a new session (setsid) so it survives the parent; Deno exposes this as `detached`. */
  detached?: boolean;
  signal?: AbortSignal;
  /** See {@link SelfFormOptions.bare}. */
  bare?: boolean;
}

/** A `Deno.Command` that runs davit with `args`, in whichever form this process runs. */
export function selfCommand(args: string[], opts: SelfCommandOptions = {}): Deno.Command {
  const form = selfForm(undefined, undefined, { bare: opts.bare ?? false });
  const options: Deno.CommandOptions = { args: [...form.prefix, ...args] };
  if (opts.env) options.env = opts.env;
  if (opts.clearEnv) options.clearEnv = opts.clearEnv;
  if (opts.cwd) options.cwd = opts.cwd;
  if (opts.stdin) options.stdin = opts.stdin;
  if (opts.stdout) options.stdout = opts.stdout;
  if (opts.stderr) options.stderr = opts.stderr;
  if (opts.detached) options.detached = opts.detached;
  if (opts.signal) options.signal = opts.signal;
  markCloseOnExec();
  return new Deno.Command(form.execPath, options);
}
