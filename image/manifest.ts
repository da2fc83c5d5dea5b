/**
 * Manifests (OCI image spec manifest.md, image-index.md, descriptor.md; Docker image manifest v2 schema 2): media
 * type constants, parsing with validation of every descriptor, and the compression of layers from their media type
 * or, for Docker layers whose media type is known to lie, from their first bytes.
 * Docker schema 1 is refused, as are media types davit does not know.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { digestProblem } from "./digest.ts";

/** OCI and Docker media types. */
export const MediaType = {
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OciLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OciLayerNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  OciEmpty: "application/vnd.oci.empty.v1+json",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  DockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  DockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  CosignSimpleSigning: "application/vnd.dev.cosign.simplesigning.v1+json",
} as const;

/** Index (multi-platform) media types. */
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];
/** Single-image manifest media types. */
export const IMAGE_MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.OciManifest, MediaType.DockerManifest];
/** Image config media types davit can run. */
export const CONFIG_MEDIA_TYPES: readonly string[] = [MediaType.OciConfig, MediaType.DockerConfig];
/** The `Accept` header list for manifest requests, most preferred first. */
export const MANIFEST_ACCEPT: readonly string[] = [...INDEX_MEDIA_TYPES, ...IMAGE_MANIFEST_MEDIA_TYPES];
/** Manifests larger than this are refused (the distribution spec lets registries refuse above 4 MiB). */
export const MANIFEST_MAX_BYTES = 4 << 20;

const SCHEMA1: readonly string[] = [MediaType.DockerSchema1, MediaType.DockerSchema1Signed];

/** An OS/architecture pair of an index entry (the `platform` object; `os.version`/`os.features` renamed). */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
}

/** A content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

/** An image index or Docker manifest list. */
export interface ImageIndex {
  kind: "index";
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** A single-image manifest (OCI or Docker schema 2). */
export interface ImageManifest {
  kind: "manifest";
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
  artifactType?: string;
}

/** A parsed manifest of either kind. */
export type Manifest = ImageIndex | ImageManifest;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function bad(what: string, why: string): never {
  throw new InvalidArgument(`invalid ${what}: ${why}`);
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (!isObject(v) || !Object.values(v).every((x) => typeof x === "string")) {
    bad(where, "expected an object of strings");
  }
  return v as Record<string, string>;
}

function parsePlatform(v: unknown, where: string): Platform {
  if (!isObject(v)) bad(where, "expected an object");
  if (typeof v.os !== "string" || typeof v.architecture !== "string") {
    bad(where, 'needs string "os" and "architecture"');
  }
  const p: Platform = { os: v.os, architecture: v.architecture };
  if (v.variant !== undefined) {
    if (typeof v.variant !== "string") bad(where, '"variant" is not a string');
    if (v.variant !== "") p.variant = v.variant;
  }
  if (typeof v["os.version"] === "string") p.osVersion = v["os.version"];
  if (Array.isArray(v["os.features"])) {
    p.osFeatures = v["os.features"].filter((x): x is string => typeof x === "string");
  }
  return p;
}

/** Validates one descriptor object (mediaType, digest, size required). */
export function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) bad(where, "expected an object");
  if (typeof v.mediaType !== "string" || v.mediaType === "") bad(where, 'missing "mediaType"');
  if (typeof v.digest !== "string") bad(where, 'missing "digest"');
  const problem = digestProblem(v.digest);
  if (problem !== undefined) bad(where, `digest "${v.digest}": ${problem}`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    bad(where, `"size" must be a non-negative integer, got ${JSON.stringify(v.size)}`);
  }
  const d: Descriptor = { mediaType: v.mediaType, digest: v.digest, size: v.size };
  if (v.urls !== undefined) {
    if (!Array.isArray(v.urls) || !v.urls.every((u) => typeof u === "string")) bad(where, '"urls" must be strings');
    d.urls = v.urls as string[];
  }
  if (v.annotations !== undefined && v.annotations !== null) {
    d.annotations = stringMap(v.annotations, `${where}.annotations`);
  }
  if (v.platform !== undefined && v.platform !== null) d.platform = parsePlatform(v.platform, `${where}.platform`);
  if (typeof v.artifactType === "string") d.artifactType = v.artifactType;
  return d;
}

/** The bare media type of a `Content-Type` value (parameters dropped, lower-cased). */
export function bareMediaType(contentType: string | undefined | null): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

function isKnown(mt: string): boolean {
  return INDEX_MEDIA_TYPES.includes(mt) || IMAGE_MANIFEST_MEDIA_TYPES.includes(mt);
}

/**
 * Parses a manifest. The kind comes from the document's `mediaType` (which must agree with a manifest media type
 * in the header), else from the header, else from the shape (`manifests` vs `config`/`layers`). Throws
 * InvalidArgument for schema 1, unknown media types, ambiguous shapes and invalid descriptors.
 */
