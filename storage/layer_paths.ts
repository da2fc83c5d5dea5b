/**
 * Pure rules for the member names of a layer tar: normalisation (absolute names are refused, `.` and `..` are
 * resolved lexically and may not climb above the root) and the OCI whiteout names (image-spec layer.md,
 * "Whiteouts": `.wh.<name>` hides `<name>`, `.wh..wh..opq` makes its directory opaque).
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

/** The prefix that marks a whiteout entry. */
export const WHITEOUT_PREFIX = ".wh.";
/** The name of the opaque-directory marker. */
export const WHITEOUT_OPAQUE = ".wh..wh..opq";
/** Names under this prefix (other than the opaque marker) are AUFS bookkeeping (`.wh..wh.plnk`), not content. */
export const WHITEOUT_META_PREFIX = ".wh..wh.";

/** A normalised relative path split at its last slash; `dir` is "" for entries at the root. */
export interface SplitPath {
  path: string;
  dir: string;
  base: string;
}

/** What one member name asks the extractor to do. */
export type EntryTarget =
  | { kind: "root" }
  | ({ kind: "path" } & SplitPath)
  | ({ kind: "whiteout" } & SplitPath)
  | { kind: "opaque"; dir: string }
  | { kind: "ignore"; path: string };

/** The error for a name that would leave the layer root. */
export function escapeError(
  name: string,
  how = "path escapes the layer root",
  options?: ErrorOptions,
): InvalidArgument {
  return new InvalidArgument(`layer entry ${JSON.stringify(name)}: ${how}`, options);
}

/**
 * Normalises a member name to a relative path without `.`, `..`, empty or trailing components; "" means the root
 * itself. An absolute member name (other than "/" itself) is refused: layer tars use relative names, and an
 * absolute one is either a broken or a hostile archive (davit refuses rather than guesses, unlike GNU tar). A `..`
 * that would climb above the root is refused with InvalidArgument rather than clamped.
 */
export function normaliseEntryPath(name: string): string {
  if (name.includes("\0")) throw escapeError(name, "name contains a NUL byte");
  if (name.startsWith("/") && name.replace(/[/.]/g, "") !== "") throw escapeError(name, "absolute path");
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) throw escapeError(name);
      out.pop();
    } else out.push(part);
  }
  return out.join("/");
}

/** Splits a normalised, non-empty path into its parent directory and last component. */
export function splitPath(path: string): SplitPath {
  const i = path.lastIndexOf("/");
  return i < 0 ? { path, dir: "", base: path } : { path, dir: path.slice(0, i), base: path.slice(i + 1) };
}

/** Classifies a member name: the root, a plain path, a whiteout, an opaque marker, or AUFS metadata to skip. */
export function classifyEntry(name: string): EntryTarget {
  const path = normaliseEntryPath(name);
  if (path === "") return { kind: "root" };
  // AUFS keeps its bookkeeping (hardlink store `.wh..wh.plnk/`, `.wh..wh.aufs`) under the root: none is content.
  if (path.startsWith(WHITEOUT_META_PREFIX) && path !== WHITEOUT_OPAQUE) return { kind: "ignore", path };
  const split = splitPath(path);
  if (!split.base.startsWith(WHITEOUT_PREFIX)) return { kind: "path", ...split };
  if (split.base === WHITEOUT_OPAQUE) return { kind: "opaque", dir: split.dir };
  if (split.base.startsWith(WHITEOUT_META_PREFIX)) return { kind: "ignore", path };
  const hidden = split.base.slice(WHITEOUT_PREFIX.length);
  // `.wh.` alone, `.wh..` and `.wh...` name no sibling: the last would even whiteout the parent of the directory.
  if (hidden === "" || hidden === "." || hidden === "..") throw escapeError(name, "whiteout names no file");
  return { kind: "whiteout", path: split.dir === "" ? hidden : `${split.dir}/${hidden}`, dir: split.dir, base: hidden };
}
