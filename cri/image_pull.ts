/**
 * PullImage: pulls by name (short names through registries.conf), with the kubelet's credentials when it sends
 * any, and answers the image ID. A pull with no progress for `pull_progress_timeout` is cancelled.
 */
import { type Credentials, credentialsFromAuthConfig, redactCredentials } from "../image/mod.ts";
import type { Daemon } from "./daemon.ts";
import type { Message, UnaryHandler } from "./grpc_server.ts";
import { requireImageName } from "./image_common.ts";

/** The credentials in a PullImageRequest's AuthConfig, if any. */
export function requestCredentials(req: Message): Credentials | undefined {
  const a = req.auth;
  if (!a) return undefined;
  return credentialsFromAuthConfig({
    username: a.username ?? "",
    password: a.password ?? "",
    auth: a.auth ?? "",
    identityToken: a.identity_token ?? "",
    registryToken: a.registry_token ?? "",
  });
}

/** Removes any credential the request carried from an error message. */
export function redactPullError(message: string, req: Message): string {
  try {
    const creds = requestCredentials(req);
    const raw = [req.auth?.password, req.auth?.auth, req.auth?.identity_token, req.auth?.registry_token]
      .filter((s): s is string => typeof s === "string" && s.length > 0);
    let out = creds ? redactCredentials(message, creds) : message;
    for (const s of raw) out = out.split(s).join("[redacted]");
    return out;
  } catch {
    return message;
  }
}

/** Handler for ImageService.PullImage. */
export function pullImage(daemon: Daemon): UnaryHandler {
  return async (req, ctx) => {
    const name = requireImageName(req.image, "image.image");
    const credentials = requestCredentials(req);
    const img = await daemon.images.pull(name, { ...(credentials ? { credentials } : {}), signal: ctx.signal });
    return { image_ref: img.id };
  };
}
