// A pause-like image for benchmarks: the busybox layer with an entrypoint that sleeps for good, pushed as
// `pause:3.10`, so containerd's CRI can pull its sandbox image from the loopback registry.
import { BUSYBOX_CONFIG, busyboxLayer } from "../fixtures/busybox_layer.ts";
import { builtFromParts, type PushedImage, pushImage, type PushRegistry } from "../fixtures/image_push.ts";
import { expectedTree, makeConfig, makeManifest } from "../fixtures/oci.ts";

/** Pushes the pause-like image; its reference is `<host>/pause:3.10`. */
export function pushPauseImage(registry: PushRegistry): Promise<PushedImage> {
  const layer = busyboxLayer();
  // PID 1 of the sandbox must stay up; containerd kills the sandbox container with SIGKILL, so no handler is needed.
  const config = makeConfig([layer.diffId], {
    config: { ...BUSYBOX_CONFIG, Entrypoint: ["/bin/sleep"], Cmd: ["2147483647"] },
  });
  const image = builtFromParts("pause", makeManifest([layer], config), expectedTree([layer.entries]));
  return pushImage(registry, image, { name: "pause", tag: "3.10" });
}
