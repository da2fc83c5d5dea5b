/** `davit version`: davit's version and commit, Deno/V8/TypeScript versions and the CRI API version. */
import { COMMIT, VERSION } from "../lib/build_info.ts";
import { CRI_API_VERSION } from "./codec.ts";

/** Entry point of the version mode. */
export function main(args: string[]): Promise<number> {
  const json = args.includes("--json");
  const unknown = args.find((a) => a !== "--json" && a !== "--help" && a !== "-h");
  if (args.includes("--help") || args.includes("-h")) {
    console.log("davit version [--json]: print versions of davit, Deno, V8, TypeScript and the CRI API");
    return Promise.resolve(0);
  }
  if (unknown) {
    console.error(`davit version: unknown flag "${unknown}"`);
    return Promise.resolve(2);
  }
  const info = {
    davit: VERSION,
    commit: COMMIT || "unknown (running from source)",
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    cri_api: CRI_API_VERSION,
  };
  if (json) console.log(JSON.stringify(info, null, 2));
  else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(11)} ${v}`);
  return Promise.resolve(0);
}
