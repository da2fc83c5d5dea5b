/**
 * The image configuration (OCI image spec config.md; the Docker config shares its fields): what a container
 * inherits (user, environment, entrypoint, command, working directory, stop signal, labels, ports, volumes) and the
 * uncompressed layer digests (`rootfs.diff_ids`) that identify the image's layers.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { digestProblem } from "./digest.ts";

/** One `history` entry. */
export interface HistoryEntry {
  created?: string;
  createdBy?: string;
  author?: string;
  comment?: string;
  emptyLayer: boolean;
}

/** A parsed image configuration; absent lists and maps are empty. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  author?: string;
  user?: string;
  env: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  stopSignal?: string;
  labels: Record<string, string>;
  /** `ExposedPorts` keys, e.g. `80/tcp`. */
  exposedPorts: string[];
  /** `Volumes` keys (paths). */
  volumes: string[];
  /** `rootfs.diff_ids`, bottom layer first. */
  diffIds: string[];
  history: HistoryEntry[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function bad(why: string): never {
  throw new InvalidArgument(`invalid image config: ${why}`);
}

function optString(o: Json, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") bad(`${where}${key} is not a string`);
  return v;
}

function optStrings(o: Json, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) bad(`${where}${key} is not an array of strings`);
  return v as string[];
}

function keysOf(o: Json, key: string, where: string): string[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!isObject(v)) bad(`${where}${key} is not an object`);
  return Object.keys(v);
}

/** Parses and validates an image config blob; throws InvalidArgument saying which field is wrong. */
export function parseImageConfig(bytes: Uint8Array): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    bad("not valid UTF-8 JSON");
  }
  if (!isObject(doc)) bad("not a JSON object");
  const c: Json = doc.config === undefined || doc.config === null
    ? {}
    : isObject(doc.config)
    ? doc.config
    : bad("config is not an object");
  const rootfs = doc.rootfs;
  if (!isObject(rootfs)) bad("missing rootfs");
  if (rootfs.type !== "layers") bad(`rootfs.type must be "layers", got ${JSON.stringify(rootfs.type)}`);
  const diffIds = optStrings(rootfs, "diff_ids", "rootfs.") ?? [];
  diffIds.forEach((d, i) => {
    const problem = digestProblem(d);
    if (problem !== undefined) bad(`rootfs.diff_ids[${i}] "${d}": ${problem}`);
  });
  const labels = c.Labels === undefined || c.Labels === null ? {} : c.Labels;
  if (!isObject(labels) || !Object.values(labels).every((v) => typeof v === "string")) {
    bad("config.Labels is not an object of strings");
  }
  const rawHistory = doc.history ?? [];
  if (!Array.isArray(rawHistory)) bad("history is not an array");
  const history = rawHistory.map((h, i): HistoryEntry => {
    if (!isObject(h)) bad(`history[${i}] is not an object`);
    const e: HistoryEntry = { emptyLayer: h.empty_layer === true };
    const where = `history[${i}].`;
    const created = optString(h, "created", where);
    if (created !== undefined) e.created = created;
    const createdBy = optString(h, "created_by", where);
    if (createdBy !== undefined) e.createdBy = createdBy;
    const author = optString(h, "author", where);
    if (author !== undefined) e.author = author;
    const comment = optString(h, "comment", where);
    if (comment !== undefined) e.comment = comment;
    return e;
  });
  const out: ImageConfig = {
    env: optStrings(c, "Env", "config.") ?? [],
    labels: labels as Record<string, string>,
    exposedPorts: keysOf(c, "ExposedPorts", "config."),
    volumes: keysOf(c, "Volumes", "config."),
    diffIds,
    history,
  };
  const top: [keyof ImageConfig, string][] = [
    ["architecture", "architecture"],
    ["os", "os"],
    ["variant", "variant"],
    ["created", "created"],
    ["author", "author"],
  ];
  for (const [field, key] of top) {
    const v = optString(doc, key, "");
    if (v !== undefined) (out as unknown as Record<string, string>)[field] = v;
  }
  const inner: [keyof ImageConfig, string][] = [["user", "User"], ["workingDir", "WorkingDir"], [
    "stopSignal",
    "StopSignal",
  ]];
  for (const [field, key] of inner) {
    const v = optString(c, key, "config.");
    if (v !== undefined && v !== "") (out as unknown as Record<string, string>)[field] = v;
  }
  const entrypoint = optStrings(c, "Entrypoint", "config.");
  if (entrypoint !== undefined) out.entrypoint = entrypoint;
  const cmd = optStrings(c, "Cmd", "config.");
  if (cmd !== undefined) out.cmd = cmd;
  return out;
}
