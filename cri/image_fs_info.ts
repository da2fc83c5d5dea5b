/** ImageFsInfo: bytes and inodes used by image layers and by containers' writable layers, with mountpoints. */
import { diskUsage } from "../storage/mod.ts";
import type { Daemon } from "./daemon.ts";
import type { Message, UnaryHandler } from "./grpc_server.ts";

/** The kubelet asks every few seconds; a walk of a large store is not free, so answers are reused briefly. */
const CACHE_MS = 5_000;

/** Handler for ImageService.ImageFsInfo. */
export function imageFsInfo(daemon: Daemon): UnaryHandler {
  let cached: { at: number; value: Promise<Message> } | undefined;
  const measure = async (): Promise<Message> => {
    const root = daemon.config.davit.root;
    const usage = async (dir: string) => {
      await Deno.mkdir(dir, { recursive: true });
      const u = await diskUsage(dir);
      return {
        timestamp: String(BigInt(Date.now()) * 1_000_000n),
        fs_id: { mountpoint: dir },
        used_bytes: { value: u.bytes },
        inodes_used: { value: u.inodes },
      };
    };
    return {
      image_filesystems: [await usage(`${root}/overlay`)],
      container_filesystems: [await usage(`${root}/containers`)],
    };
  };
  return () => {
    if (!cached || Date.now() - cached.at > CACHE_MS) {
      cached = { at: Date.now(), value: measure() };
      cached.value.catch(() => cached = undefined);
    }
    return cached.value;
  };
}
