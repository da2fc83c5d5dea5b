/**
 * Sigstore (cosign) signatures with public keys: the `sha256-<hex>.sig` tag where cosign stores them, the "simple
 * signing" payload (containers-signature(5) layout with `critical.type` "cosign container image signature"), and
 * verification with Web Crypto of the base64 signature from the layer annotation
 * `dev.cosignproject.cosign/signature` over the payload bytes. Keys are PEM SPKI: ECDSA P-256 with SHA-256 (the
 * DER signature is converted to the raw r||s Web Crypto wants); P-384 and P-521 accept SHA-256 or the curve's own
 * hash, as signers differ; Ed25519; RSA PKCS#1 v1.5 with SHA-256.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { parseDigest } from "./digest.ts";
import { MediaType } from "./manifest.ts";

/** The annotation of a cosign signature layer holding the base64 signature. */
export const COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** `critical.type` of a cosign payload. */
export const COSIGN_SIGNATURE_TYPE = "cosign container image signature";

/** One signature as fetched from the registry: the layer's bytes (the payload) and its annotations. */
export interface SigstoreSignature {
  payload: Uint8Array;
  annotations: Record<string, string>;
  /** The layer's media type, when known; must be the simple signing type. */
  mediaType?: string;
}

/** The tag cosign stores the signatures of `manifestDigest` under: `sha256-<hex>.sig`. */
export function cosignSignatureTag(manifestDigest: string): string {
  const d = parseDigest(manifestDigest);
  return `${d.algorithm}-${d.encoded}.sig`;
}

/** The claims of a simple signing payload. */
export interface SimpleSigningClaims {
  dockerReference: string;
  manifestDigest: string;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function onlyKeys(o: Json, keys: string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new InvalidArgument(`signature payload: unexpected member "${k}" in ${where}`);
  }
}

/**
 * Parses a cosign payload strictly: containers-signature(5) makes consumers refuse unknown members anywhere in
 * `critical` and at the top level; `optional` may hold anything (or null, as cosign writes it).
 */
export function parseSimpleSigningPayload(bytes: Uint8Array): SimpleSigningClaims {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new InvalidArgument("signature payload: not valid UTF-8 JSON");
  }
  if (!isObject(doc)) throw new InvalidArgument("signature payload: not a JSON object");
  onlyKeys(doc, ["critical", "optional"], "the payload");
  const { critical, optional } = doc;
  if (optional !== undefined && optional !== null && !isObject(optional)) {
    throw new InvalidArgument('signature payload: "optional" is not an object');
  }
  if (!isObject(critical)) throw new InvalidArgument('signature payload: missing "critical"');
  onlyKeys(critical, ["type", "image", "identity"], '"critical"');
  if (critical.type !== COSIGN_SIGNATURE_TYPE) {
    throw new InvalidArgument(
      `signature payload: critical.type is ${JSON.stringify(critical.type)}, not "${COSIGN_SIGNATURE_TYPE}"`,
    );
  }
  const { image, identity } = critical;
  if (!isObject(image) || typeof image["docker-manifest-digest"] !== "string") {
    throw new InvalidArgument('signature payload: missing critical.image["docker-manifest-digest"]');
  }
  onlyKeys(image, ["docker-manifest-digest"], "critical.image");
  if (!isObject(identity) || typeof identity["docker-reference"] !== "string") {
    throw new InvalidArgument('signature payload: missing critical.identity["docker-reference"]');
  }
  onlyKeys(identity, ["docker-reference"], "critical.identity");
  return { dockerReference: identity["docker-reference"], manifestDigest: image["docker-manifest-digest"] };
}

/** A public key ready to verify with. */
export interface PublicKey {
  kind: "ecdsa" | "ed25519" | "rsa";
  key: CryptoKey;
  /** ECDSA field size in bytes (32, 48, 66); 0 otherwise. */
  size: number;
}

/** Minimal DER reading: one TLV at `pos`. */
function readTlv(der: Uint8Array, pos: number): { tag: number; start: number; end: number } {
  const tag = der[pos];
  let len = der[pos + 1];
  if (tag === undefined || len === undefined) throw new InvalidArgument("truncated DER");
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) throw new InvalidArgument("unsupported DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | (der[start + i] ?? 0);
    start += n;
  }
  const end = start + len;
  if (end > der.length) throw new InvalidArgument("truncated DER");
  return { tag, start, end };
}

const OID = {
  ecPublicKey: "2a8648ce3d0201",
  p256: "2a8648ce3d030107",
  p384: "2b81040022",
  p521: "2b81040023",
  ed25519: "2b6570",
  rsa: "2a864886f70d010101",
} as const;

/** The DER bytes of a PEM `PUBLIC KEY` block. */
export function pemToDer(pem: string): Uint8Array {
  const m = /-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/.exec(pem);
  if (!m) throw new InvalidArgument("no PEM PUBLIC KEY block");
  try {
    return Uint8Array.fromBase64(m[1]!.replace(/\s+/g, ""));
  } catch {
    throw new InvalidArgument("PEM PUBLIC KEY block is not valid base64");
  }
}

