/**
 * The image and layer store: metadata in the database, each layer's files in one directory named by its chain ID
 * and shared by every image that contains it. A layer is written into a temporary directory, renamed into place,
 * and recorded in the database last, so a crash at any point leaves either a whole layer or nothing visible; start-up
 * recovery removes whatever a crash left half-made.
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { FailedPrecondition, NotFound } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import type { Migration } from "./db.ts";

/** The store's tables. */
export const IMAGE_STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "layers, images, image names",
    sql: `
      CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        manifest_media_type TEXT NOT NULL,
        config BLOB NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY (image_id, position)
      );
      CREATE INDEX image_layers_chain ON image_layers(chain_id);
      CREATE TABLE image_names (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
      );
      CREATE INDEX image_names_image ON image_names(image_id);
    `,
  },
];

/** A stored layer. */
export interface LayerRecord {
  chainId: string;
  diffId: string;
  parent: string | null;
  size: number;
}

/** A stored image. */
export interface ImageRecord {
  /** `sha256:<hex>` of the image config. */
  id: string;
  manifestDigest: string;
  manifestMediaType: string;
  /** The raw image config JSON. */
  config: Uint8Array;
  size: number;
  createdAt: string;
  /** Chain IDs, base layer first. */
  layers: string[];
  /** `repo:tag` names. */
  repoTags: string[];
  /** `repo@sha256:...` names. */
  repoDigests: string[];
}

/** What {@link ImageStore.putImage} records. */
export interface NewImage {
  id: string;
  manifestDigest: string;
  manifestMediaType: string;
  config: Uint8Array;
  size: number;
  layers: string[];
  repoTags: string[];
  repoDigests: string[];
}

/** Writes a layer's files into `dir` (which exists and is empty) and returns the bytes written. */
export type LayerWriter = (dir: string) => Promise<{ size: number }>;

function hex(digest: string): string {
  const i = digest.indexOf(":");
  return i < 0 ? digest : digest.slice(i + 1);
}

/** Chain IDs from diff IDs (OCI image-spec config.md "Layer ChainID"). */
export async function chainIds(diffIds: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    if (prev === undefined) out.push(d);
    else {
      const bytes = new TextEncoder().encode(`${prev} ${d}`);
      const sum = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      out.push("sha256:" + Array.from(sum, (b) => b.toString(16).padStart(2, "0")).join(""));
    }
  }
  return out;
}

/** The image and layer store under `<root>/overlay`. */
export class ImageStore {
  readonly #db: DatabaseSync;
  readonly #base: string;
  readonly #inflight = new Map<string, Promise<LayerRecord>>();
  readonly #held = new Map<string, number>();
  readonly #log = logger("storage");

  constructor(db: DatabaseSync, root: string) {
    this.#db = db;
    this.#base = `${root}/overlay`;
  }

  /** Directory holding a layer's files (the overlay lower dir). */
  layerDir(chainId: string): string {
    return `${this.#base}/layers/${hex(chainId)}/diff`;
  }

  /** Directory for temporary work; emptied at start. */
  get tmpDir(): string {
    return `${this.#base}/tmp`;
  }

  async #lockFile(): Promise<Deno.FsFile> {
    await Deno.mkdir(this.#base, { recursive: true, mode: 0o700 });
    return await Deno.open(`${this.#base}/store.lock`, { create: true, read: true, write: true, mode: 0o600 });
  }

  /**
   * Runs `fn` while holding the store lock shared. Another process writing into the store (`davit image import`
   * beside a running daemon) holds it for its whole run; recovery and garbage collection need it exclusively, so
   * neither removes layers that process has written but not yet recorded.
   */
  async withSharedLock<T>(fn: () => Promise<T>): Promise<T> {
    const file = await this.#lockFile();
    try {
      await file.lock(false);
      return await fn();
    } finally {
      file.close();
    }
  }

  /** Creates the directories and removes what a crash left half-made. Call once at start. */
  async recover(): Promise<{ removedTemp: number; removedOrphanDirs: number; removedBrokenImages: number }> {
    using file = await this.#lockFile();
    await file.lock(true);
    return await this.#recover();
  }

