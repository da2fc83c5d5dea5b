/**
 * The endpoints to try for one pull under registries.conf (containers-registries.conf(5) "Remapping and mirroring
 * registries"): the `[[registry]]` table with the longest matching prefix, its mirrors that apply to a pull by tag or
 * by digest, then its primary location, each with the reference rewritten from `prefix` to `location`.
 * @module
 */
import { PermissionDenied } from "../lib/errors.ts";
import { fullString, type ImageReference, parseReference } from "./reference.ts";
import type { RegistriesConf, RegistryConf } from "./registries_conf.ts";

/** One endpoint to try for a pull, in order. */
export interface PullSource {
  /** The reference to request from this endpoint (rewritten by `location`). */
  reference: ImageReference;
  /** Plain HTTP and unverified TLS are allowed. */
  insecure: boolean;
  /** True for a `[[registry.mirror]]`, false for the primary location. */
  mirror: boolean;
}

/** The length of `prefix`'s match on `ref`, or -1; a wildcard scores just below an equally long literal prefix. */
function matchLength(ref: ImageReference, refText: string, prefix: string): number {
  if (prefix.startsWith("*.")) {
    const host = ref.registry.replace(/:[0-9]+$/, "");
    return host.endsWith(prefix.slice(1)) ? host.length - 0.5 : -1;
  }
  // A bare host[:port] names exactly that registry: `example.com` does not cover `example.com:5000`.
  if (!prefix.includes("/")) return ref.registry === prefix ? prefix.length : -1;
  if (refText === prefix) return prefix.length;
  const next = refText[prefix.length];
  return refText.startsWith(prefix) && next !== undefined && "/:@".includes(next) ? prefix.length : -1;
}

/** The `[[registry]]` table for `ref`: the longest matching prefix, or undefined. */
export function findRegistry(ref: ImageReference, conf: Pick<RegistriesConf, "registries">): RegistryConf | undefined {
  const text = fullString(ref);
  let best: RegistryConf | undefined;
  let bestLen = -1;
  for (const reg of conf.registries) {
    const len = matchLength(ref, text, reg.prefix);
    if (len > bestLen) {
      best = reg;
      bestLen = len;
    }
  }
  return best;
}

/**
 * The endpoints to try for `ref`, in order: the mirrors that apply to this kind of reference (by digest or by tag,
 * per `pull-from-mirror` and `mirror-by-digest-only`), then the primary location, each reference rewritten by the
 * longest matching prefix. Throws PermissionDenied when the matching table blocks the registry.
 */
export function pullSources(ref: ImageReference, conf: Pick<RegistriesConf, "registries">): PullSource[] {
  const reg = findRegistry(ref, conf);
  if (reg === undefined) return [{ reference: ref, insecure: false, mirror: false }];
  const text = fullString(ref);
  if (reg.blocked) {
    throw new PermissionDenied(
      `pulling "${text}" is not allowed: registry "${reg.prefix}" is blocked in registries.conf`,
    );
  }
  const rewrite = (location: string): ImageReference => {
    if (location === "") return ref;
    const rest = reg.prefix.startsWith("*.") ? text.slice(ref.registry.length) : text.slice(reg.prefix.length);
    return parseReference(location + rest, { defaultTag: false });
  };
  const byDigest = ref.digest !== undefined;
  const sources: PullSource[] = [];
  for (const m of reg.mirrors) {
    const use = reg.mirrorByDigestOnly
      ? byDigest
      : m.pullFromMirror === "all" || (m.pullFromMirror === "digest-only") === byDigest;
    if (use) sources.push({ reference: rewrite(m.location), insecure: m.insecure, mirror: true });
  }
  sources.push({ reference: rewrite(reg.location), insecure: reg.insecure, mirror: false });
  return sources;
}
