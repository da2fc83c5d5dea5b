/**
 * A push-driven, synchronous tar reader for OCI layers: ustar (and its star variant), pax extended headers (local
 * `x` and global `g`, including `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` records), and GNU long names (`L`, `K`).
 * Chunks go in through {@link TarParser.push}; file bodies come out as sub-arrays of those chunks (no copies, no
 * promise per entry). Format facts: POSIX.1-2017 `pax` (ustar header layout, pax records), GNU tar manual ("Basic
 * Tar Format"). Sparse files and multi-volume archives are refused: image builders do not produce them.
 *
 * Why not `modern-tar` (evaluated, not a dependency): its headers carry no device major/minor numbers (device nodes could not be
 * made) and its pax records are decoded to strings, which corrupts binary xattr values such as
 * `security.capability`; it also costs a promise per entry, where this reader's per-entry cost is a few calls.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

/** Entry types a layer may hold. */
export type TarEntryType = "file" | "hardlink" | "symlink" | "char" | "block" | "directory" | "fifo";

/** One archive member, with pax and GNU extensions already applied. */
export interface TarHeader {
  /** Member name as stored (not normalised). */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (`& 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of body that follow; 0 for every type but "file". */
  size: number;
  mtime: { sec: number; nsec: number };
  /** Symlink target or hardlink target member name. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from pax records, value bytes as stored. */
  xattrs: Map<string, Uint8Array>;
}

/** Receives one regular file's body. */
export interface TarBodySink {
  /** A piece of the body; the array is only valid during the call. */
  write(chunk: Uint8Array): void;
  /** The body is complete (also called for empty files). */
  close(): void;
}

/** Receives entries in archive order. */
export interface TarHandler {
  /** Called once per member; return a sink to receive a regular file's body, or nothing to skip it. */
  entry(header: TarHeader): TarBodySink | undefined;
}

/** Raw fields of one 512-byte header block, before extensions. */
export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}

const BLOCK = 512;
/** Largest pax or GNU long-name member accepted (the same bound Go's archive/tar uses). */
const MAX_SPECIAL = 1 << 20;

const utf8 = new TextDecoder();

function cString(block: Uint8Array, start: number, len: number): string {
  let end = start;
  const stop = start + len;
  while (end < stop && block[end] !== 0) end++;
  return utf8.decode(block.subarray(start, end));
}

/** Parses a numeric header field: NUL/space-terminated octal, or GNU base-256 when the first byte has bit 7 set. */
export function parseNumeric(block: Uint8Array, start: number, len: number): number {
  const first = block[start] ?? 0;
  if (first & 0x80) {
    // Base-256: big-endian two's complement after the marker bit; bit 0x40 of the first byte is the sign.
    const inv = first & 0x40 ? 0xff : 0;
    let v = 0;
    for (let i = 0; i < len; i++) {
      let c = (block[start + i] ?? 0) ^ inv;
      if (i === 0) c &= 0x7f;
      v = v * 256 + c;
    }
    if (!Number.isSafeInteger(v)) throw new InvalidArgument("tar stream: numeric field out of range");
    return inv ? -v - 1 : v;
  }
  let i = start;
  const stop = start + len;
  while (i < stop && (block[i] === 0x20 || block[i] === 0)) i++;
  let v = 0;
  for (; i < stop; i++) {
    const c = block[i] ?? 0;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new InvalidArgument(`tar stream: invalid octal digit in header field`);
    v = v * 8 + (c - 0x30);
  }
  return v;
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function checksumOk(block: Uint8Array): boolean {
  let stored: number;
  try {
    stored = parseNumeric(block, 148, 8);
  } catch {
    return false;
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i] ?? 0;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Some historic writers summed signed chars; both are accepted, as GNU tar does.
  return stored === unsigned || stored === signed;
}

/** Parses one header block; returns null for an all-zero block (end of archive). Throws on a bad checksum. */
export function parseHeaderBlock(block: Uint8Array): RawHeader | null {
  if (block[0] === 0 && block[148] === 0 && isZeroBlock(block)) return null;
  if (!checksumOk(block)) throw new InvalidArgument("tar stream: invalid header checksum (not a tar archive?)");
  const magic = cString(block, 257, 6);
  let name = cString(block, 0, 100);
  // POSIX ustar ("ustar\0" + "00") splits long names into prefix/name; GNU ("ustar  \0") uses that area otherwise.
  if (block[257 + 5] === 0 && magic === "ustar") {
    const starTrailer = block[508] === 0x74 && block[509] === 0x61 && block[510] === 0x72 && block[511] === 0;
    const prefix = cString(block, 345, starTrailer ? 131 : 155);
    if (prefix !== "") name = `${prefix}/${name}`;
  }
  const flag = block[156] ?? 0;
  return {
    name,
    mode: parseNumeric(block, 100, 8),
    uid: parseNumeric(block, 108, 8),
    gid: parseNumeric(block, 116, 8),
    size: parseNumeric(block, 124, 12),
    mtime: parseNumeric(block, 136, 12),
    typeflag: flag === 0 ? "\0" : String.fromCharCode(flag),
    linkname: cString(block, 157, 100),
    devmajor: magic.startsWith("ustar") ? parseNumeric(block, 329, 8) : 0,
    devminor: magic.startsWith("ustar") ? parseNumeric(block, 337, 8) : 0,
  };
}

/** Parses pax extended header records (`"<len> <key>=<value>\n"`, len counting the whole record in bytes). */
export function parsePaxRecords(buf: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let off = 0;
  while (off < buf.length) {
    if (buf[off] === 0) break; // NUL padding after the last record
    let sp = off;
    let len = 0;
    while (sp < buf.length && buf[sp] !== 0x20) {
      const c = buf[sp] ?? 0;
      if (c < 0x30 || c > 0x39) throw new InvalidArgument("tar stream: malformed pax record length");
      len = len * 10 + (c - 0x30);
      sp++;
    }
    const end = off + len;
    if (sp >= buf.length || len === 0 || end > buf.length || end <= sp + 1 || buf[end - 1] !== 0x0a) {
      throw new InvalidArgument("tar stream: malformed pax record");
    }
    let eq = sp + 1;
    while (eq < end - 1 && buf[eq] !== 0x3d) eq++;
    if (eq >= end - 1 || eq === sp + 1) throw new InvalidArgument("tar stream: pax record without a key");
    out.set(utf8.decode(buf.subarray(sp + 1, eq)), buf.slice(eq + 1, end - 1));
    off = end;
  }
  return out;
}

function paxInt(key: string, v: Uint8Array): number {
  const s = utf8.decode(v);
  if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s))) {
    throw new InvalidArgument(`tar stream: invalid pax ${key} ${JSON.stringify(s)}`);
  }
  return Number(s);
}

/** Parses a pax time (`"1700000000.5"`, `"-1.25"`) into seconds and nanoseconds. */
export function parsePaxTime(s: string): { sec: number; nsec: number } {
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(s);
  if (!m) throw new InvalidArgument(`tar stream: invalid pax time ${JSON.stringify(s)}`);
  const whole = Number(m[2]);
  const frac = Number(((m[3] ?? "") + "000000000").slice(0, 9));
  if (m[1] !== "-") return { sec: whole, nsec: frac };
  // -1.25 is 1.25 s before the epoch: sec -2, nsec 750000000.
  return frac === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1e9 - frac };
}

function base64Bytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "7": "file", // contiguous file: a regular file everywhere that matters
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
};

/** Builds the entry header from the raw block and the pending pax records and GNU long names. */
export function applyExtensions(
  raw: RawHeader,
  pax: Map<string, Uint8Array>,
  longName: string | undefined,
  longLink: string | undefined,
): TarHeader {
  let type = TYPES[raw.typeflag];
  if (raw.typeflag === "\0") type = raw.name.endsWith("/") ? "directory" : "file"; // pre-POSIX archives
  if (type === undefined) {
    throw new InvalidArgument(
      `tar stream: entry ${JSON.stringify(raw.name)} has unsupported type ${JSON.stringify(raw.typeflag)}`,
    );
  }
  const h: TarHeader = {
    name: longName ?? raw.name,
    type,
    mode: raw.mode & 0o7777,
    uid: raw.uid,
    gid: raw.gid,
    size: raw.size,
    mtime: { sec: raw.mtime, nsec: 0 },
    linkname: longLink ?? raw.linkname,
    devmajor: raw.devmajor,
    devminor: raw.devminor,
    xattrs: new Map(),
  };
  for (const [key, v] of pax) {
    if (key === "path") h.name = utf8.decode(v);
    else if (key === "linkpath") h.linkname = utf8.decode(v);
    else if (key === "size") h.size = paxInt(key, v);
    else if (key === "uid") h.uid = paxInt(key, v);
    else if (key === "gid") h.gid = paxInt(key, v);
    else if (key === "mtime") h.mtime = parsePaxTime(utf8.decode(v));
    else if (key === "SCHILY.devmajor") h.devmajor = paxInt(key, v);
    else if (key === "SCHILY.devminor") h.devminor = paxInt(key, v);
    else if (key.startsWith("SCHILY.xattr.")) h.xattrs.set(key.slice(13), v);
    else if (key.startsWith("LIBARCHIVE.xattr.")) {
      h.xattrs.set(decodeURIComponent(key.slice(17)), base64Bytes(utf8.decode(v)));
    } else if (key.startsWith("GNU.sparse.")) {
      throw new InvalidArgument(`tar stream: entry ${JSON.stringify(h.name)} is a sparse file, which is not supported`);
    }
  }
  // Header-only types carry no body whatever their size field says (as Go's archive/tar reads them).
  if (h.type !== "file") h.size = 0;
  return h;
}

const enum State {
  Header,
  Body,
  Special,
  Padding,
  End,
}

/**
 * The reader's state machine. Feed it chunks of any size with {@link push}, then call {@link finish}. Errors are
 * thrown from `push` (the handler's own errors pass through unchanged).
 */
export class TarParser {
  readonly #handler: TarHandler;
  #state = State.Header;
  readonly #hdr = new Uint8Array(BLOCK);
  #hdrFill = 0;
  #remaining = 0;
  #padding = 0;
  #sink: TarBodySink | undefined;
  #specialType = "";
  #special = new Uint8Array(0);
  #specialFill = 0;
  #pax = new Map<string, Uint8Array>();
  #global = new Map<string, Uint8Array>();
  #longName: string | undefined;
  #longLink: string | undefined;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(handler: TarHandler) {
    this.#handler = handler;
  }

  /** True once the end-of-archive marker was read. */
  get ended(): boolean {
    return this.#state === State.End;
  }

  /** Consumes one chunk. */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let off = 0;
    while (off < n) {
      switch (this.#state) {
        case State.Header: {
          let block: Uint8Array;
          if (this.#hdrFill === 0 && n - off >= BLOCK) {
            block = chunk.subarray(off, off + BLOCK);
            off += BLOCK;
          } else {
            const take = Math.min(BLOCK - this.#hdrFill, n - off);
            this.#hdr.set(chunk.subarray(off, off + take), this.#hdrFill);
            this.#hdrFill += take;
            off += take;
            if (this.#hdrFill < BLOCK) break;
            this.#hdrFill = 0;
            block = this.#hdr;
          }
          this.offset += BLOCK;
          this.#header(block);
          break;
        }
        case State.Body: {
          const take = Math.min(this.#remaining, n - off);
          this.#sink?.write(chunk.subarray(off, off + take));
          off += take;
          this.offset += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#endBody();
          break;
        }
        case State.Special: {
          const take = Math.min(this.#remaining, n - off);
          this.#special.set(chunk.subarray(off, off + take), this.#specialFill);
          this.#specialFill += take;
          off += take;
          this.offset += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#endSpecial();
          break;
        }
        case State.Padding: {
          const take = Math.min(this.#padding, n - off);
          off += take;
          this.offset += take;
          this.#padding -= take;
          if (this.#padding === 0) this.#state = State.Header;
          break;
        }
        case State.End:
          // Trailing zero blocks and the writer's record padding: nothing more to read.
          this.offset += n - off;
          return;
      }
    }
  }

  /** Checks that the stream did not stop inside a member. */
  finish(): void {
    if (this.#state === State.End || (this.#state === State.Header && this.#hdrFill === 0)) return;
    throw new InvalidArgument(`tar stream: unexpected end of archive at byte ${this.offset}`);
  }

  #header(block: Uint8Array): void {
    const raw = parseHeaderBlock(block);
    if (raw === null) {
      this.#state = State.End;
      return;
    }
    const size = raw.size;
    this.#padding = (BLOCK - (size % BLOCK)) % BLOCK;
    switch (raw.typeflag) {
      case "x":
      case "g":
      case "L":
      case "K": {
        if (size > MAX_SPECIAL) {
          throw new InvalidArgument(`tar stream: extended header of ${size} bytes exceeds ${MAX_SPECIAL}`);
        }
        this.#specialType = raw.typeflag;
        this.#special = new Uint8Array(size);
        this.#specialFill = 0;
        this.#remaining = size;
        if (size === 0) this.#endSpecial();
        else this.#state = State.Special;
        return;
      }
    }
    let pax = this.#pax;
    if (this.#global.size > 0) pax = new Map([...this.#global, ...this.#pax]);
    for (const [k, v] of pax) if (v.length === 0) pax.delete(k); // an empty value unsets a global record
    const h = applyExtensions(raw, pax, this.#longName, this.#longLink);
    this.#pax = new Map();
    this.#longName = undefined;
    this.#longLink = undefined;
    // Header-only types have no body, so the padding follows the (absent) body of size 0.
    this.#remaining = h.size;
    this.#padding = (BLOCK - (h.size % BLOCK)) % BLOCK;
    this.#sink = this.#handler.entry(h);
    if (h.type !== "file") this.#sink = undefined;
    if (h.size === 0) this.#endBody();
    else this.#state = State.Body;
  }

  #endBody(): void {
    const sink = this.#sink;
    this.#sink = undefined;
    this.#state = this.#padding > 0 ? State.Padding : State.Header;
    sink?.close();
  }

  #endSpecial(): void {
    const data = this.#special;
    this.#special = new Uint8Array(0);
    this.#state = this.#padding > 0 ? State.Padding : State.Header;
    switch (this.#specialType) {
      case "x":
        for (const [k, v] of parsePaxRecords(data)) this.#pax.set(k, v);
        break;
      case "g":
        for (const [k, v] of parsePaxRecords(data)) this.#global.set(k, v);
        break;
      case "L":
        this.#longName = cString(data, 0, data.length);
        break;
      case "K":
        this.#longLink = cString(data, 0, data.length);
        break;
    }
  }
}
