/**
 * The SPDY/3.1 name/value header block before compression (SPDY Protocol Draft 3.1, Section 2.6.10): a 32-bit
 * count, then for each pair a 32-bit length and the name, a 32-bit length and the value. Names are non-empty,
 * lower case US-ASCII and unique; a name with several values carries them NUL-separated in one value, none of them
 * empty. Pure functions with precise errors; a decoding error is a stream error (the compression state is intact).
 * @module
 */
import { InvalidArgument } from "../../lib/errors.ts";
import { SpdyProtocolError } from "./spdy_frame.ts";

/**
 * Headers as received: lower-case names; a header sent with several values keeps them NUL-separated in one
 * string (split them with {@link headerValues}).
 */
export type SpdyHeaders = Record<string, string>;

/** Headers to send: a value is one string, or a list that goes on the wire NUL-separated. */
export type SpdyHeaderInput = Readonly<Record<string, string | readonly string[]>>;

/** Default cap on an uncompressed header block, either direction. */
export const DEFAULT_MAX_HEADER_BYTES = 256 << 10;

// HTTP/1 connection headers that SPDY forbids (Section 3.2.1); Go's SPDY framer drops a connection carrying them.
const FORBIDDEN = new Set(["connection", "host", "keep-alive", "proxy-connection", "transfer-encoding"]);

/** Splits a received value into its NUL-separated values. */
export function headerValues(value: string): string[] {
  return value.split("\0");
}

// Why `name` is not a valid header name, or undefined when it is: printable US-ASCII except upper case letters.
function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "a header name is empty";
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return `header name ${JSON.stringify(name)} is not lower case`;
    if (c < 0x21 || c > 0x7e) return `header name ${JSON.stringify(name)} has a character outside printable ASCII`;
  }
  return undefined;
}

// Why `value` is not a valid header value, or undefined: empty, or NUL-separated values that are all non-empty.
function valueProblem(name: string, value: string): string | undefined {
  if (value.length > 0 && value.split("\0").some((v) => v.length === 0)) {
    return `header ${JSON.stringify(name)} has an empty value in its NUL-separated list`;
  }
  return undefined;
}

/**
 * Serialises headers into an uncompressed header block. Throws {@link InvalidArgument} for an invalid name or
 * value, a forbidden connection header, or a block larger than `maxBytes`.
 */
export function encodeHeaderBlock(headers: SpdyHeaderInput, opts: { maxBytes?: number } = {}): Uint8Array {
  const max = opts.maxBytes ?? DEFAULT_MAX_HEADER_BYTES;
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  let size = 4;
  for (const [name, raw] of Object.entries(headers)) {
    const bad = nameProblem(name);
    if (bad) throw new InvalidArgument(`Cannot encode SPDY headers: ${bad}`);
    if (FORBIDDEN.has(name)) throw new InvalidArgument(`Cannot encode SPDY headers: ${name} is not allowed in SPDY`);
    if (typeof raw !== "string") {
      if (raw.length === 0) throw new InvalidArgument(`Cannot encode SPDY headers: header ${name} has no value`);
      if (raw.some((v) => v.length === 0 || v.includes("\0"))) {
        throw new InvalidArgument(`Cannot encode SPDY headers: a value of ${name} is empty or contains NUL`);
      }
    }
    const value = typeof raw === "string" ? raw : raw.join("\0");
    const badValue = valueProblem(name, value);
    if (badValue) throw new InvalidArgument(`Cannot encode SPDY headers: ${badValue}`);
    const n = encoder.encode(name);
    const v = encoder.encode(value);
    parts.push(n, v);
    size += 8 + n.length + v.length;
    if (size > max) {
      throw new InvalidArgument(`Cannot encode SPDY headers: the block exceeds the limit of ${max} bytes`);
    }
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, parts.length / 2);
  let at = 4;
  for (const p of parts) {
    view.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/**
 * Parses an uncompressed header block. Throws {@link SpdyProtocolError} (problem `header-block`, carrying
 * `streamId` when given) for a truncated or overlong block, an invalid, duplicate or empty name, an invalid value,
 * or bytes that are not UTF-8.
 */
export function decodeHeaderBlock(block: Uint8Array, opts: { streamId?: number } = {}): SpdyHeaders {
  const fail = (what: string): never => {
    const where = opts.streamId === undefined ? "" : ` on stream ${opts.streamId}`;
    throw new SpdyProtocolError("header-block", `SPDY header block${where}: ${what}`, opts);
  };
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  const u32 = (what: string): number => {
    if (at + 4 > block.length) fail(`truncated before the ${what}`);
    const v = view.getUint32(at);
    at += 4;
    return v;
  };
  const text = (length: number, what: string): string => {
    if (length > block.length - at) fail(`${what} of ${length} bytes runs past the end of the block`);
    const bytes = block.subarray(at, at + length);
    at += length;
    try {
      return decoder.decode(bytes);
    } catch {
      return fail(`${what} is not UTF-8`);
    }
  };
  const count = u32("pair count");
  // Each pair takes at least 8 bytes: a count that cannot fit is rejected before any allocation.
  if (count > (block.length - 4) / 8) fail(`pair count ${count} does not fit in ${block.length} bytes`);
  const seen = new Set<string>();
  const entries: [string, string][] = [];
  for (let i = 0; i < count; i++) {
    const name = text(u32("name length"), "a name");
    const value = text(u32("value length"), `the value of ${JSON.stringify(name)}`);
    const bad = nameProblem(name) ?? valueProblem(name, value);
    if (bad) fail(bad);
    if (seen.has(name)) fail(`header ${JSON.stringify(name)} appears twice`);
    seen.add(name);
    entries.push([name, value]);
  }
  if (at !== block.length) fail(`${block.length - at} bytes follow the last pair`);
  // fromEntries defines own properties, so a name such as "__proto__" cannot touch the prototype.
  return Object.fromEntries(entries);
}
