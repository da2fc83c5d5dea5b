/** Builds the image service from configuration: registries.conf, the signature policy and the store. */
import { ImageService, loadPolicy, loadRegistriesConf } from "../image/mod.ts";
import type { Config } from "../lib/config.ts";
import { errorMessage, FailedPrecondition } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { ImageStore } from "../storage/mod.ts";
import type { DatabaseSync } from "node:sqlite";

/** Reads the files that decide what may be pulled (errors name the file) and opens the store on `db`. */
export async function openImageService(config: Config, db: DatabaseSync, log: Logger): Promise<ImageService> {
  const cfg = config.davit;
  const registries = await loadRegistriesConf({
    path: cfg.image.registries_conf,
    dropInDir: cfg.image.registries_conf_dir,
  });
  for (const w of registries.warnings) log.warn("registries.conf", { warning: w });
  const policyPath = cfg.image.signature_policy || "/etc/containers/policy.json";
  const policy = await loadPolicy(policyPath).catch((err) => {
    throw new FailedPrecondition(`signature policy ${policyPath}: ${errorMessage(err)}`, { cause: err });
  });
  return new ImageService({
    store: new ImageStore(db, cfg.root),
    registries,
    policy,
    settings: {
      pauseImage: cfg.image.pause_image,
      pinnedImages: cfg.image.pinned_images,
      maxConcurrentLayerDownloads: cfg.image.max_concurrent_layer_downloads,
    },
  });
}
