// `deno task compile`: builds the single davit executable into dist/davit with its permissions baked in.
//
// deno compile needs a base runtime (denort). It downloads one from the internet unless DENORT_BIN names a local
// copy; this machine has no internet, so without DENORT_BIN the task stops with a message saying exactly that.
import { PERMISSION_FLAGS } from "../lib/self_exec.ts";

const root = new URL("../", import.meta.url).pathname;
const denort = Deno.env.get("DENORT_BIN");
if (!denort) {
  console.error(
    "deno task compile: DENORT_BIN is not set. deno compile needs the denort base runtime for Deno " +
      `${Deno.version.deno}; it would download it from the internet, which this machine cannot reach. ` +
      "Set DENORT_BIN to a local denort binary of the same version and run the task again.",
  );
  Deno.exit(1);
}
try {
  const info = await Deno.stat(denort);
  if (!info.isFile) throw new Error("not a file");
} catch (err) {
  console.error(`deno task compile: DENORT_BIN=${denort} is not a readable file (${(err as Error).message})`);
  Deno.exit(1);
}

const git = await new Deno.Command("git", { args: ["-C", root, "rev-parse", "HEAD"], stdout: "piped", stderr: "null" })
  .output().catch(() => undefined);
const commit = git?.success ? new TextDecoder().decode(git.stdout).trim() : "";
const buildInfo = `${root}lib/build_info.ts`;
const original = await Deno.readTextFile(buildInfo);
// The commit is written into the source for the duration of the build only.
await Deno.writeTextFile(
  buildInfo,
  original.replace(/export const COMMIT: string = ".*";/, `export const COMMIT: string = "${commit}";`),
);
try {
  const out = new Deno.Command(Deno.execPath(), {
    args: [
      "compile",
      "--quiet",
      ...PERMISSION_FLAGS,
      "--config",
      `${root}deno.json`,
      "--output",
      `${root}dist/davit`,
      `${root}main.ts`,
    ],
    env: { DENORT_BIN: denort },
  });
  const { code } = await out.spawn().status;
  if (code !== 0) Deno.exit(code);
  console.log(`built ${root}dist/davit (commit ${commit || "unknown"})`);
} finally {
  await Deno.writeTextFile(buildInfo, original);
}
