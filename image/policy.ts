/**
 * Signature policy, containers-policy.json(5): strict parsing, the most specific scope for a docker reference, and
 * evaluation given the signatures already fetched (no I/O). All requirements of the chosen scope must accept.
 *
 * Supported: `insecureAcceptAnything`, `reject`, and `sigstoreSigned` with public keys (`keyPath(s)`,
 * `keyData(s)`) and every `signedIdentity` kind. Parsed but refusing at evaluation, with a message saying so:
 * `signedBy` (GPG simple signing), `sigstoreSigned` with `fulcio` or `pki` certificates or a Rekor key. Only the
 * `docker` transport is evaluated (CRI pulls use nothing else); other transports (`docker-daemon`, `atomic`,
 * `dir`, ...) have their requirements validated and are otherwise ignored. A missing policy file accepts anything,
 * as CRI-O does.
 * @module
 */
import { InvalidArgument, PermissionDenied } from "../lib/errors.ts";
import { fullString, type ImageReference, namePrefixProblem, repositoryName } from "./reference.ts";
import { identityMismatch, parseSignedIdentity, type SignedIdentity } from "./signed_identity.ts";
import { cosignSignatureTag, importPublicKey, type SigstoreSignature, verifySigstoreSignature } from "./sigstore.ts";

/** A public key named by the policy; `pem` is null until a `keyPath` file has been read. */
export interface PolicyKey {
  /** The file path, or `keyData` / `keyDatas[i]`. */
  source: string;
  pem: string | null;
}

/** One policy requirement. */
export type PolicyRequirement =
  | { type: "insecureAcceptAnything" }
  | { type: "reject" }
  | { type: "signedBy"; keyType: string; signedIdentity: SignedIdentity }
  | {
    type: "sigstoreSigned";
    keys: PolicyKey[];
    /** Set when the policy asks for certificate-based signatures, which davit does not verify. */
    certificates?: "fulcio" | "pki";
    /** Set when the policy requires a Rekor inclusion proof, which davit does not verify. */
    rekor: boolean;
    signedIdentity: SignedIdentity;
  };

/** A parsed policy. */
export interface Policy {
  default: PolicyRequirement[];
  /** transport -> scope (`""` is the transport default) -> requirements. */
  transports: Record<string, Record<string, PolicyRequirement[]>>;
}

/** The policy in force when no policy file exists. */
export const ACCEPT_ANYTHING_POLICY: Policy = { default: [{ type: "insecureAcceptAnything" }], transports: {} };

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function fail(where: string, why: string): never {
  throw new InvalidArgument(`signature policy: ${where}: ${why}`);
}

function onlyKeys(o: Json, keys: string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(where, `unknown field "${k}"`);
}

function keyData(v: unknown, where: string): string {
  if (typeof v !== "string") fail(where, "expected a base64 string");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.fromBase64(v.trim()));
  } catch {
    return fail(where, "is not valid base64");
  }
}

function parseRequirement(v: unknown, where: string): PolicyRequirement {
  if (!isObject(v)) fail(where, "expected an object");
  switch (v.type) {
    case "insecureAcceptAnything":
    case "reject":
      onlyKeys(v, ["type"], where);
      return { type: v.type };
    case "signedBy": {
      onlyKeys(v, ["type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity"], where);
      if (typeof v.keyType !== "string") fail(where, 'missing "keyType"');
      const present = ["keyPath", "keyPaths", "keyData"].filter((k) => v[k] !== undefined);
      if (present.length !== 1) fail(where, 'exactly one of "keyPath", "keyPaths" and "keyData" must be present');
      return { type: "signedBy", keyType: v.keyType, signedIdentity: parseSignedIdentity(v.signedIdentity, where) };
    }
    case "sigstoreSigned": {
      onlyKeys(v, [
        "type",
        "keyPath",
        "keyPaths",
        "keyData",
        "keyDatas",
        "fulcio",
        "pki",
        "rekorPublicKeyPath",
        "rekorPublicKeyPaths",
        "rekorPublicKeyData",
        "rekorPublicKeyDatas",
        "signedIdentity",
      ], where);
      const present = ["keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki"].filter((k) => v[k] !== undefined);
      if (present.length !== 1) {
        fail(where, 'exactly one of "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio" and "pki" must be present');
      }
      const rekorKeys = ["rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas"]
        .filter((k) => v[k] !== undefined);
      if (rekorKeys.length > 1) fail(where, "at most one rekorPublicKey field may be present");
      if (v.fulcio !== undefined && rekorKeys.length === 0) fail(where, '"fulcio" requires a rekorPublicKey field');
      const keys: PolicyKey[] = [];
      const paths = (val: unknown, name: string): string[] => {
        const list = name === "keyPath" ? [val] : val;
        if (!Array.isArray(list) || list.length === 0 || !list.every((p) => typeof p === "string" && p !== "")) {
          fail(where, `"${name}" must be ${name === "keyPath" ? "a path" : "a non-empty array of paths"}`);
        }
        return list as string[];
      };
      if (v.keyPath !== undefined) { for (const p of paths(v.keyPath, "keyPath")) keys.push({ source: p, pem: null }); }
      if (v.keyPaths !== undefined) {
        for (const p of paths(v.keyPaths, "keyPaths")) {
          keys.push({ source: p, pem: null });
        }
      }
      if (v.keyData !== undefined) keys.push({ source: "keyData", pem: keyData(v.keyData, `${where}.keyData`) });
      if (v.keyDatas !== undefined) {
        if (!Array.isArray(v.keyDatas) || v.keyDatas.length === 0) fail(where, '"keyDatas" must be a non-empty array');
        v.keyDatas.forEach((d, i) =>
          keys.push({ source: `keyDatas[${i}]`, pem: keyData(d, `${where}.keyDatas[${i}]`) })
        );
      }
      for (const k of ["fulcio", "pki"] as const) {
        if (v[k] !== undefined && !isObject(v[k])) fail(where, `"${k}" must be an object`);
      }
      const req: PolicyRequirement = {
        type: "sigstoreSigned",
        keys,
        rekor: rekorKeys.length > 0,
        signedIdentity: parseSignedIdentity(v.signedIdentity, where),
      };
      if (v.fulcio !== undefined) req.certificates = "fulcio";
      if (v.pki !== undefined) req.certificates = "pki";
      return req;
    }
    default:
      return fail(where, `unknown requirement type ${JSON.stringify(v.type)}`);
  }
}