/** Imports a PEM SPKI public key, telling the algorithm from its OIDs. */
export async function importPublicKey(pem: string): Promise<PublicKey> {
  const der = pemToDer(pem);
  const spki = readTlv(der, 0);
  const algSeq = readTlv(der, spki.start);
  const algOid = readTlv(der, algSeq.start);
  const hex = (t: { start: number; end: number }) => der.subarray(t.start, t.end).toHex();
  const alg = hex(algOid);
  const buf = der.slice().buffer;
  if (alg === OID.ecPublicKey) {
    const curveOid = hex(readTlv(der, algOid.end));
    const curve = curveOid === OID.p256
      ? "P-256"
      : curveOid === OID.p384
      ? "P-384"
      : curveOid === OID.p521
      ? "P-521"
      : "";
    if (curve === "") throw new InvalidArgument(`unsupported elliptic curve (OID ${curveOid})`);
    const key = await crypto.subtle.importKey("spki", buf, { name: "ECDSA", namedCurve: curve }, false, ["verify"]);
    return { kind: "ecdsa", key, size: curve === "P-256" ? 32 : curve === "P-384" ? 48 : 66 };
  }
  if (alg === OID.ed25519) {
    return {
      kind: "ed25519",
      key: await crypto.subtle.importKey("spki", buf, { name: "Ed25519" }, false, ["verify"]),
      size: 0,
    };
  }
  if (alg === OID.rsa) {
    const key = await crypto.subtle.importKey("spki", buf, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, [
      "verify",
    ]);
    return { kind: "rsa", key, size: 0 };
  }
  throw new InvalidArgument(`unsupported public key algorithm (OID ${alg})`);
}

/** Converts a DER `SEQUENCE { INTEGER r, INTEGER s }` ECDSA signature to raw fixed-width r||s. */
export function derToRawEcdsa(der: Uint8Array, size: number): Uint8Array {
  const seq = readTlv(der, 0);
  if (seq.tag !== 0x30 || seq.end !== der.length) throw new InvalidArgument("ECDSA signature is not a DER sequence");
  const out = new Uint8Array(size * 2);
  let pos = seq.start;
  for (const offset of [0, size]) {
    const int = readTlv(der, pos);
    if (int.tag !== 0x02 || int.end === int.start) throw new InvalidArgument("ECDSA signature: expected an INTEGER");
    let bytes = der.subarray(int.start, int.end);
    if ((bytes[0] ?? 0) & 0x80) throw new InvalidArgument("ECDSA signature: negative INTEGER");
    while (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1);
    if (bytes.length > size) throw new InvalidArgument("ECDSA signature: INTEGER too large for the curve");
    out.set(bytes, offset + size - bytes.length);
    pos = int.end;
  }
  if (pos !== seq.end) throw new InvalidArgument("ECDSA signature: trailing data");
  return out;
}

/** True when `signature` (raw bytes as cosign writes them) signs `payload` under `key`. Never throws on bad input. */
export async function verifyPayload(key: PublicKey, payload: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const data = payload.slice().buffer;
  try {
    if (key.kind === "ecdsa") {
      const raw = derToRawEcdsa(signature, key.size).buffer as ArrayBuffer;
      const hashes = key.size === 32 ? ["SHA-256"] : ["SHA-256", key.size === 48 ? "SHA-384" : "SHA-512"];
      for (const hash of hashes) {
        if (await crypto.subtle.verify({ name: "ECDSA", hash }, key.key, raw, data)) return true;
      }
      return false;
    }
    if (key.kind === "ed25519") {
      return await crypto.subtle.verify({ name: "Ed25519" }, key.key, signature.slice().buffer, data);
    }
    return await crypto.subtle.verify({ name: "RSASSA-PKCS1-v1_5" }, key.key, signature.slice().buffer, data);
  } catch {
    return false;
  }
}

/**
 * Checks one signature's form and cryptography: the layer media type, the annotation, and a valid signature by one
 * of `keys`. Returns the payload's claims, or throws InvalidArgument saying what is wrong with the signature.
 */
export async function verifySigstoreSignature(sig: SigstoreSignature, keys: PublicKey[]): Promise<SimpleSigningClaims> {
  if (sig.mediaType !== undefined && sig.mediaType !== MediaType.CosignSimpleSigning) {
    throw new InvalidArgument(`signature layer has media type ${sig.mediaType}, not ${MediaType.CosignSimpleSigning}`);
  }
  const b64 = sig.annotations[COSIGN_SIGNATURE_ANNOTATION];
  if (b64 === undefined || b64 === "") {
    throw new InvalidArgument(`signature layer has no ${COSIGN_SIGNATURE_ANNOTATION} annotation`);
  }
  let raw: Uint8Array;
  try {
    raw = Uint8Array.fromBase64(b64.trim());
  } catch {
    throw new InvalidArgument(`the ${COSIGN_SIGNATURE_ANNOTATION} annotation is not valid base64`);
  }
  let ok = false;
  for (const key of keys) {
    if (await verifyPayload(key, sig.payload, raw)) {
      ok = true;
      break;
    }
  }
  // The payload is only read once a trusted key vouches for it.
  if (!ok) throw new InvalidArgument("signature is not valid for any trusted key");
  return parseSimpleSigningPayload(sig.payload);
}
