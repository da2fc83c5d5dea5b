/** Shared pieces of the ImageService handlers: the CRI Image message and the image-name field check. */
import { InvalidArgument } from "../lib/errors.ts";
import type { ImageService } from "../image/mod.ts";
import type { ImageRecord } from "../storage/mod.ts";
import type { Message } from "./grpc_server.ts";

/** The image name a request's ImageSpec carries; `field` names it in the error when it is empty. */
export function requireImageName(spec: Message | null | undefined, field: string): string {
  const name = typeof spec?.image === "string" ? spec.image.trim() : "";
  if (name === "") throw new InvalidArgument(`${field} is empty: an image name or ID is required`);
  return name;
}

/** A stored image as the CRI Image message. */
export function imageMessage(images: ImageService, img: ImageRecord): Message {
  const user = images.imageUser(img);
  return {
    id: img.id,
    repo_tags: img.repoTags,
    repo_digests: img.repoDigests,
    size: img.size,
    ...(user.uid !== undefined ? { uid: { value: user.uid } } : {}),
    username: user.username ?? "",
    spec: { image: img.id, annotations: {} },
    pinned: images.isPinned(img),
  };
}
