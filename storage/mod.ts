/**
 * Storage: layer extraction (tar reader, whiteouts, kernel-confined writes), decompression, overlay mounts of
 * container root filesystems, and disk usage. Other folders import only this module.
 * @module
 */
export { decompressStream } from "./decompress.ts";
export type { Compression } from "./decompress.ts";
export { extractLayer, OPAQUE_XATTR } from "./extract.ts";
export type { ExtractOptions, ExtractResult } from "./extract.ts";
export { classifyEntry, normaliseEntryPath } from "./layer_paths.ts";
export type { EntryTarget } from "./layer_paths.ts";
export { diskUsage, LinuxMounter, MAX_LOWER_LAYERS, mountOverlay, unmount } from "./overlay.ts";
export type { DiskUsage, MountApi, Mounter, OverlayOptions } from "./overlay.ts";
export { chainIds, IMAGE_STORE_MIGRATIONS, ImageStore } from "./image_store.ts";
export type { ImageRecord, LayerRecord, LayerWriter, NewImage } from "./image_store.ts";
export { DAEMON_MIGRATIONS, migrate, openDatabase } from "./db.ts";
export type { Migration, MigrationSet } from "./db.ts";
export { type Rootfs, RootfsManager } from "./rootfs.ts";
