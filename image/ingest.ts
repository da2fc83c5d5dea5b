/**
 * Storing one image from wherever its blobs come from (a registry, an archive, a layout directory): the config is
 * checked against the manifest, every layer is fetched, decompressed and extracted concurrently (bounded) into the
 * layer store with its compressed digest checked as it streams and its uncompressed digest checked against the
 * config's rootfs.diff_ids, and the image is recorded last. Layers already stored, or being stored by another pull,
 * are not fetched again.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { chainIds, decompressStream, extractLayer, type ImageRecord, type ImageStore } from "../storage/mod.ts";
import { digestOf, verifyingStream } from "./digest.ts";
import { parseImageConfig } from "./image_config.ts";
import { type Descriptor, type ImageManifest, layerCompression, sniffCompression } from "./manifest.ts";

/** Opens a blob's bytes as stored (compressed); the caller verifies them. */
export type BlobOpener = (desc: Descriptor, signal?: AbortSignal) => Promise<ReadableStream<Uint8Array>>;

/** What {@link ingestImage} needs. */
export interface IngestInput {
  manifest: ImageManifest;
  manifestDigest: string;
  /** The raw config bytes (already fetched by the caller, or fetched here through `openBlob` when absent). */
  config?: Uint8Array;
  openBlob: BlobOpener;
  repoTags: string[];
  repoDigests: string[];
  store: ImageStore;
  /** Layers fetched at once. */
  concurrency: number;
  signal?: AbortSignal;
  log: Logger;
  /** Called with bytes as layers stream in (progress logging). */
  onBytes?: (n: number) => void;
}

async function readAll(stream: ReadableStream<Uint8Array>, limit: number, what: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of stream) {
    size += c.length;
    if (size > limit) throw new InvalidArgument(`${what} is larger than ${limit} bytes`);
    chunks.push(c);
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Fetches a small blob whole, verifying digest and size. */
export async function fetchSmallBlob(openBlob: BlobOpener, desc: Descriptor, what: string, signal?: AbortSignal) {
  const stream = (await openBlob(desc, signal)).pipeThrough(
    verifyingStream({ digest: desc.digest, size: desc.size, what }),
  );
  return await readAll(stream, 16 << 20, what);
}

async function peekCompression(
  stream: ReadableStream<Uint8Array>,
): Promise<{ kind: "gzip" | "zstd" | "none"; stream: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const first = await reader.read();
  const head = first.done ? new Uint8Array() : first.value;
  const rest = new ReadableStream<Uint8Array>({
    start(c) {
      if (head.length) c.enqueue(head);
    },
    async pull(c) {
      const { done, value } = await reader.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { kind: sniffCompression(head), stream: rest };
}

/** Runs `fn` over `items` with at most `limit` at once; the first failure aborts the rest and is thrown. */
async function boundedAll<T>(items: T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

/** Stores the image described by `input` and returns its record. */
export async function ingestImage(input: IngestInput): Promise<ImageRecord> {
  const { manifest, store, log } = input;
  const configBytes = input.config ??
    await fetchSmallBlob(input.openBlob, manifest.config, "image config", input.signal);
  const configDigest = digestOf(configBytes);
  if (configDigest !== manifest.config.digest) {
    throw new InvalidArgument(
      `image config digest ${configDigest} does not match the manifest's ${manifest.config.digest}`,
    );
  }
  const config = parseImageConfig(configBytes);
  const layers = manifest.layers;
  if (config.diffIds.length !== layers.length) {
    throw new InvalidArgument(
      `image ${input.manifestDigest}: the manifest lists ${layers.length} layers but the config's rootfs.diff_ids has ${config.diffIds.length}`,
    );
  }
  const chains = await chainIds(config.diffIds);
  using _hold = store.holdLayers(chains);
  const started = performance.now();
  await boundedAll(layers, input.concurrency, async (desc, i) => {
    const chainId = chains[i]!;
    const diffId = config.diffIds[i]!;
    if (store.getLayer(chainId)) return;
    await store.ingestLayer({ chainId, diffId, parent: i > 0 ? chains[i - 1]! : null }, async (dir) => {
      const t0 = performance.now();
      let raw = await input.openBlob(desc, input.signal);
      raw = raw.pipeThrough(verifyingStream({ digest: desc.digest, size: desc.size, what: `layer ${desc.digest}` }));
      if (input.onBytes) {
        const onBytes = input.onBytes;
        raw = raw.pipeThrough(new TransformStream({ transform: (c, ctl) => (onBytes(c.length), ctl.enqueue(c)) }));
      }
      let kind = layerCompression(desc.mediaType);
      if (kind === "none" || desc.mediaType.includes("docker")) {
        // Docker layers (and docker-save archives) say "tar.gzip" or nothing reliable: look at the bytes.
        const peeked = await peekCompression(raw);
        kind = peeked.kind;
        raw = peeked.stream;
      }
      const result = await extractLayer(decompressStream(raw, kind), dir, {
        digest: true,
        ...(input.signal ? { signal: input.signal } : {}),
      });
      if (result.diffId !== diffId) {
        throw new InvalidArgument(
          `layer ${desc.digest}: uncompressed digest ${result.diffId} does not match the config's diff_id ${diffId}`,
        );
      }
      log.debug("layer stored", {
        layer: desc.digest,
        compressed_bytes: desc.size,
        size: result.size,
        files: result.files,
        ms: (performance.now() - t0).toFixed(0),
      });
      return { size: result.size };
    });
  });
  const size = configBytes.length + layers.reduce((n, l) => n + l.size, 0);
  const record = store.putImage({
    id: configDigest,
    manifestDigest: input.manifestDigest,
    manifestMediaType: manifest.mediaType,
    config: configBytes,
    size,
    layers: chains,
    repoTags: input.repoTags,
    repoDigests: input.repoDigests,
  });
  log.debug("image stored", { id: configDigest, layers: layers.length, ms: (performance.now() - started).toFixed(0) });
  return record;
}
