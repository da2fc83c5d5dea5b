/**
 * HPACK (RFC 7541): a decoder with its dynamic table and an encoder, pure and bounded. Header names and values are
 * latin1 strings (one char per octet), so any octet sequence survives a decode/encode round trip unchanged.
 * Decoding errors are connection errors in HTTP/2 (COMPRESSION_ERROR): after one, the decoder must be dropped.
 * @module
 */
import { InvalidArgument, ResourceExhausted } from "../lib/errors.ts";
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from "./hpack_huffman.ts";

/** One header field. `neverIndex` marks a "literal never indexed" field (Section 6.2.3), kept by intermediaries. */
export interface HeaderField {
  name: string;
  value: string;
  neverIndex?: boolean;
}

/** What one header block decodes to. */
export interface DecodedBlock {
  fields: HeaderField[];
  /** The dynamic table size updates found at the start of the block, in order (Section 6.3). */
  tableSizeUpdates: number[];
}

/** The static table, RFC 7541 Appendix A; index 1 is `STATIC_TABLE[0]`. */
// deno-fmt-ignore
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"],
  [":scheme", "http"], [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"],
  [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"], ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""],
  ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""],
  ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""],
  ["expect", ""], ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""],
  ["if-none-match", ""], ["if-range", ""], ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""],
  ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""],
  ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""],
  ["www-authenticate", ""],
];
const STATIC_LEN = STATIC_TABLE.length;

// name -> index of its first entry, and name -> value -> index of the exact entry.
const STATIC_NAME = new Map<string, number>();
const STATIC_EXACT = new Map<string, Map<string, number>>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
  let byValue = STATIC_EXACT.get(name);
  if (!byValue) STATIC_EXACT.set(name, byValue = new Map());
  if (!byValue.has(value)) byValue.set(value, i + 1);
});

/** The size an entry counts for in the dynamic table and in SETTINGS_MAX_HEADER_LIST_SIZE (Section 4.1). */
export function entrySize(name: string, value: string): number {
  return name.length + value.length + 32;
}

/** The dynamic table (Section 2.3.2): newest entry first in index order, oldest evicted first. */
class DynamicTable {
  // A ring buffer of entries; `#head` is the slot of the newest entry.
  #names: string[] = new Array(16);
  #values: string[] = new Array(16);
  #head = 0;
  #count = 0;
  size = 0;
  constructor(public maxSize: number) {}

  get length(): number {
    return this.#count;
  }

