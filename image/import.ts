/**
 * Loading images from local files for air-gapped nodes: a `docker save` archive, an OCI archive (a tar of an OCI
 * layout) or an OCI layout directory. Archives are unpacked with the same confined extractor as layers into a
 * temporary directory first; every blob is checked against its digest and every layer against its diff ID.
 * @module
 */
import { FailedPrecondition, InvalidArgument, NotFound } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { extractLayer, type ImageRecord, type ImageStore } from "../storage/mod.ts";
import { digestOf } from "./digest.ts";
import { type BlobOpener, fetchSmallBlob, ingestImage } from "./ingest.ts";
import { type Descriptor, type ImageManifest, MediaType, parseManifest } from "./manifest.ts";
import { hostPlatform, selectPlatform } from "./platform.ts";
import { fullString, parseReference } from "./reference.ts";

/** Decides whether an image may be stored under `name` (the signature policy); throws to refuse. */
export type ImportAdmission = (name: string | undefined, manifestDigest: string) => Promise<void>;

/** Options of {@link importImages}. */
export interface ImportOptions {
  store: ImageStore;
  admit: ImportAdmission;
  concurrency: number;
  log: Logger;
  signal?: AbortSignal;
}

/** One image found in an archive or layout. */
interface Found {
  manifest: ImageManifest;
  manifestDigest: string;
  config?: Uint8Array;
  names: string[];
  openBlob: BlobOpener;
}

const OCI_REF_NAME = "org.opencontainers.image.ref.name";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

function blobPath(dir: string, digest: string): string {
  const [alg, hex] = digest.split(":");
  if (!alg || !hex || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]+$/.test(hex)) {
    throw new InvalidArgument(`invalid digest ${JSON.stringify(digest)} in the layout`);
  }
  return `${dir}/blobs/${alg}/${hex}`;
}

async function openFile(path: string): Promise<ReadableStream<Uint8Array>> {
  try {
    return (await Deno.open(path)).readable;
  } catch (err) {
    throw new NotFound(`Cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Normalises an OCI ref.name or docker RepoTag to a full reference, or undefined for a bare tag. */
function normaliseName(name: string): string | undefined {
  if (!name.includes("/") && !name.includes(":")) return undefined; // a bare tag like "latest"
  return fullString(parseReference(name));
}

async function readOciLayout(dir: string, signal?: AbortSignal): Promise<Found[]> {
  const openBlob: BlobOpener = (desc) => openFile(blobPath(dir, desc.digest));
  const indexBytes = await Deno.readFile(`${dir}/index.json`);
  const index = parseManifest(indexBytes, MediaType.OciIndex);
  if (index.kind !== "index") throw new InvalidArgument(`${dir}/index.json is not an image index`);
  const found: Found[] = [];
  const visit = async (desc: Descriptor, names: string[], depth: number): Promise<void> => {
    if (depth > 4) throw new InvalidArgument(`${dir}: image indexes nested too deeply`);
    const bytes = await fetchSmallBlob(openBlob, desc, `manifest ${desc.digest}`, signal);
    const m = parseManifest(bytes, desc.mediaType);
    if (m.kind === "index") return visit(selectPlatform(m, hostPlatform()), names, depth + 1);
    found.push({ manifest: m, manifestDigest: desc.digest, names, openBlob });
  };
  for (const desc of index.manifests) {
    const ref = desc.annotations?.[OCI_REF_NAME];
    const name = ref ? normaliseName(ref) : undefined;
    await visit(desc, name ? [name] : [], 0);
  }
  return found;
}

interface DockerSaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function insidePath(dir: string, rel: string, what: string): string {
  if (rel.startsWith("/") || rel.split("/").includes("..")) {
    throw new InvalidArgument(`docker archive ${what} path ${JSON.stringify(rel)} leaves the archive`);
  }
  return `${dir}/${rel}`;
}

async function fileDescriptor(path: string, mediaType: string): Promise<Descriptor> {
  // docker save archives carry no compressed digests: hash the file so the stream can still be checked.
  const bytes = await Deno.readFile(path);
  return { mediaType, digest: digestOf(bytes), size: bytes.length };
}

async function readDockerSave(dir: string): Promise<Found[]> {
  const entries = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`)) as DockerSaveEntry[];
  if (!Array.isArray(entries)) throw new InvalidArgument(`${dir}/manifest.json is not a list of images`);
  const found: Found[] = [];
  for (const [i, e] of entries.entries()) {
    if (typeof e?.Config !== "string" || !Array.isArray(e.Layers)) {
      throw new InvalidArgument(`${dir}/manifest.json entry ${i} lacks Config or Layers`);
    }
    const config = await Deno.readFile(insidePath(dir, e.Config, "config"));
    const paths = e.Layers.map((l) => insidePath(dir, l, "layer"));
    const layers = await Promise.all(paths.map((p) => fileDescriptor(p, MediaType.DockerLayerGzip)));
    const byDigest = new Map(layers.map((d, j) => [d.digest, paths[j]!]));
    const manifest: ImageManifest = {
      kind: "manifest",
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: digestOf(config), size: config.length },
      layers,
    };
    const manifestBytes = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, ...manifest, kind: undefined }));
    found.push({
      manifest,
      manifestDigest: digestOf(manifestBytes),
      config,
      names: (e.RepoTags ?? []).map(normaliseName).filter((n): n is string => n !== undefined),
      openBlob: (desc) => openFile(byDigest.get(desc.digest)!),
    });
  }
  return found;
}

/**
 * Imports every image in `path` (a docker-save or OCI archive file, or an OCI layout directory). Names come from
 * the archive (RepoTags, or the OCI ref.name annotation when it is a full reference); unnamed images are stored by
 * ID. Each is admitted by the signature policy before anything of it is stored.
 */
export async function importImages(path: string, opts: ImportOptions): Promise<ImageRecord[]> {
  const info = await Deno.stat(path).catch((err) => {
    throw new NotFound(`Cannot import ${path}: ${(err as Error).message}`, { cause: err });
  });
  let dir = path;
  let work: string | undefined;
  try {
    if (info.isFile) {
      work = await Deno.makeTempDir({ dir: opts.store.tmpDir, prefix: "import-" });
      dir = `${work}/unpacked`;
      await Deno.mkdir(dir);
      const file = await Deno.open(path);
      await extractLayer(file.readable, dir, opts.signal ? { signal: opts.signal } : {});
    }
    let found: Found[];
    if (await exists(`${dir}/index.json`) && await exists(`${dir}/oci-layout`)) {
      found = await readOciLayout(dir, opts.signal);
    } else if (await exists(`${dir}/manifest.json`)) found = await readDockerSave(dir);
    else {
      throw new FailedPrecondition(
        `Cannot import ${path}: not a docker save archive, an OCI archive or an OCI layout (no manifest.json or index.json)`,
      );
    }
    const out: ImageRecord[] = [];
    for (const f of found) {
      for (const name of f.names.length ? f.names : [undefined]) await opts.admit(name, f.manifestDigest);
      out.push(
        await ingestImage({
          manifest: f.manifest,
          manifestDigest: f.manifestDigest,
          ...(f.config ? { config: f.config } : {}),
          openBlob: f.openBlob,
          repoTags: f.names,
          repoDigests: [],
          store: opts.store,
          concurrency: opts.concurrency,
          log: opts.log,
          ...(opts.signal ? { signal: opts.signal } : {}),
        }),
      );
    }
    return out;
  } finally {
    if (work) await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
