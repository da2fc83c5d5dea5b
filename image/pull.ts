/**
 * Pulling an image: short-name candidates, then for each the endpoints registries.conf gives (mirrors, then the
 * primary location), the manifest (an index narrowed to the host platform), the signature policy (with cosign
 * signatures fetched when a requirement needs them), then the blobs through {@link ingestImage}. Concurrent pulls
 * of one image share one pull; layers shared between images are fetched once.
 * @module
 */
import { DavitError, errorMessage, InvalidArgument, NotFound } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { ImageRecord, ImageStore } from "../storage/mod.ts";
import type { Credentials } from "./auth.ts";
import { fetchSmallBlob, ingestImage } from "./ingest.ts";
import { type Descriptor, type ImageManifest, MANIFEST_ACCEPT, parseManifest } from "./manifest.ts";
import { hostPlatform, selectPlatform } from "./platform.ts";
import { evaluatePolicy, needsSignatures, type Policy } from "./policy.ts";
import { type PullSource, pullSources } from "./pull_sources.ts";
import { fullString, type ImageReference } from "./reference.ts";
import type { RegistriesConf } from "./registries_conf.ts";
import { cosignSignatureTag, type SigstoreSignature } from "./sigstore.ts";

/** A fetched manifest. */
export interface FetchedManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

/** What the puller needs from a registry client, per endpoint. */
export interface RegistryAccess {
  getManifest(
    source: PullSource,
    reference: string,
    opts: { accept: readonly string[]; credentials?: Credentials; signal?: AbortSignal },
  ): Promise<FetchedManifest>;
  openBlob(
    source: PullSource,
    desc: Descriptor,
    opts: {
      credentials?: Credentials;
      signal?: AbortSignal;
      onProgress?: (bytes: number) => void;
      /** Check digest and size in the client too; the puller's ingest checks them anyway. */
      verify?: boolean;
    },
  ): Promise<ReadableStream<Uint8Array>>;
}

/** Options of {@link ImagePuller}. */
export interface ImagePullerOptions {
  store: ImageStore;
  registry: RegistryAccess;
  registries: RegistriesConf;
  policy: Policy;
  concurrency: number;
  /** Credentials from the global auth file for a registry host (or host/namespace), if any. */
  credentialsFor: (ref: ImageReference) => Credentials | undefined;
  log: Logger;
}

/** Per-pull options. */
export interface PullOptions {
  /** Credentials the kubelet sent with the request; they win over the global auth file. */
  credentials?: Credentials;
  signal?: AbortSignal;
}

