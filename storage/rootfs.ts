/**
 * Container root filesystems: an overlay of an image's stored layers (lower, read-only) under a per-container
 * writable layer, in `<root>/containers/<id>/{upper,work,merged}`. The containers work (issue 4) calls these.
 * @module
 */
import { FailedPrecondition, InvalidArgument } from "../lib/errors.ts";
import type { ImageStore } from "./image_store.ts";
import { type DiskUsage, diskUsage, type Mounter, mountOverlay, unmount } from "./overlay.ts";

/** A mounted container root filesystem. */
export interface Rootfs {
  /** The mountpoint handed to the OCI runtime as root.path. */
  path: string;
  upperDir: string;
  workDir: string;
}

const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Root filesystem mounts for containers, over the layers of an {@link ImageStore}. */
export class RootfsManager {
  readonly #store: ImageStore;
  readonly #base: string;
  readonly #mounter: Mounter | undefined;

  constructor(store: ImageStore, root: string, opts: { mounter?: Mounter } = {}) {
    this.#store = store;
    this.#base = `${root}/containers`;
    this.#mounter = opts.mounter;
  }

  /** The directory holding one container's layers. */
  dir(containerId: string): string {
    if (!ID.test(containerId)) throw new InvalidArgument(`invalid container ID ${JSON.stringify(containerId)}`);
    return `${this.#base}/${containerId}`;
  }

  /** Mounts the image's layers under a fresh (or kept) writable layer for the container; returns the mountpoint. */
  async mount(containerId: string, imageId: string, opts: { readOnly?: boolean } = {}): Promise<Rootfs> {
    const img = this.#store.getImage(imageId);
    if (!img) {
      throw new FailedPrecondition(`Cannot mount a root filesystem for ${containerId}: image ${imageId} is not stored`);
    }
    const dir = this.dir(containerId);
    const rootfs: Rootfs = { path: `${dir}/merged`, upperDir: `${dir}/upper`, workDir: `${dir}/work` };
    for (const d of [rootfs.path, rootfs.upperDir, rootfs.workDir]) {
      await Deno.mkdir(d, { recursive: true, mode: 0o755 });
    }
    // Overlay wants the top-most layer first; the image lists its base first.
    const lowerDirs = [...img.layers].reverse().map((c) => this.#store.layerDir(c));
    if (lowerDirs.length === 0) {
      throw new FailedPrecondition(`Cannot mount a root filesystem for ${containerId}: image ${imageId} has no layers`);
    }
    await unmount(rootfs.path, { detach: true, ...(this.#mounter ? { mounter: this.#mounter } : {}) });
    await mountOverlay({
      lowerDirs,
      upperDir: rootfs.upperDir,
      workDir: rootfs.workDir,
      target: rootfs.path,
      readOnly: opts.readOnly ?? false,
    }, this.#mounter ? { mounter: this.#mounter } : {});
    return rootfs;
  }

  /** Unmounts the container's root filesystem (idempotent). */
  async unmount(containerId: string): Promise<void> {
    await unmount(`${this.dir(containerId)}/merged`, {
      detach: true,
      ...(this.#mounter ? { mounter: this.#mounter } : {}),
    });
  }

  /** Unmounts and deletes the container's writable layer (idempotent). */
  async remove(containerId: string): Promise<void> {
    await this.unmount(containerId);
    await Deno.remove(this.dir(containerId), { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }

  /** Bytes and inodes in the container's writable layer (walk bounded by `maxEntries`, see {@link diskUsage}). */
  async usage(containerId: string, opts: { maxEntries?: number } = {}): Promise<DiskUsage> {
    return await diskUsage(`${this.dir(containerId)}/upper`, opts);
  }
}