  /** Entry `i` (0 = newest). */
  get(i: number): [string, string] | undefined {
    if (i < 0 || i >= this.#count) return undefined;
    const slot = (this.#head + i) % this.#names.length;
    return [this.#names[slot]!, this.#values[slot]!];
  }

  /** Index (0 = newest) of the exact entry, or of an entry with the name (`exact` false), or -1. */
  find(name: string, value: string): { index: number; exact: boolean } {
    let nameIndex = -1;
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#head + i) % this.#names.length;
      if (this.#names[slot] !== name) continue;
      if (this.#values[slot] === value) return { index: i, exact: true };
      if (nameIndex < 0) nameIndex = i;
    }
    return { index: nameIndex, exact: false };
  }

  add(name: string, value: string): void {
    const size = entrySize(name, value);
    // Section 4.4: an entry larger than the table empties it and is not added.
    this.#evictTo(this.maxSize - size);
    if (size > this.maxSize) return;
    if (this.#count === this.#names.length) this.#grow();
    this.#head = (this.#head - 1 + this.#names.length) % this.#names.length;
    this.#names[this.#head] = name;
    this.#values[this.#head] = value;
    this.#count++;
    this.size += size;
  }

  resize(maxSize: number): void {
    this.maxSize = maxSize;
    this.#evictTo(maxSize);
  }

  #evictTo(limit: number): void {
    while (this.#count > 0 && this.size > Math.max(0, limit)) {
      const slot = (this.#head + this.#count - 1) % this.#names.length;
      this.size -= entrySize(this.#names[slot]!, this.#values[slot]!);
      this.#names[slot] = this.#values[slot] = "";
      this.#count--;
    }
  }

  #grow(): void {
    const names: string[] = new Array(this.#names.length * 2);
    const values: string[] = new Array(this.#names.length * 2);
    for (let i = 0; i < this.#count; i++) {
      const e = this.get(i)!;
      names[i] = e[0];
      values[i] = e[1];
    }
    this.#names = names;
    this.#values = values;
    this.#head = 0;
  }
}

/** Limits for {@link HpackDecoder}. */
export interface HpackDecoderOptions {
  /**
   * The largest dynamic table size the peer encoder may select with a size update: the SETTINGS_HEADER_TABLE_SIZE
   * that the decoding side announced (default 4096, the HTTP/2 initial value). The table starts at the smaller of
   * this and 4096 (RFC 9113 Section 6.5.2: the encoder may only grow past 4096 with a size update).
   */
  maxTableSize?: number;
  /** Bound on the decoded list, counted as in SETTINGS_MAX_HEADER_LIST_SIZE (default 1 MiB). */
  maxHeaderListSize?: number;
  /** Bound on one decoded name or value in octets (default 256 KiB). */
  maxStringLength?: number;
}

/**
 * Decodes header blocks, keeping the dynamic table in step with the peer's encoder. Every input is bounded: integers
 * past 2^28, strings past their block or `maxStringLength`, lists past `maxHeaderListSize` and size updates past
 * `maxTableSize` throw instead of allocating.
 */
export class HpackDecoder {
  readonly #table: DynamicTable;
  readonly #settingsMax: number;
  readonly #maxListSize: number;
  readonly #maxString: number;
  #scratch = new Uint8Array(256);
  #pos = 0;

  constructor(opts: HpackDecoderOptions = {}) {
    this.#settingsMax = opts.maxTableSize ?? 4096;
    this.#table = new DynamicTable(Math.min(4096, this.#settingsMax));
    this.#maxListSize = opts.maxHeaderListSize ?? 1 << 20;
    this.#maxString = opts.maxStringLength ?? 256 * 1024;
  }

  /** Octets currently held by the dynamic table (Section 4.1). */
  get tableSize(): number {
    return this.#table.size;
  }

  /** Entries in the dynamic table. */
  get tableLength(): number {
    return this.#table.length;
  }

  /** The dynamic table's entries, newest first (index 62 first). */
  tableEntries(): [string, string][] {
    const out: [string, string][] = [];
    for (let i = 0; i < this.#table.length; i++) out.push(this.#table.get(i)!);
    return out;
  }

  /** The table's current maximum size, as last set by a size update. */
  get tableMaxSize(): number {
    return this.#table.maxSize;
  }

  /** Decodes one complete header block. Throws InvalidArgument or ResourceExhausted on malformed or hostile input. */
  decode(block: Uint8Array): DecodedBlock {
    const fields: HeaderField[] = [];
    const tableSizeUpdates: number[] = [];
    let listSize = 0;
    this.#pos = 0;
    while (this.#pos < block.length) {
      const b = block[this.#pos]!;
      let field: HeaderField;
      if (b & 0x80) {
        // Section 6.1: indexed header field.
        const e = this.#lookup(this.#int(block, 7));
        field = { name: e[0], value: e[1] };
      } else if (b & 0x40) {
        // Section 6.2.1: literal with incremental indexing.
        field = this.#literal(block, 6);
        this.#table.add(field.name, field.value);
      } else if (b & 0x20) {
        // Section 6.3: dynamic table size update, only before the first field (Section 4.2).
        if (fields.length > 0) throw new InvalidArgument("HPACK: dynamic table size update after a header field");
        const size = this.#int(block, 5);
        if (size > this.#settingsMax) {
          throw new InvalidArgument(
            `HPACK: dynamic table size update to ${size} exceeds the limit ${this.#settingsMax}`,
          );
        }
        this.#table.resize(size);
        tableSizeUpdates.push(size);
        continue;
      } else {
        // Sections 6.2.2 (0000xxxx, without indexing) and 6.2.3 (0001xxxx, never indexed).
        field = this.#literal(block, 4);
        if (b & 0x10) field.neverIndex = true;
      }
      listSize += entrySize(field.name, field.value);
      if (listSize > this.#maxListSize) {
        throw new ResourceExhausted(`HPACK: decoded header list exceeds ${this.#maxListSize} octets`);
      }
      fields.push(field);
    }
    return { fields, tableSizeUpdates };
  }

  #lookup(index: number): readonly [string, string] {
    if (index === 0) throw new InvalidArgument("HPACK: index 0 is not valid");
    if (index <= STATIC_LEN) return STATIC_TABLE[index - 1]!;
    const e = this.#table.get(index - STATIC_LEN - 1);
    if (!e) {
      throw new InvalidArgument(`HPACK: index ${index} is past the dynamic table (${this.#table.length} entries)`);
    }
    return e;
  }

  #literal(block: Uint8Array, prefix: number): HeaderField {
    const nameIndex = this.#int(block, prefix);
    const name = nameIndex === 0 ? this.#string(block) : this.#lookup(nameIndex)[0];
    return { name, value: this.#string(block) };
  }

  // Section 5.1: an integer with an N-bit prefix, starting at the current position.
  #int(block: Uint8Array, prefix: number): number {
    const max = (1 << prefix) - 1;
    let value = block[this.#pos++]! & max;
    if (value < max) return value;
    for (let shift = 0;; shift += 7) {
      if (shift > 21) throw new InvalidArgument("HPACK: integer is longer than 4 continuation octets");
      if (this.#pos >= block.length) throw new InvalidArgument("HPACK: header block ends inside an integer");
      const b = block[this.#pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
  }

  // Section 5.2: a string literal, Huffman-encoded or raw.
  #string(block: Uint8Array): string {
    if (this.#pos >= block.length) throw new InvalidArgument("HPACK: header block ends before a string");
    const huffman = (block[this.#pos]! & 0x80) !== 0;
    const len = this.#int(block, 7);
    const start = this.#pos;
    if (len > block.length - start) throw new InvalidArgument(`HPACK: string of ${len} octets runs past the block`);
    this.#pos += len;
    if (!huffman) {
      if (len > this.#maxString) {
        throw new ResourceExhausted(`HPACK: string of ${len} octets exceeds ${this.#maxString}`);
      }
      return latin1(block, start, start + len);
    }
    const most = Math.ceil(len * 8 / 5);
    if (this.#scratch.length < most) this.#scratch = new Uint8Array(Math.max(most, this.#scratch.length * 2));
    const n = huffmanDecode(block, start, start + len, this.#scratch);
    if (n > this.#maxString) throw new ResourceExhausted(`HPACK: string of ${n} octets exceeds ${this.#maxString}`);
    return latin1(this.#scratch, 0, n);
  }
}

/** The octets `buf[start..end)` as a latin1 string. */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= 4096) return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[]);
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(null, buf.subarray(i, Math.min(end, i + 4096)) as unknown as number[]);
  }
  return s;
}

const NOT_LATIN1 = /[\u0100-\uffff]/;

/** Options for {@link HpackEncoder}. */
export interface HpackEncoderOptions {
  /** When to Huffman-encode strings: when shorter (default), always, or never. */
  huffman?: "auto" | "always" | "never";
  /**
   * `"none"` (default) never adds to the peer decoder's dynamic table: fields go out as static-table indexed or as
   * literals without indexing. `"incremental"` indexes every field (except never-indexed ones) like grpc-go does.
   */
  indexing?: "none" | "incremental";
  /** The dynamic table's maximum size for `"incremental"` (default 4096). */
  maxTableSize?: number;
}

/** Encodes header lists into header blocks. */
export class HpackEncoder {
  readonly #huffman: "auto" | "always" | "never";
  readonly #indexing: boolean;
  readonly #table: DynamicTable;
  #pendingUpdates: number[] = [];
  #buf = new Uint8Array(512);
  #pos = 0;

  constructor(opts: HpackEncoderOptions = {}) {
    this.#huffman = opts.huffman ?? "auto";
    this.#indexing = opts.indexing === "incremental";
    this.#table = new DynamicTable(opts.maxTableSize ?? 4096);
  }

  /** Entries in this encoder's dynamic table (always 0 with `indexing: "none"`). */
  get tableLength(): number {
    return this.#table.length;
  }

  /** Queues a dynamic table size update for the start of the next block (Section 6.3) and applies it. */
  setMaxTableSize(size: number): void {
    this.#pendingUpdates.push(size);
    this.#table.resize(size);
  }

  /**
   * Encodes `fields` into one header block, preceded by `tableSizeUpdates` (and any queued by
   * {@link setMaxTableSize}). The returned array is a fresh copy. Throws InvalidArgument for a char above 0xff.
   */
  encode(fields: readonly HeaderField[], tableSizeUpdates: readonly number[] = []): Uint8Array {
    return this.encodeView(fields, tableSizeUpdates).slice();
  }

  /** Like {@link encode}, but returns a view of the encoder's buffer, valid until the next call (saves a copy). */
  encodeView(fields: readonly HeaderField[], tableSizeUpdates: readonly number[] = []): Uint8Array {
    this.#pos = 0;
    if (this.#pendingUpdates.length > 0) {
      for (const size of this.#pendingUpdates) this.#int(0x20, 5, size);
      this.#pendingUpdates = [];
    }
    for (const size of tableSizeUpdates) this.#int(0x20, 5, size);
    for (let i = 0; i < fields.length; i++) this.#field(fields[i]!);
    return this.#buf.subarray(0, this.#pos);
  }

  #field(f: HeaderField): void {
    const exact = STATIC_EXACT.get(f.name)?.get(f.value);
    if (exact !== undefined && !f.neverIndex) return this.#int(0x80, 7, exact);
    let nameIndex = STATIC_NAME.get(f.name) ?? 0;
    if (this.#indexing && !f.neverIndex) {
      const found = this.#table.find(f.name, f.value);
      if (found.exact) return this.#int(0x80, 7, STATIC_LEN + 1 + found.index);
      if (nameIndex === 0 && found.index >= 0) nameIndex = STATIC_LEN + 1 + found.index;
      this.#int(0x40, 6, nameIndex);
      if (nameIndex === 0) this.#string(f.name);
      this.#string(f.value);
      this.#table.add(f.name, f.value);
      return;
    }
    this.#int(f.neverIndex ? 0x10 : 0x00, 4, nameIndex);
    if (nameIndex === 0) this.#string(f.name);
    this.#string(f.value);
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#pos + n));
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }

  // Section 5.1, with the representation's pattern bits in `flags`.
  #int(flags: number, prefix: number, value: number): void {
    this.#ensure(6);
    const max = (1 << prefix) - 1;
    if (value < max) {
      this.#buf[this.#pos++] = flags | value;
      return;
    }
    this.#buf[this.#pos++] = flags | max;
    value -= max;
    while (value >= 128) {
      this.#buf[this.#pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.#buf[this.#pos++] = value;
  }

  #string(s: string): void {
    const hlen = this.#huffman === "never" ? 0 : huffmanEncodedLength(s);
    if (this.#huffman === "always" || (this.#huffman === "auto" && hlen < s.length)) {
      if (NOT_LATIN1.test(s)) throw new InvalidArgument("HPACK: cannot encode a char above U+00FF: strings are latin1");
      this.#int(0x80, 7, hlen);
      this.#ensure(hlen);
      this.#pos = huffmanEncode(s, this.#buf, this.#pos);
      return;
    }
    this.#int(0x00, 7, s.length);
    this.#ensure(s.length);
    const buf = this.#buf;
    let p = this.#pos;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) throw new InvalidArgument(`HPACK: cannot encode char U+${c.toString(16)}: strings are latin1`);
      buf[p++] = c;
    }
    this.#pos = p;
  }
}
