/**
 * Runtime handlers: the OCI runtimes named in configuration (runc, crun, runsc, ...) and where their binaries are.
 * @module
 */

/** One configured runtime handler, as plain data. */
export interface RuntimeHandlerConfig {
  name: string;
  /** Absolute path, or a bare name looked up in PATH; empty means the handler's name. */
  runtimePath: string;
  runtimeRoot: string;
  runtimeType: string;
}

/** Where a handler's binary is, or why it cannot be used. */
export type RuntimeBinary = { ok: true; path: string } | { ok: false; reason: string };

/** Finds the executable for a handler: an absolute path as given, a bare name through `searchPath`. */
export async function resolveRuntimeBinary(
  handler: RuntimeHandlerConfig,
  searchPath: string = Deno.env.get("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
): Promise<RuntimeBinary> {
  const wanted = handler.runtimePath || handler.name;
  const candidates = wanted.includes("/")
    ? [wanted]
    : searchPath.split(":").filter(Boolean).map((d) => `${d}/${wanted}`);
  for (const path of candidates) {
    try {
      const info = await Deno.stat(path);
      if (info.isFile && info.mode !== null && (info.mode & 0o111) !== 0) return { ok: true, path };
    } catch {
      // not here; try the next directory
    }
  }
  return {
    ok: false,
    reason: wanted.includes("/")
      ? `runtime handler "${handler.name}": ${wanted} is missing or not executable`
      : `runtime handler "${handler.name}": "${wanted}" was not found in PATH`,
  };
}