function parseRequirements(v: unknown, where: string): PolicyRequirement[] {
  if (!Array.isArray(v)) fail(where, "expected an array of requirements");
  if (v.length === 0) fail(where, "must not be empty (use insecureAcceptAnything to require nothing)");
  return v.map((r, i) => parseRequirement(r, `${where}[${i}]`));
}

/** Returns why `scope` is not a docker transport scope, or undefined. */
function dockerScopeProblem(scope: string): string | undefined {
  if (scope === "") return undefined;
  if (scope.startsWith("*.")) {
    return /^\*\.(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i.test(scope)
      ? undefined
      : "a wildcard scope must be *.domain, without port or path";
  }
  return namePrefixProblem(scope);
}

/** Parses policy.json text strictly (unknown fields are errors); `source` names the file in errors. */
export function parsePolicy(text: string, source = "policy.json"): Policy {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgument(`signature policy ${source}: invalid JSON: ${(err as Error).message}`);
  }
  try {
    if (!isObject(doc)) fail("top level", "expected an object");
    onlyKeys(doc, ["default", "transports"], "top level");
    if (doc.default === undefined) fail("top level", '"default" is required');
    const policy: Policy = { default: parseRequirements(doc.default, "default"), transports: {} };
    if (doc.transports !== undefined) {
      if (!isObject(doc.transports)) fail("transports", "expected an object");
      for (const [transport, scopes] of Object.entries(doc.transports)) {
        if (!isObject(scopes)) fail(`transports.${transport}`, "expected an object of scopes");
        const out: Record<string, PolicyRequirement[]> = {};
        for (const [scope, reqs] of Object.entries(scopes)) {
          const where = `transports.${transport}["${scope}"]`;
          if (transport === "docker") {
            const problem = dockerScopeProblem(scope);
            if (problem !== undefined) fail(where, `invalid scope: ${problem}`);
          }
          out[scope] = parseRequirements(reqs, where);
        }
        policy.transports[transport] = out;
      }
    }
    return policy;
  } catch (err) {
    if (err instanceof InvalidArgument) {
      throw new InvalidArgument(err.message.replace("signature policy:", `signature policy ${source}:`), {
        cause: err,
      });
    }
    throw err;
  }
}

/** Reads every `keyPath`/`keyPaths` file; a file that cannot be read stays unloaded and refuses at evaluation. */
export async function resolvePolicyKeys(
  policy: Policy,
  readTextFile: (path: string) => Promise<string> = Deno.readTextFile,
): Promise<Policy> {
  const cache = new Map<string, string | null>();
  const resolve = async (reqs: PolicyRequirement[]) => {
    for (const r of reqs) {
      if (r.type !== "sigstoreSigned") continue;
      for (const k of r.keys) {
        if (k.pem !== null) continue;
        if (!cache.has(k.source)) cache.set(k.source, await readTextFile(k.source).catch(() => null));
        k.pem = cache.get(k.source) ?? null;
      }
    }
  };
  const copy = structuredClone(policy);
  await resolve(copy.default);
  for (const scopes of Object.values(copy.transports)) for (const reqs of Object.values(scopes)) await resolve(reqs);
  return copy;
}

/** Reads, parses and resolves the keys of a policy file; a missing file means {@link ACCEPT_ANYTHING_POLICY}. */
export async function loadPolicy(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return ACCEPT_ANYTHING_POLICY;
    throw err;
  }
  return await resolvePolicyKeys(parsePolicy(text, path));
}

