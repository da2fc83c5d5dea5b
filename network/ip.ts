/** IP address and CIDR parsing for CNI results and pod CIDRs: pure, no host calls. */

/** An IP address family. */
export type IpFamily = 4 | 6;

/** A parsed IP address in canonical text form. */
export interface ParsedIp {
  family: IpFamily;
  /** Canonical form: dotted quad, or RFC 5952 compressed lower-case IPv6. */
  address: string;
}

/** A parsed CIDR: an address (not necessarily the network address) and a prefix length. */
export interface ParsedCidr extends ParsedIp {
  prefix: number;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses an IPv4 or IPv6 address; undefined when `text` is not one. Zones (`%eth0`) are refused. */
export function parseIp(text: string): ParsedIp | undefined {
  const m = V4.exec(text);
  if (m) {
    const parts = m.slice(1).map((p) => (p.length > 1 && p.startsWith("0") ? NaN : Number(p)));
    if (parts.some((n) => !(n >= 0 && n <= 255))) return undefined;
    return { family: 4, address: parts.join(".") };
  }
  if (!text.includes(":") || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  // The WHATWG URL parser implements IPv6 parsing and RFC 5952 serialisation exactly; it is pure computation.
  try {
    const host = new URL(`http://[${text}]/`).hostname;
    return { family: 6, address: host.slice(1, -1) };
  } catch {
    return undefined;
  }
}

/** Parses `address/prefix`; undefined when malformed or the prefix is out of range for the family. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const ip = parseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  return { ...ip, prefix };
}