  /** Creates the store's directories (no recovery: safe beside a running daemon). */
  async ensureDirs(): Promise<void> {
    await Deno.mkdir(`${this.#base}/layers`, { recursive: true, mode: 0o700 });
    await Deno.mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
  }

  async #recover(): Promise<{ removedTemp: number; removedOrphanDirs: number; removedBrokenImages: number }> {
    await Deno.mkdir(`${this.#base}/layers`, { recursive: true, mode: 0o700 });
    let removedTemp = 0, removedOrphanDirs = 0, removedBrokenImages = 0;
    await Deno.remove(this.tmpDir, { recursive: true }).then(() => removedTemp++, () => {});
    await Deno.mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    const known = new Set(
      (this.#db.prepare("SELECT chain_id FROM layers").all() as { chain_id: string }[]).map((r) => hex(r.chain_id)),
    );
    const present = new Set<string>();
    for await (const e of Deno.readDir(`${this.#base}/layers`)) {
      if (known.has(e.name)) present.add(e.name);
      else {
        // A directory renamed into place whose database commit never happened.
        await Deno.remove(`${this.#base}/layers/${e.name}`, { recursive: true });
        removedOrphanDirs++;
      }
    }
    for (const h of known) {
      if (present.has(h)) continue;
      // A recorded layer whose files are gone: every image using it is unusable.
      const chain = `sha256:${h}`;
      const images = this.#db.prepare("SELECT DISTINCT image_id FROM image_layers WHERE chain_id = ?").all(chain) as {
        image_id: string;
      }[];
      this.#tx(() => {
        for (const { image_id } of images) this.#db.prepare("DELETE FROM images WHERE id = ?").run(image_id);
        this.#db.prepare("DELETE FROM layers WHERE chain_id = ?").run(chain);
      });
      removedBrokenImages += images.length;
    }
    if (removedOrphanDirs || removedBrokenImages) {
      this.#log.warn("recovered image store after an unclean stop", { removedOrphanDirs, removedBrokenImages });
    }
    return { removedTemp, removedOrphanDirs, removedBrokenImages };
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  /** The stored layer with this chain ID, if any. */
  getLayer(chainId: string): LayerRecord | undefined {
    const r = this.#db.prepare("SELECT chain_id, diff_id, parent, size FROM layers WHERE chain_id = ?").get(chainId) as
      | { chain_id: string; diff_id: string; parent: string | null; size: number }
      | undefined;
    return r && { chainId: r.chain_id, diffId: r.diff_id, parent: r.parent, size: Number(r.size) };
  }

  /**
   * Stores a layer once: if it exists it is returned; if another caller is writing it, that write is awaited;
   * otherwise `write` fills a temporary directory that is then renamed into place and recorded.
   */
  ingestLayer(
    layer: { chainId: string; diffId: string; parent: string | null },
    write: LayerWriter,
  ): Promise<LayerRecord> {
    const existing = this.getLayer(layer.chainId);
    if (existing) return Promise.resolve(existing);
    const pending = this.#inflight.get(layer.chainId);
    if (pending) return pending;
    const p = this.#ingest(layer, write).finally(() => this.#inflight.delete(layer.chainId));
    this.#inflight.set(layer.chainId, p);
    return p;
  }

  /**
   * Keeps layers safe from garbage collection while a pull or import that uses them has not yet recorded its
   * image; dispose the result when done.
   */
  holdLayers(chainIds: readonly string[]): Disposable {
    for (const c of chainIds) this.#held.set(c, (this.#held.get(c) ?? 0) + 1);
    let released = false;
    return {
      [Symbol.dispose]: () => {
        if (released) return;
        released = true;
        for (const c of chainIds) {
          const n = (this.#held.get(c) ?? 1) - 1;
          if (n <= 0) this.#held.delete(c);
          else this.#held.set(c, n);
        }
      },
    };
  }

  /** True while a layer is being written by some caller. */
  isIngesting(chainId: string): boolean {
    return this.#inflight.has(chainId);
  }

  async #ingest(
    layer: { chainId: string; diffId: string; parent: string | null },
    write: LayerWriter,
  ): Promise<LayerRecord> {
    const work = await Deno.makeTempDir({ dir: this.tmpDir, prefix: "layer-" });
    try {
      await Deno.mkdir(`${work}/diff`, { mode: 0o755 });
      const { size } = await write(`${work}/diff`);
      const final = `${this.#base}/layers/${hex(layer.chainId)}`;
      try {
        await Deno.rename(work, final);
      } catch (err) {
        // Another process (an import beside the daemon) stored the same layer first.
        const taken = await Deno.lstat(final).then(() => true, () => false);
        const theirs = taken ? await this.#awaitLayerRecord(layer.chainId) : undefined;
        if (theirs) {
          await Deno.remove(work, { recursive: true }).catch(() => {});
          return theirs;
        }
        throw err;
      }
      const rec: LayerRecord = { chainId: layer.chainId, diffId: layer.diffId, parent: layer.parent, size };
      try {
        this.#db.prepare("INSERT INTO layers (chain_id, diff_id, parent, size, created_at) VALUES (?, ?, ?, ?, ?)")
          .run(layer.chainId, layer.diffId, layer.parent, size, new Date().toISOString());
      } catch (err) {
        await Deno.remove(final, { recursive: true }).catch(() => {});
        throw err;
      }
      return rec;
    } catch (err) {
      await Deno.remove(work, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  async #awaitLayerRecord(chainId: string): Promise<LayerRecord | undefined> {
    for (let i = 0; i < 50; i++) {
      const rec = this.getLayer(chainId);
      if (rec) return rec;
      await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  }

  /**
   * Records an image whose layers are all stored, in one transaction. Its names move to it from any image that
   * held them before (a re-pulled tag points at the new image; the old one keeps its other names).
   */
  putImage(img: NewImage): ImageRecord {
    for (const c of img.layers) {
      if (!this.getLayer(c)) throw new FailedPrecondition(`cannot record image ${img.id}: layer ${c} is not stored`);
    }
    const now = new Date().toISOString();
    this.#tx(() => {
      this.#db.prepare(
        "INSERT INTO images (id, manifest_digest, manifest_media_type, config, size, created_at) VALUES (?, ?, ?, ?, ?, ?) " +
          "ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest, " +
          "manifest_media_type = excluded.manifest_media_type",
      ).run(img.id, img.manifestDigest, img.manifestMediaType, img.config, img.size, now);
      this.#db.prepare("DELETE FROM image_layers WHERE image_id = ?").run(img.id);
      const addLayer = this.#db.prepare("INSERT INTO image_layers (image_id, position, chain_id) VALUES (?, ?, ?)");
      img.layers.forEach((c, i) => addLayer.run(img.id, i, c));
      const addName = this.#db.prepare(
        "INSERT INTO image_names (name, kind, image_id) VALUES (?, ?, ?) " +
          "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, kind = excluded.kind",
      );
      for (const n of img.repoTags) addName.run(n, "tag", img.id);
      for (const n of img.repoDigests) addName.run(n, "digest", img.id);
    });
    return this.getImage(img.id)!;
  }

  /** An image by ID (`sha256:...`, or its 64-hex form, or a unique prefix of 12+ hex) or by one of its names. */
  getImage(idOrName: string): ImageRecord | undefined {
    let id: string | undefined;
    const byName = this.#db.prepare("SELECT image_id FROM image_names WHERE name = ?").get(idOrName) as
      | { image_id: string }
      | undefined;
    if (byName) id = byName.image_id;
    else {
      const h = idOrName.startsWith("sha256:") ? idOrName.slice(7) : idOrName;
      if (/^[0-9a-f]{64}$/.test(h)) id = `sha256:${h}`;
      else if (/^[0-9a-f]{12,63}$/.test(h)) {
        const rows = this.#db.prepare("SELECT id FROM images WHERE id LIKE ?").all(`sha256:${h}%`) as { id: string }[];
        if (rows.length === 1) id = rows[0]!.id;
      }
    }
    if (!id) return undefined;
    const r = this.#db.prepare(
      "SELECT id, manifest_digest, manifest_media_type, config, size, created_at FROM images WHERE id = ?",
    ).get(id) as
      | {
        id: string;
        manifest_digest: string;
        manifest_media_type: string;
        config: Uint8Array;
        size: number;
        created_at: string;
      }
      | undefined;
    if (!r) return undefined;
    return this.#record(r);
  }

  #record(
    r: {
      id: string;
      manifest_digest: string;
      manifest_media_type: string;
      config: Uint8Array;
      size: number;
      created_at: string;
    },
  ): ImageRecord {
    const layers =
      (this.#db.prepare("SELECT chain_id FROM image_layers WHERE image_id = ? ORDER BY position").all(r.id) as {
        chain_id: string;
      }[]).map((x) => x.chain_id);
    const names = this.#db.prepare("SELECT name, kind FROM image_names WHERE image_id = ? ORDER BY name").all(r.id) as {
      name: string;
      kind: string;
    }[];
    return {
      id: r.id,
      manifestDigest: r.manifest_digest,
      manifestMediaType: r.manifest_media_type,
      config: new Uint8Array(r.config),
      size: Number(r.size),
      createdAt: r.created_at,
      layers,
      repoTags: names.filter((n) => n.kind === "tag").map((n) => n.name),
      repoDigests: names.filter((n) => n.kind === "digest").map((n) => n.name),
    };
  }

  /** Every stored image. */
  listImages(): ImageRecord[] {
    const rows = this.#db.prepare(
      "SELECT id, manifest_digest, manifest_media_type, config, size, created_at FROM images ORDER BY created_at, id",
    ).all() as {
      id: string;
      manifest_digest: string;
      manifest_media_type: string;
      config: Uint8Array;
      size: number;
      created_at: string;
    }[];
    return rows.map((r) => this.#record(r));
  }

  /** Removes one name; the image itself goes when its last tag goes (and with it every unreferenced layer). */
  untag(name: string): { removedImage: boolean } {
    const row = this.#db.prepare("SELECT image_id FROM image_names WHERE name = ?").get(name) as
      | { image_id: string }
      | undefined;
    if (!row) throw new NotFound(`image name "${name}" is not stored`);
    return this.#tx(() => {
      this.#db.prepare("DELETE FROM image_names WHERE name = ?").run(name);
      const tags = this.#db.prepare("SELECT COUNT(*) AS n FROM image_names WHERE image_id = ? AND kind = 'tag'").get(
        row.image_id,
      ) as { n: number };
      if (Number(tags.n) > 0) return { removedImage: false };
      this.#db.prepare("DELETE FROM images WHERE id = ?").run(row.image_id);
      return { removedImage: true };
    });
  }

  /** Removes an image and all its names. */
  removeImage(id: string): void {
    this.#tx(() => this.#db.prepare("DELETE FROM images WHERE id = ?").run(id));
  }

  /**
   * Deletes layers that no image references (and that no pull is writing); returns their chain IDs. Skipped (and
   * left for the next call) while another process holds the store lock.
   */
  async collectGarbage(): Promise<string[]> {
    using file = await this.#lockFile();
    if (!await file.tryLock(true)) return [];
    const rows = this.#db.prepare(
      "SELECT chain_id FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)",
    ).all() as { chain_id: string }[];
    const removed: string[] = [];
    for (const { chain_id } of rows) {
      if (this.#inflight.has(chain_id) || this.#held.has(chain_id)) continue;
      // Database first: a crash between the two leaves an orphan directory, which recovery removes.
      this.#db.prepare("DELETE FROM layers WHERE chain_id = ?").run(chain_id);
      await Deno.remove(`${this.#base}/layers/${hex(chain_id)}`, { recursive: true }).catch(() => {});
      removed.push(chain_id);
    }
    return removed;
  }
}
