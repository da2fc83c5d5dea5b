/**
 * The `signedIdentity` rules of containers-policy.json(5): which identity (`critical.identity.docker-reference`)
 * a signature must claim for the image being pulled. Both sides are compared in their fully expanded, normalised
 * form (`docker.io/library/busybox:latest`), and a signed reference without tag stays without one: cosign signs
 * repositories, so a tag pull only accepts cosign signatures under `matchRepository`/`exactRepository`.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { fullString, type ImageReference, namePrefixProblem, parseReference, repositoryName } from "./reference.ts";

/** What a signature's claimed identity must be. Absent in the policy means `matchRepoDigestOrExact`. */
export type SignedIdentity =
  | { type: "matchExact" }
  | { type: "matchRepoDigestOrExact" }
  | { type: "matchRepository" }
  | { type: "exactReference"; dockerReference: string }
  | { type: "exactRepository"; dockerRepository: string }
  | { type: "remapIdentity"; prefix: string; signedPrefix: string };

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function fail(where: string, why: string): never {
  throw new InvalidArgument(`signature policy: ${where}: ${why}`);
}

function onlyKeys(o: Json, keys: string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(where, `unknown field "${k}"`);
}

function tryParse(text: string): ImageReference | undefined {
  try {
    return parseReference(text, { defaultTag: false });
  } catch {
    return undefined;
  }
}

/** Parses and validates a `signedIdentity` object found in requirement `where`. */
export function parseSignedIdentity(v: unknown, where: string): SignedIdentity {
  if (v === undefined) return { type: "matchRepoDigestOrExact" };
  const at = `${where}.signedIdentity`;
  if (!isObject(v)) fail(at, "expected an object");
  switch (v.type) {
    case "matchExact":
    case "matchRepoDigestOrExact":
    case "matchRepository":
      onlyKeys(v, ["type"], at);
      return { type: v.type };
    case "exactReference": {
      onlyKeys(v, ["type", "dockerReference"], at);
      const ref = typeof v.dockerReference === "string" ? tryParse(v.dockerReference) : undefined;
      if (ref === undefined || (ref.tag === undefined && ref.digest === undefined)) {
        fail(at, '"dockerReference" must be a reference with a tag or digest');
      }
      return { type: "exactReference", dockerReference: v.dockerReference as string };
    }
    case "exactRepository": {
      onlyKeys(v, ["type", "dockerRepository"], at);
      const ref = typeof v.dockerRepository === "string" ? tryParse(v.dockerRepository) : undefined;
      if (ref === undefined || ref.tag !== undefined || ref.digest !== undefined) {
        fail(at, '"dockerRepository" must be a repository without tag or digest');
      }
      return { type: "exactRepository", dockerRepository: v.dockerRepository as string };
    }
    case "remapIdentity": {
      onlyKeys(v, ["type", "prefix", "signedPrefix"], at);
      for (const k of ["prefix", "signedPrefix"]) {
        const val = v[k];
        if (typeof val !== "string") fail(at, `"${k}" must be a string`);
        const problem = namePrefixProblem(val);
        const ref = val.includes("/") ? tryParse(val) : undefined;
        if (problem !== undefined || ref?.tag !== undefined || ref?.digest !== undefined) {
          fail(at, `"${k}" must be host[:port], a namespace or a repository, without tag or digest`);
        }
      }
      return { type: "remapIdentity", prefix: v.prefix as string, signedPrefix: v.signedPrefix as string };
    }
    default:
      return fail(at, `unknown type ${JSON.stringify(v.type)}`);
  }
}

/** The identity an image reference claims: its digest form when it has a digest, else its tag form. */
function imageIdentity(ref: ImageReference): ImageReference {
  const { registry, repository, tag, digest } = ref;
  if (digest !== undefined) return { registry, repository, digest };
  return tag !== undefined ? { registry, repository, tag } : { registry, repository };
}

function repoDigestOrExact(image: ImageReference, signed: ImageReference): boolean {
  if (image.digest !== undefined) return repositoryName(image) === repositoryName(signed);
  return fullString(imageIdentity(image)) === fullString(signed);
}

/**
 * Returns why `signedReference` (a signature's claimed identity) is not acceptable for `image` under `identity`,
 * or undefined when it is.
 */
export function identityMismatch(
  identity: SignedIdentity,
  image: ImageReference,
  signedReference: string,
): string | undefined {
  const signed = tryParse(signedReference);
  if (signed === undefined) return `signature identity "${signedReference}" is not a valid reference`;
  let ok: boolean;
  let expected = fullString(imageIdentity(image));
  switch (identity.type) {
    case "matchExact":
      ok = fullString(imageIdentity(image)) === fullString(signed);
      break;
    case "matchRepoDigestOrExact":
      if (image.digest !== undefined) expected = repositoryName(image);
      ok = repoDigestOrExact(image, signed);
      break;
    case "matchRepository":
      expected = repositoryName(image);
      ok = expected === repositoryName(signed);
      break;
    case "exactReference":
      expected = fullString(parseReference(identity.dockerReference, { defaultTag: false }));
      ok = expected === fullString(signed);
      break;
    case "exactRepository":
      expected = repositoryName(parseReference(identity.dockerRepository, { defaultTag: false }));
      ok = expected === repositoryName(signed);
      break;
    case "remapIdentity": {
      const repo = repositoryName(image);
      let target = image;
      if (repo === identity.prefix || repo.startsWith(identity.prefix + "/")) {
        const rest = repo.slice(identity.prefix.length);
        const suffix = (image.tag !== undefined ? `:${image.tag}` : "") +
          (image.digest !== undefined ? `@${image.digest}` : "");
        target = parseReference(identity.signedPrefix + rest + suffix, { defaultTag: false });
      }
      expected = target.digest !== undefined ? repositoryName(target) : fullString(imageIdentity(target));
      ok = repoDigestOrExact(target, signed);
      break;
    }
  }
  if (ok) return undefined;
  return `signature identity "${fullString(signed)}" does not match "${expected}" (signedIdentity ${identity.type})`;
}
