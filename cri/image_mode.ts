/**
 * `davit image`: operator commands on the image store that work whether or not the daemon runs. They share the
 * daemon's database (SQLite in WAL mode serialises writers) and take the store lock shared, so a running daemon's
 * garbage collection and start-up recovery leave their half-written layers alone.
 * @module
 */
import { describeFlags, loadConfig, parseConfigFlags } from "../lib/config.ts";
import { errorMessage } from "../lib/errors.ts";
import { configureLogging, logger } from "../lib/log.ts";
import { DAEMON_MIGRATIONS, IMAGE_STORE_MIGRATIONS, openDatabase } from "../storage/mod.ts";
import { openImageService } from "./image_setup.ts";

const HELP = `davit image: manage stored images without the daemon

Usage:
  davit image import FILE|DIR...   load docker-save archives, OCI archives or OCI layout directories
  davit image ls [--json]          list stored images
  davit image rm NAME|ID...        remove images (by ID: the whole image; by name: that name)

Flags (as for davit serve) choose the configuration, e.g. --root:
`;

/** Entry point of the image mode. */
export async function main(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === "--help" || verb === "-h" || rest.includes("--help")) {
    console.log(HELP + describeFlags());
    return verb === undefined ? 2 : 0;
  }
  if (!["import", "ls", "rm"].includes(verb)) {
    console.error(`davit image: unknown command "${verb}"`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseConfigFlags(rest.filter((a) => a !== "--json"));
  } catch (err) {
    console.error(`davit image: ${errorMessage(err)}`);
    return 2;
  }
  const operands = parsed.rest;
  const unknownFlag = operands.find((a) => a.startsWith("-"));
  if (unknownFlag) {
    console.error(`davit image: unknown flag "${unknownFlag}"`);
    return 2;
  }
  if (verb !== "ls" && operands.length === 0) {
    console.error(`davit image ${verb}: name at least one ${verb === "import" ? "file or directory" : "image"}`);
    return 2;
  }
  try {
    const { config } = await loadConfig({ ...parsed.configFiles, flags: parsed.overrides });
    configureLogging({ level: config.davit.log_level, format: config.davit.log_format });
    const log = logger("image-cli");
    await Deno.mkdir(config.davit.root, { recursive: true, mode: 0o711 });
    const db = openDatabase(`${config.davit.root}/davit.db`, {
      daemon: DAEMON_MIGRATIONS,
      storage: IMAGE_STORE_MIGRATIONS,
    });
    try {
      const images = await openImageService(config, db, log);
      await images.store.ensureDirs();
      if (verb === "import") {
        await images.store.withSharedLock(async () => {
          for (const path of operands) {
            for (const img of await images.import(path)) {
              console.log(`${img.id}\t${[...img.repoTags].join(",") || "<none>"}`);
            }
          }
        });
      } else if (verb === "ls") {
        const all = images.list();
        if (rest.includes("--json")) {
          console.log(JSON.stringify(
            all.map((i) => ({
              id: i.id,
              repoTags: i.repoTags,
              repoDigests: i.repoDigests,
              size: i.size,
              pinned: images.isPinned(i),
            })),
            null,
            2,
          ));
        } else {
          console.log("IMAGE ID\tSIZE\tNAMES");
          for (const i of all) {
            console.log(`${i.id.slice(7, 19)}\t${i.size}\t${[...i.repoTags, ...i.repoDigests].join(",")}`);
          }
        }
      } else {
        for (const name of operands) await images.remove(name, () => undefined);
      }
    } finally {
      db.close();
    }
    return 0;
  } catch (err) {
    console.error(`davit image ${verb}: ${errorMessage(err)}`);
    return 1;
  }
}
