/**
 * CNI ADD results (SPEC.md section 5): validation of every supported version into one normalised 1.x shape,
 * conversion between versions for `prevResult` passing, and the pod IPs derived from a result. Pure.
 * @module
 */
import { isSupportedVersion, versionAtLeast } from "./cni_version.ts";
import { parseCidr, parseIp } from "./ip.ts";

/** An interface created by the attachment; `sandbox` is set for interfaces inside the pod's namespace. */
export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** An address assigned by the attachment. */
export interface CniIpConfig {
  /** CIDR notation, e.g. `10.88.0.5/16`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

/** A route created by the attachment. */
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** DNS information a plugin returned. */
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in the 1.x shape whatever version the plugin spoke (0.3.x/0.4.0 `ips[].version` dropped). */
export interface CniResult {
  /** The version the plugin answered with. */
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
}

/** Outcome of validating a result. */
export type ParsedResult = { ok: true; result: CniResult } | { ok: false; reason: string };

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optString(o: Obj, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new Error(`${where}.${key} is not a string`);
  return v;
}

function optUint(o: Obj, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new Error(`${where}.${key} is not an unsigned integer`);
  }
  return v;
}

function optStrings(o: Obj, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    throw new Error(`${where}.${key} is not a list of strings`);
  }
  return v as string[];
}

function optList(o: Obj, key: string): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`"${key}" is not a list`);
  return v;
}

/** Copies the defined entries of `fields` onto `target` (exactOptionalPropertyTypes-friendly). */
function assignDefined<T extends object>(target: T, fields: { [K in keyof T]?: T[K] | undefined }): T {
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) (target as Obj)[k] = v;
  return target;
}

function parseInterfaces(json: Obj): CniInterface[] {
  return optList(json, "interfaces").map((i, n) => {
    const where = `interfaces[${n}]`;
    if (!isObject(i)) throw new Error(`${where} is not an object`);
    const name = optString(i, "name", where);
    if (!name) throw new Error(`${where} has no name`);
    return assignDefined<CniInterface>({ name }, {
      mac: optString(i, "mac", where),
      mtu: optUint(i, "mtu", where),
      sandbox: optString(i, "sandbox", where),
      socketPath: optString(i, "socketPath", where),
      pciID: optString(i, "pciID", where),
    });
  });
}

function parseIps(json: Obj, interfaces: CniInterface[], version: string): CniIpConfig[] {
  return optList(json, "ips").map((ip, n) => {
    const where = `ips[${n}]`;
    if (!isObject(ip)) throw new Error(`${where} is not an object`);
    const address = optString(ip, "address", where) ?? "";
    const cidr = parseCidr(address);
    if (!cidr) throw new Error(`${where}.address ${JSON.stringify(address)} is not an address in CIDR notation`);
    const gateway = optString(ip, "gateway", where);
    if (gateway !== undefined && gateway !== "" && !parseIp(gateway)) {
      throw new Error(`${where}.gateway ${JSON.stringify(gateway)} is not an IP address`);
    }
    const index = optUint(ip, "interface", where);
    if (index !== undefined && index >= interfaces.length) {
      throw new Error(`${where}.interface ${index} is out of range (${interfaces.length} interfaces)`);
    }
    if (!versionAtLeast(version, "1.0.0") && ip.version !== undefined && ip.version !== String(cidr.family)) {
      throw new Error(`${where}.version ${JSON.stringify(ip.version)} does not match ${address}`);
    }
    return assignDefined<CniIpConfig>({ address }, { gateway: gateway || undefined, interface: index });
  });
}

function parseRoutes(json: Obj): CniRoute[] {
  return optList(json, "routes").map((r, n) => {
    const where = `routes[${n}]`;
    if (!isObject(r)) throw new Error(`${where} is not an object`);
    const dst = optString(r, "dst", where) ?? "";
    if (!parseCidr(dst)) throw new Error(`${where}.dst ${JSON.stringify(dst)} is not in CIDR notation`);
    const gw = optString(r, "gw", where);
    if (gw !== undefined && gw !== "" && !parseIp(gw)) {
      throw new Error(`${where}.gw ${JSON.stringify(gw)} is not an IP address`);
    }
    return assignDefined<CniRoute>({ dst }, {
      gw: gw || undefined,
      mtu: optUint(r, "mtu", where),
      advmss: optUint(r, "advmss", where),
      priority: optUint(r, "priority", where),
      table: optUint(r, "table", where),
      scope: optUint(r, "scope", where),
    });
  });
}

function parseDns(json: Obj): CniDns {
  const d = json.dns;
  if (d === undefined || d === null) return {};
  if (!isObject(d)) throw new Error('"dns" is not an object');
  return assignDefined<CniDns>({}, {
    nameservers: optStrings(d, "nameservers", "dns"),
    domain: optString(d, "domain", "dns") || undefined,
    search: optStrings(d, "search", "dns"),
    options: optStrings(d, "options", "dns"),
  });
}

/** Validates an ADD result of any supported version and normalises it to the 1.x shape. */
export function parseResult(json: unknown): ParsedResult {
  if (!isObject(json)) return { ok: false, reason: "the result is not a JSON object" };
  const version = json.cniVersion;
  if (typeof version !== "string") return { ok: false, reason: 'the result has no "cniVersion"' };
  if (!isSupportedVersion(version)) return { ok: false, reason: `result version ${version} is not supported` };
  try {
    const interfaces = parseInterfaces(json);
    return {
      ok: true,
      result: {
        cniVersion: version,
        interfaces,
        ips: parseIps(json, interfaces, version),
        routes: parseRoutes(json),
        dns: parseDns(json),
      },
    };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}

/**
 * Converts a raw (already validated) result to version `to` for use as `prevResult`, keeping unknown fields:
 * before 1.0.0 each IP carries `version` ("4"/"6"), from 1.0.0 it does not.
 */
export function convertResult(raw: Record<string, unknown>, to: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw, cniVersion: to };
  if (Array.isArray(raw.ips)) {
    out.ips = raw.ips.map((ip) => {
      if (!isObject(ip)) return ip;
      const copy: Obj = { ...ip };
      if (versionAtLeast(to, "1.0.0")) {
        delete copy.version;
      } else {
        const family = typeof ip.address === "string" ? parseCidr(ip.address)?.family : undefined;
        if (family) copy.version = String(family);
      }
      return copy;
    });
  }
  return out;
}

/** The pod's addresses derived from a result. */
export interface PodIps {
  /** The pod IP the CRI reports first: the first IPv4 address, or the first IPv6 one if there is no IPv4. */
  primary?: string;
  /** The other addresses (dual stack), in result order. */
  additional: string[];
  /** `primary` followed by `additional`. */
  all: string[];
}

/**
 * Derives pod IPs (addresses without prefix length): only addresses on interfaces inside the sandbox, or not tied
 * to an interface, count; host-side interface addresses are skipped. Duplicates are dropped.
 */
export function podIps(result: CniResult): PodIps {
  const seen = new Set<string>();
  const found: { address: string; family: 4 | 6 }[] = [];
  for (const ip of result.ips) {
    if (ip.interface !== undefined && !result.interfaces[ip.interface]?.sandbox) continue;
    const cidr = parseCidr(ip.address);
    if (!cidr || seen.has(cidr.address)) continue;
    seen.add(cidr.address);
    found.push({ address: cidr.address, family: cidr.family });
  }
  const primary = found.find((f) => f.family === 4) ?? found[0];
  if (!primary) return { additional: [], all: [] };
  const additional = found.filter((f) => f !== primary).map((f) => f.address);
  return { primary: primary.address, additional, all: [primary.address, ...additional] };
}
