/**
 * Image references in the docker distribution grammar (`[domain/]path[:tag][@digest]`), normalised the way docker
 * and containers/image do (docker.io default, `library/` for single-component Docker Hub names, `latest` when there
 * is neither tag nor digest), short-name resolution through registries.conf, and recognising image IDs.
 *
 * Short names (no registry given) resolve to candidates in order: a matching `[aliases]` entry alone, otherwise one
 * candidate per `unqualified-search-registries` entry. davit never prompts, so `short-name-mode` does not change the
 * result: `enforcing` only differs from `permissive` when a TTY could prompt, and davit (like CRI-O under the
 * kubelet) has none; every mode tries each search registry in order.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";
import { digestProblem } from "./digest.ts";
import type { RegistriesConf } from "./registries_conf.ts";

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  repository: string;
  tag?: string;
  digest?: string;
}

/** Options for {@link parseReference}. */
export interface ParseReferenceOptions {
  /** Add tag `latest` when the input has neither tag nor digest (default true). */
  defaultTag?: boolean;
}

/** The registry assumed for names without one (Docker's rule). */
export const DEFAULT_REGISTRY = "docker.io";
/** Tag assumed when a reference has neither tag nor digest. */
export const DEFAULT_TAG = "latest";
/** Limit on `registry/repository` (distribution's NameTotalLengthMax). */
export const NAME_MAX_LENGTH = 255;

const TAG = /^[\w][\w.-]{0,127}$/;
// path-component := alpha-numeric (separator alpha-numeric)*, separator := [_.] | __ | -+
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6 = /^\[[a-fA-F0-9:.%]+\]$/;
const HEX64 = /^[a-f0-9]{64}$/;

function fail(input: string, why: string): never {
  throw new InvalidArgument(`invalid image reference "${input}": ${why}`);
}

/** True when `component` (the text before the first `/`) names a registry rather than a path. */
function looksLikeDomain(component: string): boolean {
  // distribution's rule: a `.` or `:`, `localhost`, or an upper-case letter (paths are lower-case only).
  return component.includes(".") || component.includes(":") || component === "localhost" ||
    component !== component.toLowerCase();
}

/** Returns why `domain` is not a registry `host[:port]`, or undefined when it is one. */
export function registryHostProblem(domain: string): string | undefined {
  let host = domain;
  const portMatch = /:([0-9]+)$/.exec(domain);
  if (portMatch) host = domain.slice(0, portMatch.index);
  if (IPV6.test(host)) return undefined;
  if (host === "" || !host.split(".").every((c) => DOMAIN_COMPONENT.test(c))) {
    return `invalid registry host "${domain}"`;
  }
  return undefined;
}

/** Returns why `text` is not a registry name prefix (`host[:port][/path][:tag|@digest]`), or undefined. */
export function namePrefixProblem(text: string): string | undefined {
  if (text === "") return "must not be empty";
  if (text.includes("://")) return "must not include a URL scheme";
  const slash = text.indexOf("/");
  const host = slash < 0 ? text : text.slice(0, slash);
  const problem = registryHostProblem(host);
  if (problem !== undefined) return problem;
  if (slash >= 0) {
    try {
      parseReference(text, { defaultTag: false });
    } catch (err) {
      return (err as Error).message;
    }
  }
  return undefined;
}

interface Split {
  name: string;
  tag?: string;
  digest?: string;
}

