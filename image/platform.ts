/**
 * Choosing the host's entry in an image index. Names are normalised as the OCI image spec's platform values and
 * containerd do (x86_64 -> amd64, aarch64 -> arm64; arm64 variant `v8` equals no variant; amd64 `v1` equals none;
 * arm without variant means `v7`), and a host accepts older variants of its architecture as fallbacks (arm v7 runs
 * v6 and v5; amd64 v3 runs v2 and v1), preferring the closest.
 * @module
 */
import { NotFound } from "../lib/errors.ts";
import type { Descriptor, ImageIndex, Platform } from "./manifest.ts";

/** The platform to select for. */
export interface HostPlatform {
  os: string;
  architecture: string;
  variant?: string;
}

const ARCH_ALIASES: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: "amd64" },
  "x86-64": { architecture: "amd64" },
  aarch64: { architecture: "arm64" },
  armhf: { architecture: "arm", variant: "v7" },
  armel: { architecture: "arm", variant: "v6" },
  i386: { architecture: "386" },
  i686: { architecture: "386" },
};

/** Normalises names and fills default variants: `{os, architecture, variant}` with variant "" when none applies. */
export function normalizePlatform(p: HostPlatform): { os: string; architecture: string; variant: string } {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = (p.variant ?? "").toLowerCase();
  const alias = ARCH_ALIASES[architecture];
  if (alias) {
    architecture = alias.architecture;
    if (variant === "" && alias.variant !== undefined) variant = alias.variant;
  }
  if (architecture === "arm64" && variant === "v8") variant = "";
  if (architecture === "amd64" && variant === "v1") variant = "";
  if (architecture === "arm" && variant === "") variant = "v7";
  return { os, architecture, variant };
}

/** The variants a host accepts, best first (all normalised). */
function acceptedVariants(architecture: string, variant: string): string[] {
  if (architecture === "arm") {
    const all = ["v8", "v7", "v6", "v5"];
    const at = all.indexOf(variant);
    return at < 0 ? [variant] : all.slice(at);
  }
  if (architecture === "amd64") {
    const all = ["v4", "v3", "v2", ""];
    const at = all.indexOf(variant);
    return at < 0 ? [variant] : all.slice(at);
  }
  if (architecture === "arm64" && variant !== "") return [variant, ""];
  return [variant];
}

/** `os/architecture[/variant]`, as people write platforms. */
export function formatPlatform(p: { os: string; architecture: string; variant?: string }): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** The platform davit runs on, from Deno.build (Linux builds only run on linux). */
export function hostPlatform(): HostPlatform {
  const arch = Deno.build.arch as string;
  const architecture = ARCH_ALIASES[arch]?.architecture ?? arch;
  return architecture === "arm64"
    ? { os: Deno.build.os, architecture, variant: "v8" }
    : { os: Deno.build.os, architecture };
}

/**
 * The index entry to pull for `host`: an exact variant match first, else the closest accepted older variant, the
 * earliest entry among equals. Throws NotFound listing the platforms the index offers when none fits.
 */
export function selectPlatform(index: ImageIndex, host: HostPlatform): Descriptor {
  const want = normalizePlatform(host);
  const accepted = acceptedVariants(want.architecture, want.variant);
  let best: Descriptor | undefined;
  let bestRank = Infinity;
  for (const d of index.manifests) {
    if (d.platform === undefined) continue;
    const have = normalizePlatform(d.platform);
    if (have.os !== want.os || have.architecture !== want.architecture) continue;
    const rank = accepted.indexOf(have.variant);
    if (rank >= 0 && rank < bestRank) {
      best = d;
      bestRank = rank;
    }
  }
  if (best !== undefined) return best;
  const offered = index.manifests.map((d) => d.platform ? formatPlatform(d.platform as Platform) : "(no platform)");
  throw new NotFound(
    `no image for platform ${formatPlatform(host)} in the index; available: ${
      offered.length === 0 ? "none" : [...new Set(offered)].join(", ")
    }`,
  );
}
