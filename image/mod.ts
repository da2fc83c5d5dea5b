/**
 * Images from registries: references and short-name resolution, registries.conf and pull sources, credentials and
 * registry authentication, manifests, platform selection and image configs, digest verification, and the signature
 * policy with sigstore (cosign) verification. Everything here is a pure core except the thin file loaders
 * (`loadRegistriesConf`, `loadPolicy`, `resolvePolicyKeys`); the registry client and pulling build on it.
 * @module
 */
export {
  DEFAULT_REGISTRY,
  DEFAULT_TAG,
  familiarString,
  fullString,
  type ImageIdOrReference,
  type ImageReference,
  isShortName,
  NAME_MAX_LENGTH,
  namePrefixProblem,
  parseImageIdOrReference,
  parseReference,
  type ParseReferenceOptions,
  registryHostProblem,
  repositoryName,
  resolveShortName,
  type ShortNameConfig,
} from "./reference.ts";
export {
  EMPTY_REGISTRIES_CONF,
  loadRegistriesConf,
  type LoadRegistriesConfOptions,
  mergeRegistriesConf,
  type MirrorConf,
  parseRegistriesConf,
  type PullFromMirror,
  type RegistriesConf,
  type RegistriesConfFile,
  type RegistryConf,
  type ShortNameMode,
} from "./registries_conf.ts";
export { findRegistry, type PullSource, pullSources } from "./pull_sources.ts";
export {
  type AuthChallenge,
  type AuthFile,
  type Credentials,
  credentialsFromAuthConfig,
  decodeAuthField,
  encodeBasic,
  findCredentials,
  normalizeAuthKey,
  parseAuthFile,
  parseTokenResponse,
  parseWwwAuthenticate,
  redactCredentials,
  repositoryScope,
  type TokenRequest,
  tokenRequest,
  tokenRequestUrl,
  type TokenResponse,
} from "./auth.ts";
export {
  bareMediaType,
  CONFIG_MEDIA_TYPES,
  type Descriptor,
  IMAGE_MANIFEST_MEDIA_TYPES,
  type ImageIndex,
  type ImageManifest,
  INDEX_MEDIA_TYPES,
  isDockerLayer,
  type LayerCompression,
  layerCompression,
  type Manifest,
  MANIFEST_ACCEPT,
  MANIFEST_MAX_BYTES,
  MediaType,
  parseDescriptor,
  parseManifest,
  type Platform,
  sniffCompression,
} from "./manifest.ts";
export { formatPlatform, type HostPlatform, hostPlatform, normalizePlatform, selectPlatform } from "./platform.ts";
export { type HistoryEntry, type ImageConfig, parseImageConfig } from "./image_config.ts";
export {
  type Digest,
  type DigestAlgorithm,
  digestOf,
  digestProblem,
  DigestVerifier,
  isDigest,
  parseDigest,
  type VerifyExpectation,
  verifyingStream,
} from "./digest.ts";
export {
  ACCEPT_ANYTHING_POLICY,
  dockerScopes,
  evaluatePolicy,
  loadPolicy,
  needsSignatures,
  parsePolicy,
  type Policy,
  type PolicyInput,
  type PolicyKey,
  type PolicyRequirement,
  requirementsFor,
  resolvePolicyKeys,
} from "./policy.ts";
export { identityMismatch, parseSignedIdentity, type SignedIdentity } from "./signed_identity.ts";
export {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIGNATURE_TYPE,
  cosignSignatureTag,
  importPublicKey,
  parseSimpleSigningPayload,
  type PublicKey,
  type SigstoreSignature,
  type SimpleSigningClaims,
  verifySigstoreSignature,
} from "./sigstore.ts";
export { type BlobOpener, fetchSmallBlob, ingestImage, type IngestInput } from "./ingest.ts";
export { type ImportAdmission, importImages, type ImportOptions } from "./import.ts";
export { ImageService, type ImageServiceOptions, type ImageServiceSettings } from "./service.ts";
export {
  type FetchedManifest,
  ImagePuller,
  type ImagePullerOptions,
  type PullOptions,
  type RegistryAccess,
} from "./pull.ts";
export {
  type BlobStreamOptions,
  type ManifestHead,
  RegistryClient,
  type RegistryClientOptions,
  type RegistryTarget,
} from "./registry_client.ts";
export { type Endpoint, RegistryHttp, type RegistryHttpOptions, type RegistryRequest } from "./registry_http.ts";
export { type BlobResponse, type BlobRetry, ResumableBlob, type ResumableBlobOptions } from "./blob_stream.ts";
export { TransientError } from "./registry_protocol.ts";
export { type FetchLike, type HostTls, loadHostTls } from "./transport.ts";
