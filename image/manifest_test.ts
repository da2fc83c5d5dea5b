// Table tests for manifest parsing (kind detection, validation, refusals) and layer compression.
import { assertEquals, assertThrows } from "../tests/assert.ts";
import { InvalidArgument } from "../lib/errors.ts";
import {
  bareMediaType,
  isDockerLayer,
  layerCompression,
  type Manifest,
  MediaType,
  parseManifest,
  sniffCompression,
} from "./manifest.ts";

const D1 = "sha256:" + "1".repeat(64);
const D2 = "sha256:" + "2".repeat(64);
const bytes = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

const ociManifest = {
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: D1, size: 10 },
  layers: [{ mediaType: MediaType.OciLayerGzip, digest: D2, size: 20, annotations: { a: "b" } }],
  annotations: { "org.opencontainers.image.created": "now" },
};
const ociIndex = {
  schemaVersion: 2,
  mediaType: MediaType.OciIndex,
  manifests: [
    { mediaType: MediaType.OciManifest, digest: D1, size: 1, platform: { os: "linux", architecture: "amd64" } },
    {
      mediaType: MediaType.OciManifest,
      digest: D2,
      size: 2,
      platform: {
        os: "windows",
        architecture: "amd64",
        "os.version": "10.0.17763",
        "os.features": ["win32k"],
        variant: "",
      },
    },
  ],
};
const { mediaType: _omit, ...bareManifest } = ociManifest;
const { mediaType: _omit2, ...bareIndex } = ociIndex;

Deno.test("parseManifest accepts", async (t) => {
  const cases: [string, unknown, string | undefined, string, string][] = [
    ["OCI manifest", ociManifest, MediaType.OciManifest, "manifest", MediaType.OciManifest],
    [
      "OCI manifest, header with parameters",
      ociManifest,
      `${MediaType.OciManifest}; charset=utf-8`,
      "manifest",
      MediaType.OciManifest,
    ],
    ["OCI manifest, generic header", ociManifest, "application/octet-stream", "manifest", MediaType.OciManifest],
    ["OCI manifest, no header", ociManifest, undefined, "manifest", MediaType.OciManifest],
    ["no mediaType, header decides", bareManifest, MediaType.DockerManifest, "manifest", MediaType.DockerManifest],
    ["no mediaType, no header: shape", bareManifest, undefined, "manifest", MediaType.OciManifest],
    ["OCI index", ociIndex, MediaType.OciIndex, "index", MediaType.OciIndex],
    ["index by shape", bareIndex, "application/json", "index", MediaType.OciIndex],
    [
      "Docker manifest list",
      { ...ociIndex, mediaType: MediaType.DockerManifestList },
      MediaType.DockerManifestList,
      "index",
      MediaType.DockerManifestList,
    ],
    [
      "Docker schema 2",
      {
        ...ociManifest,
        mediaType: MediaType.DockerManifest,
        config: { ...ociManifest.config, mediaType: MediaType.DockerConfig },
      },
      MediaType.DockerManifest,
      "manifest",
      MediaType.DockerManifest,
    ],
  ];
  for (const [name, doc, header, kind, mediaType] of cases) {
    await t.step(name, () => {
      const m = parseManifest(bytes(doc), header);
      assertEquals([m.kind, m.mediaType], [kind, mediaType]);
    });
  }
  await t.step("fields are kept", () => {
    const m = parseManifest(bytes(ociManifest), MediaType.OciManifest) as Extract<Manifest, { kind: "manifest" }>;
    assertEquals(m.config, { mediaType: MediaType.OciConfig, digest: D1, size: 10 });
    assertEquals(m.layers, [{ mediaType: MediaType.OciLayerGzip, digest: D2, size: 20, annotations: { a: "b" } }]);
    assertEquals(m.annotations, { "org.opencontainers.image.created": "now" });
  });
  await t.step("platforms are renamed and empty variants dropped", () => {
    const m = parseManifest(bytes(ociIndex)) as Extract<Manifest, { kind: "index" }>;
    assertEquals(m.manifests[1]?.platform, {
      os: "windows",
      architecture: "amd64",
      osVersion: "10.0.17763",
      osFeatures: ["win32k"],
    });
  });
  await t.step("subject and artifactType", () => {
    const m = parseManifest(
      bytes({
        ...ociManifest,
        artifactType: "application/x",
        subject: { mediaType: MediaType.OciManifest, digest: D1, size: 3 },
      }),
    ) as Extract<Manifest, { kind: "manifest" }>;
    assertEquals([m.artifactType, m.subject?.digest], ["application/x", D1]);
  });
});

