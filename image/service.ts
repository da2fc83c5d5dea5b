/**
 * The image side of davit as the CRI handlers see it: finding stored images by ID, name or short name, listing,
 * pinning, removing with untag semantics, importing archives, and pulling (image/pull.ts). It holds the loaded
 * registries.conf and signature policy.
 * @module
 */
import { FailedPrecondition, NotFound } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import type { ImageRecord, ImageStore } from "../storage/mod.ts";
import { parseImageConfig } from "./image_config.ts";
import { importImages } from "./import.ts";
import { evaluatePolicy, type Policy } from "./policy.ts";
import { fullString, isShortName, parseImageIdOrReference, parseReference, resolveShortName } from "./reference.ts";
import type { RegistriesConf } from "./registries_conf.ts";
import type { ImagePuller, PullOptions } from "./pull.ts";

/** Settings the image service reads. */
export interface ImageServiceSettings {
  pauseImage: string;
  /** Names or globs (`*` matches any run of characters) of images reported as pinned. */
  pinnedImages: string[];
  maxConcurrentLayerDownloads: number;
}

/** Options of {@link ImageService}. */
export interface ImageServiceOptions {
  store: ImageStore;
  settings: ImageServiceSettings;
  registries: RegistriesConf;
  policy: Policy;
  /** Pulls from registries; absent in tools that only import. */
  puller?: ImagePuller;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp("^" + glob.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
}

/** Stored-image operations shared by the CRI handlers and `davit image`. */
export class ImageService {
  readonly store: ImageStore;
  readonly settings: ImageServiceSettings;
  readonly registries: RegistriesConf;
  readonly policy: Policy;
  readonly log = logger("image");
  readonly #pins: RegExp[];
  readonly #puller: ImagePuller | undefined;

  constructor(opts: ImageServiceOptions) {
    this.store = opts.store;
    this.settings = opts.settings;
    this.registries = opts.registries;
    this.policy = opts.policy;
    this.#puller = opts.puller;
    this.#pins = [opts.settings.pauseImage, ...opts.settings.pinnedImages].flatMap((p) => {
      const full = (() => {
        try {
          return p.includes("*") ? p : fullString(parseReference(p));
        } catch {
          return p;
        }
      })();
      return [globToRegExp(full), globToRegExp(p)];
    });
  }

  /**
   * The full names a user-given image name may mean, in the order to try: itself when qualified; for a short name,
   * registries.conf aliases or unqualified-search-registries, else docker.io (the Docker convention, as containerd).
   */
  candidates(name: string): string[] {
    const parsed = parseImageIdOrReference(name);
    if (parsed.kind === "id") return [parsed.id];
    if (!isShortName(name)) return [fullString(parsed.reference)];
    const { aliases, unqualifiedSearchRegistries } = this.registries;
    const bare = name.split(/[:@]/)[0]!;
    if (aliases[bare] || unqualifiedSearchRegistries.length > 0) {
      return resolveShortName(name, this.registries).map(fullString);
    }
    return [fullString(parsed.reference)];
  }

  /** A stored image by ID, ID prefix, full name or short name; undefined when absent. */
  find(name: string): ImageRecord | undefined {
    const direct = this.store.getImage(name);
    if (direct) return direct;
    for (const c of this.candidates(name)) {
      const hit = this.store.getImage(c);
      if (hit) return hit;
    }
    return undefined;
  }

  /** True when the image is the pause image or matches `pinned_images`. */
  isPinned(img: ImageRecord): boolean {
    const names = [...img.repoTags, ...img.repoDigests];
    return names.some((n) => this.#pins.some((re) => re.test(n)));
  }

  /** Every stored image, or those matching `filter` (a name or ID, as for ImageStatus). */
  list(filter?: string): ImageRecord[] {
    if (!filter) return this.store.listImages();
    const one = this.find(filter);
    return one ? [one] : [];
  }

  /** The user the image's config runs as, split as CRI reports it. */
  imageUser(img: ImageRecord): { uid?: number; username?: string } {
    const user = parseImageConfig(img.config).user ?? "";
    const u = user.split(":")[0] ?? "";
    if (u === "") return {};
    return /^\d+$/.test(u) ? { uid: Number(u) } : { username: u };
  }

  /**
   * Removes an image: by ID it goes with all its names; by name only that name goes unless it was the last tag.
   * An image a container uses is refused with FailedPrecondition naming the container. A name that is not stored
   * is not an error (RemoveImage is idempotent).
   */
  async remove(name: string, usedBy: (imageId: string) => string | undefined): Promise<void> {
    const img = this.find(name);
    if (!img) return;
    const hexPart = name.startsWith("sha256:") ? name.slice(7) : name;
    const byId = parseImageIdOrReference(name).kind === "id" ||
      (/^[0-9a-f]{12,64}$/.test(hexPart) && img.id.slice(7).startsWith(hexPart));
    const matchedName = byId
      ? undefined
      : this.candidates(name).find((c) => [...img.repoTags, ...img.repoDigests].includes(c));
    const lastTag = matchedName !== undefined && img.repoTags.length <= 1 && img.repoTags.includes(matchedName);
    if (byId || lastTag || matchedName === undefined) {
      const container = usedBy(img.id);
      if (container) {
        throw new FailedPrecondition(`Cannot remove image "${img.id}": used by container "${container}"`);
      }
      this.store.removeImage(img.id);
    } else {
      this.store.untag(matchedName);
    }
    const layers = await this.store.collectGarbage();
    this.log.debug("image removed", { image: name, id: img.id, layers_removed: layers.length });
  }

  /** Admits an image under a name by the signature policy (names without a registry skip docker scopes). */
  async admit(name: string | undefined, manifestDigest: string): Promise<void> {
    if (name === undefined) return;
    await evaluatePolicy(this.policy, { reference: parseReference(name), manifestDigest, signatures: [] });
  }

  /** Imports images from a docker-save archive, OCI archive or OCI layout directory. */
  import(path: string, signal?: AbortSignal): Promise<ImageRecord[]> {
    return importImages(path, {
      store: this.store,
      admit: (n, d) => this.admit(n, d),
      concurrency: this.settings.maxConcurrentLayerDownloads,
      log: this.log,
      ...(signal ? { signal } : {}),
    });
  }

  /** Pulls `name` (a short name tries each candidate in order) and returns the stored image. */
  async pull(name: string, opts: PullOptions = {}): Promise<ImageRecord> {
    if (!this.#puller) throw new FailedPrecondition("this davit has no registry access configured");
    const parsed = parseImageIdOrReference(name);
    if (parsed.kind === "id") {
      const img = this.store.getImage(parsed.id);
      if (img) return img;
      throw new NotFound(`image ID ${parsed.id} is not stored and an ID cannot be pulled; pull by name`);
    }
    return await this.#puller.pull(this.candidates(name).map((c) => parseReference(c)), opts);
  }

  /** Like {@link find} but throws NotFound. */
  get(name: string): ImageRecord {
    const img = this.find(name);
    if (!img) throw new NotFound(`image "${name}" is not stored`);
    return img;
  }
}
