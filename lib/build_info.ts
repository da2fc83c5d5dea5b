/**
 * Facts fixed when the binary is built. `deno task compile` rewrites COMMIT for the build and restores this file;
 * under `deno run` it stays empty and `davit version` says the code runs from source.
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };

/** davit's version, from deno.json. */
export const VERSION: string = denoJson.version;
/** The git commit the binary was built from, or "" when running from source. */
export const COMMIT: string = "a3620cf9d1e751dd544c26e31e127eef1eebf8a8";