/** The scopes to look up for `ref`, most specific first (without `""` and the global default). */
export function dockerScopes(ref: ImageReference): string[] {
  const repo = repositoryName(ref);
  const out: string[] = [];
  if (ref.digest !== undefined) out.push(`${repo}@${ref.digest}`);
  if (ref.tag !== undefined) out.push(`${repo}:${ref.tag}`);
  for (let name = repo;;) {
    out.push(name);
    const slash = name.lastIndexOf("/");
    if (slash < 0) break;
    name = name.slice(0, slash);
  }
  const host = ref.registry.replace(/:[0-9]+$/, "");
  for (let dot = host.indexOf("."); dot >= 0; dot = host.indexOf(".", dot + 1)) out.push(`*${host.slice(dot)}`);
  return out;
}

/** The requirements that apply to `ref` and the scope they come from (a scope, `""`, or `default`). */
export function requirementsFor(
  policy: Policy,
  ref: ImageReference,
): { scope: string; requirements: PolicyRequirement[] } {
  const docker = policy.transports.docker ?? {};
  for (const scope of [...dockerScopes(ref), ""]) {
    const reqs = docker[scope];
    if (reqs !== undefined) return { scope, requirements: reqs };
  }
  return { scope: "default", requirements: policy.default };
}

/** True when evaluating `ref` needs its signatures (a sigstoreSigned requirement applies), so pulls fetch them. */
export function needsSignatures(policy: Policy, ref: ImageReference): boolean {
  return requirementsFor(policy, ref).requirements.some((r) => r.type === "sigstoreSigned");
}

/** What {@link evaluatePolicy} judges. */
export interface PolicyInput {
  /** The reference as requested (after short-name resolution, before mirror rewriting). */
  reference: ImageReference;
  /** The digest of the manifest that was pulled (for an index, the index's digest, as cosign signs it). */
  manifestDigest: string;
  /** The signatures found under {@link cosignSignatureTag}; empty when there are none. */
  signatures: SigstoreSignature[];
}

async function sigstoreRefusal(req: Extract<PolicyRequirement, { type: "sigstoreSigned" }>, input: PolicyInput) {
  if (req.certificates !== undefined) {
    return `${req.certificates} certificate-based signatures are not supported by davit`;
  }
  if (req.rekor) return "Rekor inclusion proofs are not supported by davit";
  const keys = [];
  for (const k of req.keys) {
    if (k.pem === null) return `public key file "${k.source}" could not be read`;
    try {
      keys.push(await importPublicKey(k.pem));
    } catch (err) {
      return `invalid public key ${k.source}: ${(err as Error).message}`;
    }
  }
  if (input.signatures.length === 0) {
    return `no signatures found (looked for tag ${cosignSignatureTag(input.manifestDigest)})`;
  }
  const reasons: string[] = [];
  for (const sig of input.signatures) {
    try {
      const claims = await verifySigstoreSignature(sig, keys);
      if (claims.manifestDigest !== input.manifestDigest) {
        reasons.push(`signature is for manifest ${claims.manifestDigest}, not ${input.manifestDigest}`);
        continue;
      }
      const mismatch = identityMismatch(req.signedIdentity, input.reference, claims.dockerReference);
      if (mismatch === undefined) return undefined;
      reasons.push(mismatch);
    } catch (err) {
      reasons.push((err as Error).message);
    }
  }
  return reasons.length === 1
    ? reasons[0]
    : `no signature accepted: ${reasons.map((r, i) => `[${i + 1}] ${r}`).join("; ")}`;
}

/**
 * Decides whether `input.reference` may be used; resolves `{ allowed: true }` or throws PermissionDenied naming
 * the refusing requirement and scope:
 * `image "127.0.0.1:5000/x:1" refused by signature policy: requirement "reject" for scope "127.0.0.1:5000/x"`.
 */
export async function evaluatePolicy(policy: Policy, input: PolicyInput): Promise<{ allowed: true; scope: string }> {
  const { scope, requirements } = requirementsFor(policy, input.reference);
  const scopeText = scope === "default"
    ? "the default policy"
    : scope === ""
    ? "the docker transport default"
    : `scope "${scope}"`;
  for (const req of requirements) {
    let why: string | undefined;
    if (req.type === "insecureAcceptAnything") continue;
    if (req.type === "signedBy") why = "GPG simple signing is not supported by davit (use sigstoreSigned)";
    else if (req.type === "sigstoreSigned") why = await sigstoreRefusal(req, input);
    if (req.type === "reject" || why !== undefined) {
      throw new PermissionDenied(
        `image "${
          fullString(input.reference)
        }" refused by signature policy: requirement "${req.type}" for ${scopeText}` +
          (why !== undefined ? `: ${why}` : ""),
      );
    }
  }
  return { allowed: true, scope };
}
