/** Builds the image service from configuration: registries.conf, the signature policy and the store. */
import {
  type AuthFile,
  findCredentials,
  ImagePuller,
  ImageService,
  loadPolicy,
  loadRegistriesConf,
  parseAuthFile,
  RegistryClient,
} from "../image/mod.ts";
import { type Config, parseDuration } from "../lib/config.ts";
import { VERSION } from "../lib/build_info.ts";
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
  let authFile: AuthFile | undefined;
  if (cfg.image.global_auth_file) {
    const path = cfg.image.global_auth_file;
    const text = await Deno.readTextFile(path).catch((err) => {
      throw new FailedPrecondition(`global_auth_file ${path}: ${errorMessage(err)}`, { cause: err });
    });
    authFile = parseAuthFile(text, path);
  }
  const store = new ImageStore(db, cfg.root);
  const registry = new RegistryClient({
    certsDir: cfg.image.certs_dir,
    userAgent: `davit/${VERSION}`,
    progressTimeoutMs: parseDuration(cfg.image.pull_progress_timeout),
    log,
  });
  const puller = new ImagePuller({
    store,
    registry,
    registries,
    policy,
    concurrency: cfg.image.max_concurrent_layer_downloads,
    credentialsFor: (ref) => authFile && findCredentials(authFile, `${ref.registry}/${ref.repository}`),
    log,
  });
  return new ImageService({
    store,
    puller,
    registries,
    policy,
    settings: {
      pauseImage: cfg.image.pause_image,
      pinnedImages: cfg.image.pinned_images,
      maxConcurrentLayerDownloads: cfg.image.max_concurrent_layer_downloads,
    },
  });
}
