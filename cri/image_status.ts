/** ImageStatus: one stored image, or an empty answer when it is not stored (not an error, per CRI). */
import { parseImageConfig } from "../image/mod.ts";
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { imageMessage, requireImageName } from "./image_common.ts";

/** Handler for ImageService.ImageStatus. */
export function imageStatus(daemon: Daemon): UnaryHandler {
  return (req) => {
    const name = requireImageName(req.image, "image.image");
    const img = daemon.images.find(name);
    if (!img) return {};
    const res: Record<string, unknown> = { image: imageMessage(daemon.images, img) };
    if (req.verbose) {
      const config = JSON.parse(new TextDecoder().decode(img.config));
      res.info = {
        info: JSON.stringify({
          id: img.id,
          manifestDigest: img.manifestDigest,
          manifestMediaType: img.manifestMediaType,
          layers: img.layers,
          user: parseImageConfig(img.config).user ?? "",
          imageSpec: config,
        }),
      };
    }
    return res;
  };
}
