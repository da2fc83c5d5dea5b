/** RemoveImage: by ID (the whole image) or by name (untag, removing the image with its last tag); idempotent. */
import type { Daemon } from "./daemon.ts";
import type { UnaryHandler } from "./grpc_server.ts";
import { requireImageName } from "./image_common.ts";

/** Handler for ImageService.RemoveImage. */
export function removeImage(daemon: Daemon): UnaryHandler {
  return async (req) => {
    const name = requireImageName(req.image, "image.image");
    await daemon.images.remove(name, (id) => daemon.containerUsingImage(id));
    return {};
  };
}
