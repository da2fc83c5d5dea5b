/**
 * CNI specification versions: which ones davit speaks, ordering, and the per-version protocol features
 * (SPEC.md "Version considerations"; CHECK and prevResult on DEL arrived in 0.4.0, GC and STATUS in 1.1.0).
 */

/** The spec versions davit can execute, oldest first. 0.1.0/0.2.0 (no chaining, old result shape) are refused. */
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

function parts(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Orders two `major.minor.patch` versions (malformed versions sort first). */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a) ?? [-1, -1, -1];
  const pb = parts(b) ?? [-1, -1, -1];
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** True when davit can execute networks at version `v`. */
export function isSupportedVersion(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** True when `v` is at least `min`. */
export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/**
 * Picks the protocol version: the highest of `candidates` that davit supports and, when `pluginSupport` is given
 * (each plugin's VERSION answer), that every plugin supports (SPEC.md "Version considerations").
 */
export function selectVersion(
  candidates: readonly string[],
  pluginSupport?: readonly (readonly string[])[],
): string | undefined {
  const usable = candidates.filter((v) =>
    isSupportedVersion(v) && (pluginSupport ?? []).every((supported) => supported.includes(v))
  );
  return usable.sort(compareVersions).at(-1);
}

/** CHECK exists from 0.4.0 on. */
export function supportsCheck(v: string): boolean {
  return versionAtLeast(v, "0.4.0");
}

/** DEL carries the cached prevResult from 0.4.0 on. */
export function supportsPrevResultOnDel(v: string): boolean {
  return versionAtLeast(v, "0.4.0");
}

/** GC (and STATUS) exist from 1.1.0 on. */
export function supportsGc(v: string): boolean {
  return versionAtLeast(v, "1.1.0");
}