function referenceOf(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** Pulls images into the store. */
export class ImagePuller {
  readonly #o: ImagePullerOptions;
  readonly #inflight = new Map<string, Promise<ImageRecord>>();
  readonly #configs = new Map<string, Promise<Uint8Array>>();

  constructor(opts: ImagePullerOptions) {
    this.#o = opts;
  }

  /**
   * Pulls the first candidate that a registry has. Errors from every candidate and endpoint are kept; when all
   * fail, the most telling one is thrown (a policy or auth refusal before "not found").
   */
  async pull(candidates: ImageReference[], opts: PullOptions = {}): Promise<ImageRecord> {
    if (candidates.length === 0) throw new InvalidArgument("no image reference to pull");
    const failures: DavitError[] = [];
    for (const ref of candidates) {
      const key = fullString(ref);
      let p = this.#inflight.get(key);
      if (!p) {
        p = this.#pullOne(ref, opts).finally(() => this.#inflight.delete(key));
        this.#inflight.set(key, p);
      }
      try {
        return await p;
      } catch (err) {
        if (!(err instanceof DavitError) || err.kind === "Internal") throw err;
        failures.push(err);
        // A refusal by policy or a broken image is final: later candidates are other images.
        if (err.kind !== "NotFound" && err.kind !== "Unavailable") throw err;
      }
    }
    throw failures.find((f) => f.kind === "PermissionDenied") ?? failures.find((f) => f.kind === "Unavailable") ??
      failures[0]!;
  }

  async #pullOne(ref: ImageReference, opts: PullOptions): Promise<ImageRecord> {
    const name = fullString(ref);
    const sources = pullSources(ref, this.#o.registries);
    const problems: DavitError[] = [];
    for (const source of sources) {
      const credentials = opts.credentials ?? this.#o.credentialsFor(source.reference);
      const cred = credentials ? { credentials } : {};
      const signal = opts.signal ? { signal: opts.signal } : {};
      let top: FetchedManifest;
      try {
        top = await this.#o.registry.getManifest(source, referenceOf(source.reference), {
          accept: MANIFEST_ACCEPT,
          ...cred,
          ...signal,
        });
      } catch (err) {
        if (
          err instanceof DavitError &&
          (err.kind === "NotFound" || err.kind === "Unavailable" || err.kind === "PermissionDenied")
        ) {
          this.#o.log.debug("pull source failed", {
            image: name,
            source: fullString(source.reference),
            error: errorMessage(err),
          });
          problems.push(err);
          continue;
        }
        throw err;
      }
      return await this.#fromManifest(ref, source, top, { ...cred, ...signal });
    }
    throw problems.find((p) => p.kind === "PermissionDenied") ?? problems.find((p) => p.kind === "NotFound") ??
      problems[0] ?? new NotFound(`image "${name}" not found`);
  }

  async #fromManifest(
    ref: ImageReference,
    source: PullSource,
    top: FetchedManifest,
    opts: { credentials?: Credentials; signal?: AbortSignal },
  ): Promise<ImageRecord> {
    const name = fullString(ref);
    let parsed = parseManifest(top.bytes, top.mediaType);
    let manifestDigest = top.digest;
    if (parsed.kind === "index") {
      const desc = selectPlatform(parsed, hostPlatform());
      const m = await this.#o.registry.getManifest(source, desc.digest, { accept: MANIFEST_ACCEPT, ...opts });
      parsed = parseManifest(m.bytes, m.mediaType);
      if (parsed.kind !== "manifest") {
        throw new InvalidArgument(`image "${name}": platform entry ${desc.digest} is an index`);
      }
      manifestDigest = m.digest;
    }
    const manifest: ImageManifest = parsed;

    // The policy judges the name as asked for (not the mirror's) and the top manifest's digest, which is what
    // cosign signs for a multi-platform image.
    const signatures = needsSignatures(this.#o.policy, ref) ? await this.#signatures(source, top.digest, opts) : [];
    await evaluatePolicy(this.#o.policy, { reference: ref, manifestDigest: top.digest, signatures });

    const started = performance.now();
    let bytes = 0;
    // ingestImage and fetchSmallBlob verify every blob as it streams: the client need not hash it a second time.
    const open = (desc: Descriptor, signal?: AbortSignal) =>
      this.#o.registry.openBlob(source, desc, { ...opts, verify: false, ...(signal ? { signal } : {}) });
    // The config is a blob too: concurrent pulls of one image under two names fetch it once, and an image already
    // stored under another name supplies it.
    const configDigest = manifest.config.digest;
    let config = this.#o.store.getImage(configDigest)?.config;
    if (!config) {
      let pending = this.#configs.get(configDigest);
      if (!pending) {
        pending = fetchSmallBlob(open, manifest.config, "image config", opts.signal)
          .finally(() => this.#configs.delete(configDigest));
        this.#configs.set(configDigest, pending);
      }
      config = await pending;
    }
    const record = await ingestImage({
      manifest,
      manifestDigest,
      config,
      openBlob: open,
      repoTags: ref.tag !== undefined && ref.digest === undefined ? [name] : [],
      repoDigests: [`${ref.registry}/${ref.repository}@${top.digest}`],
      store: this.#o.store,
      concurrency: this.#o.concurrency,
      log: this.#o.log,
      onBytes: (n) => bytes += n,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const secs = (performance.now() - started) / 1000;
    this.#o.log.debug("pulled", {
      image: name,
      id: record.id,
      from: fullString(source.reference),
      bytes,
      seconds: secs.toFixed(2),
      mb_per_s: (bytes / 1e6 / Math.max(secs, 1e-6)).toFixed(1),
    });
    return record;
  }

  async #signatures(
    source: PullSource,
    digest: string,
    opts: { credentials?: Credentials; signal?: AbortSignal },
  ): Promise<SigstoreSignature[]> {
    let sigManifest: FetchedManifest;
    try {
      sigManifest = await this.#o.registry.getManifest(source, cosignSignatureTag(digest), {
        accept: MANIFEST_ACCEPT,
        ...opts,
      });
    } catch (err) {
      if (err instanceof NotFound) return [];
      throw err;
    }
    const m = parseManifest(sigManifest.bytes, sigManifest.mediaType);
    if (m.kind !== "manifest") return [];
    // ingestImage and fetchSmallBlob verify every blob as it streams: the client need not hash it a second time.
    const open = (desc: Descriptor, signal?: AbortSignal) =>
      this.#o.registry.openBlob(source, desc, { ...opts, verify: false, ...(signal ? { signal } : {}) });
    const out: SigstoreSignature[] = [];
    for (const layer of m.layers.slice(0, 16)) {
      const payload = await fetchSmallBlob(open, layer, `signature ${layer.digest}`, opts.signal);
      out.push({ payload, annotations: layer.annotations ?? {}, mediaType: layer.mediaType });
    }
    return out;
  }
}