Deno.test("parseManifest refuses", async (t) => {
  const cases: [string, unknown, string | undefined, string][] = [
    [
      "schema 1 by header",
      { schemaVersion: 1 },
      MediaType.DockerSchema1Signed,
      `unsupported manifest media type ${MediaType.DockerSchema1Signed}`,
    ],
    ["schema 1 by version", { schemaVersion: 1, name: "x" }, "application/json", "Docker schema 1 is not supported"],
    [
      "schema 1 by own type",
      { schemaVersion: 2, mediaType: MediaType.DockerSchema1 },
      undefined,
      MediaType.DockerSchema1,
    ],
    [
      "unknown own type",
      { ...ociManifest, mediaType: "application/vnd.example+json" },
      undefined,
      "unsupported manifest media type application/vnd.example+json",
    ],
    [
      "header and document disagree",
      ociManifest,
      MediaType.DockerManifest,
      `the header says ${MediaType.DockerManifest} but the document says ${MediaType.OciManifest}`,
    ],
    ["index with layers", { ...ociIndex, layers: [] }, undefined, 'must not have "config" or "layers"'],
    ["manifest with manifests", { ...ociManifest, manifests: [] }, undefined, 'must not have "manifests"'],
    ["no kind", { schemaVersion: 2 }, "text/plain", "cannot tell its kind"],
    ["schemaVersion 3", { ...ociManifest, schemaVersion: 3 }, undefined, "schemaVersion must be 2, got 3"],
    ["not JSON", "{", undefined, "not valid UTF-8 JSON"],
    ["not an object", "[]", undefined, "not a JSON object"],
    ["layers missing", { ...ociManifest, layers: undefined }, undefined, '"layers" must be an array'],
    ["config missing", { ...ociManifest, config: undefined }, undefined, "invalid manifest config: expected an object"],
    ["manifests not an array", { ...ociIndex, manifests: {} }, undefined, '"manifests" must be an array'],
    [
      "descriptor without mediaType",
      { ...ociManifest, layers: [{ digest: D1, size: 1 }] },
      undefined,
      'manifest layers[0]: missing "mediaType"',
    ],
    [
      "descriptor without digest",
      { ...ociManifest, layers: [{ mediaType: "x", size: 1 }] },
      undefined,
      'missing "digest"',
    ],
    [
      "bad digest",
      { ...ociManifest, layers: [{ mediaType: "x", digest: "sha256:zz", size: 1 }] },
      undefined,
      'digest "sha256:zz"',
    ],
    [
      "negative size",
      { ...ociManifest, layers: [{ mediaType: "x", digest: D1, size: -1 }] },
      undefined,
      '"size" must be a non-negative integer, got -1',
    ],
    ["string size", { ...ociManifest, layers: [{ mediaType: "x", digest: D1, size: "1" }] }, undefined, 'got "1"'],
    [
      "bad platform",
      { ...ociIndex, manifests: [{ mediaType: "x", digest: D1, size: 1, platform: { os: "linux" } }] },
      undefined,
      'index manifests[0].platform: needs string "os" and "architecture"',
    ],
    ["bad annotations", { ...ociManifest, annotations: { a: 1 } }, undefined, "expected an object of strings"],
  ];
  for (const [name, doc, header, message] of cases) {
    await t.step(name, () => {
      assertThrows(() => parseManifest(bytes(doc), header), InvalidArgument, message);
    });
  }
  await t.step("oversized", () => {
    assertThrows(() => parseManifest(new Uint8Array((4 << 20) + 1)), InvalidArgument, "is over 4194304");
  });
});

Deno.test("layer compression", async (t) => {
  const cases: [string, string][] = [
    [MediaType.OciLayer, "none"],
    [MediaType.OciLayerGzip, "gzip"],
    [MediaType.OciLayerZstd, "zstd"],
    [MediaType.OciLayerNondistributable, "none"],
    [MediaType.OciLayerNondistributableGzip, "gzip"],
    [MediaType.OciLayerNondistributableZstd, "zstd"],
    [MediaType.DockerLayerGzip, "gzip"],
    [MediaType.DockerForeignLayerGzip, "gzip"],
  ];
  for (const [mt, want] of cases) await t.step(mt, () => assertEquals(layerCompression(mt), want));
  await t.step("unknown layer type", () => {
    assertThrows(() => layerCompression("application/vnd.oci.image.layer.v1.tar+bzip2"), InvalidArgument, "tar+bzip2");
  });
  await t.step("docker layers may need sniffing", () => {
    assertEquals([isDockerLayer(MediaType.DockerLayerGzip), isDockerLayer(MediaType.OciLayerGzip)], [true, false]);
  });
  const sniff: [number[], string][] = [
    [[0x1f, 0x8b, 8, 0], "gzip"],
    [[0x28, 0xb5, 0x2f, 0xfd, 0], "zstd"],
    [[0x62, 0x69, 0x6e, 0x2f], "none"],
    [[0x1f], "none"],
    [[], "none"],
  ];
  for (const [head, want] of sniff) {
    await t.step(
      `sniff ${head.join(",") || "empty"}`,
      () => assertEquals(sniffCompression(new Uint8Array(head)), want),
    );
  }
  await t.step("bareMediaType", () => {
    assertEquals(bareMediaType(" Application/JSON ; charset=utf-8"), "application/json");
    assertEquals(bareMediaType(null), "");
  });
});
