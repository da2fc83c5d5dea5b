/** ListImages and StreamImages: stored images, optionally filtered by one name or ID. */
import type { Daemon } from "./daemon.ts";
import type { Message, StreamHandler, UnaryHandler } from "./grpc_server.ts";
import { imageMessage } from "./image_common.ts";

/** Images per message of StreamImages, well under gRPC's message limit even with long names. */
const BATCH = 200;

function listed(daemon: Daemon, req: Message): Message[] {
  const filter = typeof req.filter?.image?.image === "string" ? req.filter.image.image.trim() : "";
  return daemon.images.list(filter || undefined).map((img) => imageMessage(daemon.images, img));
}

/** Handler for ImageService.ListImages. */
export function listImages(daemon: Daemon): UnaryHandler {
  return (req) => ({ images: listed(daemon, req) });
}

/** Handler for ImageService.StreamImages. */
export function streamImages(daemon: Daemon): StreamHandler {
  return async function* (req) {
    const all = listed(daemon, req);
    for (let i = 0; i < all.length; i += BATCH) yield { images: all.slice(i, i + BATCH) };
  };
}
