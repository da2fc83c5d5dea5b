// Table tests for platform normalisation and selection from an image index.
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { NotFound } from "../lib/errors.ts";
import type { ImageIndex, Platform } from "./manifest.ts";
import { formatPlatform, type HostPlatform, hostPlatform, normalizePlatform, selectPlatform } from "./platform.ts";

function index(...platforms: (Platform | undefined)[]): ImageIndex {
  return {
    kind: "index",
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: platforms.map((platform, i) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: "sha256:" + String(i).repeat(64),
      size: i,
      ...(platform ? { platform } : {}),
    })),
  };
}

const p = (s: string): Platform => {
  const [os = "", architecture = "", variant] = s.split("/");
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
};

Deno.test("selectPlatform", async (t) => {
  const cases: [string, string[], HostPlatform, number][] = [
    ["exact amd64", ["linux/arm64/v8", "linux/amd64"], { os: "linux", architecture: "amd64" }, 1],
    ["x86_64 host name", ["linux/amd64"], { os: "linux", architecture: "x86_64" }, 0],
    ["amd64 v1 equals none", ["linux/amd64/v1"], { os: "linux", architecture: "amd64" }, 0],
    ["amd64 host does not take v3", ["linux/amd64/v3", "linux/amd64"], { os: "linux", architecture: "amd64" }, 1],
    ["amd64 v3 host prefers v3", ["linux/amd64", "linux/amd64/v3"], {
      os: "linux",
      architecture: "amd64",
      variant: "v3",
    }, 1],
    ["amd64 v3 host falls back to v2", ["linux/amd64", "linux/amd64/v2"], {
      os: "linux",
      architecture: "amd64",
      variant: "v3",
    }, 1],
    ["arm64 v8 host takes no variant", ["linux/amd64", "linux/arm64"], {
      os: "linux",
      architecture: "arm64",
      variant: "v8",
    }, 1],
    ["arm64 host takes v8", ["linux/arm64/v8"], { os: "linux", architecture: "aarch64" }, 0],
    ["arm v7 exact beats v6", ["linux/arm/v6", "linux/arm/v7"], { os: "linux", architecture: "arm", variant: "v7" }, 1],
    [
      "arm v7 falls back to v6",
      ["linux/arm/v5", "linux/arm/v6"],
      { os: "linux", architecture: "arm", variant: "v7" },
      1,
    ],
    ["arm without variant means v7", ["linux/arm"], { os: "linux", architecture: "arm", variant: "v7" }, 0],
    [
      "arm v6 host refuses v7",
      ["linux/arm/v7", "linux/arm/v6"],
      { os: "linux", architecture: "arm", variant: "v6" },
      1,
    ],
    ["armhf alias", ["linux/arm/v7"], { os: "linux", architecture: "armhf" }, 0],
    ["first among equals", ["linux/amd64", "linux/amd64"], { os: "linux", architecture: "amd64" }, 0],
    ["case-insensitive", ["Linux/AMD64"], { os: "linux", architecture: "amd64" }, 0],
    ["skips attestations", ["unknown/unknown", "linux/amd64"], { os: "linux", architecture: "amd64" }, 1],
  ];
  for (const [name, platforms, host, want] of cases) {
    await t.step(name, () => {
      const idx = index(...platforms.map(p));
      assertEquals(selectPlatform(idx, host).digest, idx.manifests[want]?.digest);
    });
  }
  await t.step("none match: the error lists what is offered", () => {
    assertThrows(
      () =>
        selectPlatform(index(p("linux/arm64/v8"), p("linux/s390x"), undefined, p("linux/s390x")), {
          os: "linux",
          architecture: "amd64",
        }),
      NotFound,
      "no image for platform linux/amd64 in the index; available: linux/arm64/v8, linux/s390x, (no platform)",
    );
    assertThrows(() => selectPlatform(index(), { os: "linux", architecture: "amd64" }), NotFound, "available: none");
  });
});

Deno.test("platform helpers", async (t) => {
  await t.step("normalizePlatform", () => {
    assertEquals(normalizePlatform({ os: "linux", architecture: "aarch64", variant: "v8" }), {
      os: "linux",
      architecture: "arm64",
      variant: "",
    });
    assertEquals(normalizePlatform({ os: "linux", architecture: "arm" }), {
      os: "linux",
      architecture: "arm",
      variant: "v7",
    });
    assertEquals(normalizePlatform({ os: "linux", architecture: "armel" }), {
      os: "linux",
      architecture: "arm",
      variant: "v6",
    });
  });
  await t.step("formatPlatform", () => {
    assertEquals(formatPlatform({ os: "linux", architecture: "arm", variant: "v7" }), "linux/arm/v7");
    assertEquals(formatPlatform({ os: "linux", architecture: "amd64" }), "linux/amd64");
  });
  await t.step("hostPlatform", () => {
    const h = hostPlatform();
    assertEquals(h.os, Deno.build.os);
    assert(["amd64", "arm64"].includes(h.architecture) || h.architecture === Deno.build.arch);
    if (Deno.build.arch === "x86_64") assertEquals(h, { os: Deno.build.os, architecture: "amd64" });
    if (Deno.build.arch === "aarch64") assertEquals(h, { os: Deno.build.os, architecture: "arm64", variant: "v8" });
  });
});