export function parseManifest(bytes: Uint8Array, mediaTypeFromHeader?: string): Manifest {
  if (bytes.byteLength > MANIFEST_MAX_BYTES) bad("manifest", `${bytes.byteLength} bytes is over ${MANIFEST_MAX_BYTES}`);
  const header = bareMediaType(mediaTypeFromHeader);
  if (header === MediaType.DockerSchema1 || header === MediaType.DockerSchema1Signed) {
    throw new InvalidArgument(`unsupported manifest media type ${header} (Docker schema 1 is not supported)`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    bad("manifest", "not valid UTF-8 JSON");
  }
  if (!isObject(doc)) bad("manifest", "not a JSON object");
  const own = typeof doc.mediaType === "string" && doc.mediaType !== "" ? doc.mediaType : undefined;
  if (doc.schemaVersion === 1 || (own !== undefined && SCHEMA1.includes(own))) {
    throw new InvalidArgument(
      `unsupported manifest media type ${
        own ?? (header || MediaType.DockerSchema1)
      } (Docker schema 1 is not supported)`,
    );
  }
  let mediaType: string;
  if (own !== undefined) {
    if (isKnown(header) && header !== own) {
      bad("manifest", `the header says ${header} but the document says ${own}`);
    }
    mediaType = own;
  } else if (isKnown(header)) mediaType = header;
  else if ("manifests" in doc) mediaType = MediaType.OciIndex;
  else if ("config" in doc || "layers" in doc) mediaType = MediaType.OciManifest;
  else bad("manifest", `cannot tell its kind: no mediaType, header ${JSON.stringify(header)}`);
  if (!isKnown(mediaType)) throw new InvalidArgument(`unsupported manifest media type ${mediaType}`);
  if (doc.schemaVersion !== 2) bad("manifest", `schemaVersion must be 2, got ${JSON.stringify(doc.schemaVersion)}`);
  const annotations = doc.annotations === undefined || doc.annotations === null
    ? undefined
    : stringMap(doc.annotations, "manifest annotations");

  if (INDEX_MEDIA_TYPES.includes(mediaType)) {
    if ("config" in doc || "layers" in doc) bad("index", `${mediaType} must not have "config" or "layers"`);
    if (!Array.isArray(doc.manifests)) bad("index", '"manifests" must be an array');
    const index: ImageIndex = {
      kind: "index",
      mediaType,
      manifests: doc.manifests.map((m, i) => parseDescriptor(m, `index manifests[${i}]`)),
    };
    if (annotations) index.annotations = annotations;
    return index;
  }
  if ("manifests" in doc) bad("manifest", `${mediaType} must not have "manifests"`);
  if (!Array.isArray(doc.layers)) bad("manifest", '"layers" must be an array');
  const manifest: ImageManifest = {
    kind: "manifest",
    mediaType,
    config: parseDescriptor(doc.config, "manifest config"),
    layers: doc.layers.map((l, i) => parseDescriptor(l, `manifest layers[${i}]`)),
  };
  if (annotations) manifest.annotations = annotations;
  if (doc.subject !== undefined && doc.subject !== null) {
    manifest.subject = parseDescriptor(doc.subject, "manifest subject");
  }
  if (typeof doc.artifactType === "string") manifest.artifactType = doc.artifactType;
  return manifest;
}

/** How a layer blob is compressed. */
export type LayerCompression = "gzip" | "zstd" | "none";

const LAYER_COMPRESSION: Record<string, LayerCompression> = {
  [MediaType.OciLayer]: "none",
  [MediaType.OciLayerGzip]: "gzip",
  [MediaType.OciLayerZstd]: "zstd",
  [MediaType.OciLayerNondistributable]: "none",
  [MediaType.OciLayerNondistributableGzip]: "gzip",
  [MediaType.OciLayerNondistributableZstd]: "zstd",
  [MediaType.DockerLayerGzip]: "gzip",
  [MediaType.DockerForeignLayerGzip]: "gzip",
};

/** True for Docker layer media types, whose name says gzip even when some tools wrote a plain tar. */
export function isDockerLayer(mediaType: string): boolean {
  return mediaType === MediaType.DockerLayerGzip || mediaType === MediaType.DockerForeignLayerGzip;
}

/** The compression a layer media type declares; throws InvalidArgument naming an unknown layer media type. */
export function layerCompression(mediaType: string): LayerCompression {
  const c = LAYER_COMPRESSION[mediaType];
  if (c === undefined) throw new InvalidArgument(`unsupported layer media type ${mediaType}`);
  return c;
}

/** The compression the first bytes of a blob show (gzip `1f 8b`, zstd frame `28 b5 2f fd`, else none). */
export function sniffCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}