/** Splits `name[:tag][@digest]`, validating tag and digest. */
function splitTagDigest(input: string): Split {
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = digestProblem(digest);
    if (problem !== undefined) fail(input, `invalid digest "${digest}": ${problem}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(input, `invalid tag "${tag}"`);
  }
  const out: Split = { name: rest };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** Splits a name into an explicit domain (or none) and the path. */
function splitDomain(name: string): { domain?: string; path: string } {
  const slash = name.indexOf("/");
  if (slash < 0) return { path: name };
  const first = name.slice(0, slash);
  return looksLikeDomain(first) ? { domain: first, path: name.slice(slash + 1) } : { path: name };
}

/**
 * Parses and normalises an image reference; throws InvalidArgument naming the input when it is malformed:
 * `invalid image reference "Foo:bar": repository name must be lowercase`.
 */
export function parseReference(input: string, options: ParseReferenceOptions = {}): ImageReference {
  if (input === "") fail(input, "empty reference");
  if (/\s/.test(input)) fail(input, "contains white space");
  const { name, tag, digest } = splitTagDigest(input);
  const { domain, path } = splitDomain(name);
  if (domain !== undefined) {
    const problem = registryHostProblem(domain);
    if (problem !== undefined) fail(input, problem);
  }
  if (path === "") fail(input, "empty repository name");
  if (path !== path.toLowerCase()) fail(input, "repository name must be lowercase");
  if (domain === undefined && HEX64.test(path)) {
    fail(input, "a 64-character hexadecimal string is an image ID, not a repository name");
  }
  for (const component of path.split("/")) {
    if (!PATH_COMPONENT.test(component)) fail(input, `invalid repository path component "${component}"`);
  }
  let registry = domain ?? DEFAULT_REGISTRY;
  if (registry === "index.docker.io") registry = DEFAULT_REGISTRY;
  const repository = registry === DEFAULT_REGISTRY && !path.includes("/") ? `library/${path}` : path;
  if (registry.length + 1 + repository.length > NAME_MAX_LENGTH) {
    fail(input, `repository name must not be longer than ${NAME_MAX_LENGTH} characters`);
  }
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  else if (digest === undefined && options.defaultTag !== false) ref.tag = DEFAULT_TAG;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `registry/repository`, the fully expanded repository name. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/** The fully expanded form, `registry/repository[:tag][@digest]`. */
export function fullString(ref: ImageReference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The short form people type: Docker Hub's `docker.io/` and `library/` dropped (`busybox:latest`). */
export function familiarString(ref: ImageReference): string {
  let name = repositoryName(ref);
  if (ref.registry === DEFAULT_REGISTRY) {
    name = ref.repository.startsWith("library/") && ref.repository.split("/").length === 2
      ? ref.repository.slice("library/".length)
      : ref.repository;
  }
  let s = name;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** True when `input` names no registry (`busybox`, `library/busybox:1`), so search registries apply. */
export function isShortName(input: string): boolean {
  // Only the text before the first `/` decides; tag and digest cannot contain `/`.
  const at = input.indexOf("@");
  return splitDomain(at >= 0 ? input.slice(0, at) : input).domain === undefined;
}

/** The part of registries.conf short-name resolution reads. */
export type ShortNameConfig = Pick<RegistriesConf, "unqualifiedSearchRegistries" | "aliases">;

/**
 * The candidate references to try, in order, for `input`. A fully qualified input yields itself. A short name
 * yields its alias (with the input's tag or digest appended) when one is configured, otherwise one candidate per
 * unqualified-search registry. Throws InvalidArgument when a short name has neither.
 */
export function resolveShortName(input: string, conf: ShortNameConfig): ImageReference[] {
  const parsed = parseReference(input); // validates, whatever the outcome
  if (!isShortName(input)) return [parsed];
  const { name, tag, digest } = splitTagDigest(input);
  const suffix = (tag !== undefined ? `:${tag}` : "") + (digest !== undefined ? `@${digest}` : "");
  const alias = conf.aliases[name];
  if (alias !== undefined && alias !== "") return [parseReference(alias + suffix)];
  if (conf.unqualifiedSearchRegistries.length === 0) {
    throw new InvalidArgument(
      `short name "${input}" did not resolve to an alias and no unqualified-search-registries are defined`,
    );
  }
  return conf.unqualifiedSearchRegistries.map((registry) => parseReference(`${registry}/${input}`));
}

/** What {@link parseImageIdOrReference} found. */
export type ImageIdOrReference =
  | { kind: "id"; id: string }
  | { kind: "reference"; reference: ImageReference; shortName: boolean };

/**
 * Recognises an image ID (64 lower-case hex, optionally `sha256:`-prefixed; returned as `sha256:<hex>`) before
 * trying a reference, so callers can look images up by ID. `shortName` tells the caller to resolve search
 * registries rather than trust the docker.io default in `reference`.
 */
export function parseImageIdOrReference(input: string): ImageIdOrReference {
  const hex = input.startsWith("sha256:") ? input.slice("sha256:".length) : input;
  if (HEX64.test(hex)) return { kind: "id", id: `sha256:${hex}` };
  return { kind: "reference", reference: parseReference(input), shortName: isShortName(input) };
}
