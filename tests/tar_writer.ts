/**
 * A small tar writer for tests and image fixtures: ustar headers, pax extended headers (long names, large ids,
 * sub-second mtimes, `SCHILY.xattr.*`), optional GNU long names, and streams cut into chunks of a chosen size so
 * readers see every kind of chunk boundary. Not for production code (tests/ is never imported by it).
 * @module
 */

/** Entry types the writer can emit. */
export type TarWriterType = "file" | "hardlink" | "symlink" | "char" | "block" | "directory" | "fifo";

/** One member to write. Unset fields take tar's usual defaults. */
export interface TarWriterEntry {
  name: string;
  type?: TarWriterType;
  /** Permission bits including setuid/setgid/sticky; default 0o644 (0o755 for directories). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since the epoch, or seconds and nanoseconds (the latter written as a pax record). */
  mtime?: number | { sec: number; nsec: number };
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Body of a regular file. */
  data?: Uint8Array | string;
  /** Extended attributes, written as `SCHILY.xattr.<name>` pax records. */
  xattrs?: Record<string, string | Uint8Array>;
  /** Extra raw pax records. */
  pax?: Record<string, string>;
  /** Write long names with GNU `L`/`K` members instead of pax. */
  gnu?: boolean;
  /** Write a raw typeflag character (for tests of unsupported types). */
  typeflag?: string;
}

const enc = new TextEncoder();
const FLAGS: Record<TarWriterType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  directory: "5",
  fifo: "6",
};

function putString(block: Uint8Array, off: number, len: number, s: string | Uint8Array): void {
  const b = typeof s === "string" ? enc.encode(s) : s;
  block.set(b.subarray(0, len), off);
}

function putOctal(block: Uint8Array, off: number, len: number, v: number): void {
  putString(block, off, len, v.toString(8).padStart(len - 1, "0") + "\0");
}

function fitsOctal(v: number, len: number): boolean {
  return v >= 0 && v < 8 ** (len - 1);
}

function header(fields: {
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
}, gnuMagic = false): Uint8Array {
  const b = new Uint8Array(512);
  putString(b, 0, 100, fields.name);
  putOctal(b, 100, 8, fields.mode);
  putOctal(b, 108, 8, fitsOctal(fields.uid, 8) ? fields.uid : 0);
  putOctal(b, 116, 8, fitsOctal(fields.gid, 8) ? fields.gid : 0);
  putOctal(b, 124, 12, fields.size);
  putOctal(b, 136, 12, fitsOctal(fields.mtime, 12) ? fields.mtime : 0);
  b.fill(0x20, 148, 156);
  putString(b, 156, 1, fields.typeflag);
  putString(b, 157, 100, fields.linkname);
  if (gnuMagic) putString(b, 257, 8, "ustar  \0");
  else {
    putString(b, 257, 6, "ustar\0");
    putString(b, 263, 2, "00");
  }
  putOctal(b, 329, 8, fields.devmajor);
  putOctal(b, 337, 8, fields.devminor);
  let sum = 0;
  for (const x of b) sum += x;
  putString(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

function pad(data: Uint8Array): Uint8Array[] {
  const rest = data.length % 512;
  return rest === 0 ? [data] : [data, new Uint8Array(512 - rest)];
}

/** Encodes pax records (`"<len> <key>=<value>\n"`, the length counting itself). */
export function paxRecords(records: [string, string | Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [k, v] of records) {
    const value = typeof v === "string" ? enc.encode(v) : v;
    const body = enc.encode(` ${k}=`).length + value.length + 1;
    let len = body + String(body).length;
    if (String(len).length !== String(body).length) len = body + String(len).length;
    parts.push(enc.encode(`${len} ${k}=`), value, enc.encode("\n"));
  }
  return concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The blocks of one member: any pax/GNU extension members, the header, and the padded body. */
export function entryBlocks(e: TarWriterEntry): Uint8Array[] {
  const type = e.type ?? "file";
  const data = typeof e.data === "string" ? enc.encode(e.data) : e.data ?? new Uint8Array(0);
  const mtime = typeof e.mtime === "object" ? e.mtime : { sec: e.mtime ?? 1_700_000_000, nsec: 0 };
  const uid = e.uid ?? 0;
  const gid = e.gid ?? 0;
  const linkname = e.linkname ?? "";
  const out: Uint8Array[] = [];
  const pax: [string, string | Uint8Array][] = [];
  let name = e.name;
  let link = linkname;
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: 0, linkname: "", devmajor: 0, devminor: 0 };
  if (enc.encode(name).length > 100) {
    if (e.gnu) {
      out.push(header({ ...base, name: "././@LongLink", size: enc.encode(name).length + 1, typeflag: "L" }, true));
      out.push(...pad(enc.encode(name + "\0")));
    } else pax.push(["path", name]);
    name = name.slice(0, 99);
  }
  if (enc.encode(link).length > 100) {
    if (e.gnu) {
      out.push(header({ ...base, name: "././@LongLink", size: enc.encode(link).length + 1, typeflag: "K" }, true));
      out.push(...pad(enc.encode(link + "\0")));
    } else pax.push(["linkpath", link]);
    link = link.slice(0, 99);
  }
  if (!fitsOctal(uid, 8)) pax.push(["uid", String(uid)]);
  if (!fitsOctal(gid, 8)) pax.push(["gid", String(gid)]);
  if (mtime.nsec !== 0 || !fitsOctal(mtime.sec, 12)) {
    pax.push(["mtime", `${mtime.sec}.${String(mtime.nsec).padStart(9, "0")}`]);
  }
  for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push([`SCHILY.xattr.${k}`, v]);
  for (const [k, v] of Object.entries(e.pax ?? {})) pax.push([k, v]);
  if (pax.length > 0) {
    const body = paxRecords(pax);
    out.push(header({ ...base, name: "PaxHeaders/x", size: body.length, typeflag: "x" }));
    out.push(...pad(body));
  }
  out.push(header({
    name,
    mode: e.mode ?? (type === "directory" ? 0o755 : 0o644),
    uid,
    gid,
    size: type === "file" ? data.length : 0,
    mtime: mtime.sec,
    typeflag: e.typeflag ?? FLAGS[type],
    linkname: link,
    devmajor: e.devmajor ?? 0,
    devminor: e.devminor ?? 0,
  }, e.gnu === true));
  if (type === "file" && data.length > 0) out.push(...pad(data));
  return out;
}

/** A whole archive (with the two zero blocks that end it) as one array. */
export function buildTar(entries: TarWriterEntry[]): Uint8Array<ArrayBuffer> {
  return concat([...entries.flatMap(entryBlocks), new Uint8Array(1024)]);
}

/** An archive as a stream cut into `chunkSize`-byte chunks (default 64 KiB). */
export function tarStream(entries: TarWriterEntry[], chunkSize = 65536): ReadableStream<Uint8Array> {
  return bytesStream(buildTar(entries), chunkSize);
}

/** Streams `bytes` in chunks of `chunkSize`. */
export function bytesStream(bytes: Uint8Array, chunkSize = 65536): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(off, off + chunkSize));
      off += chunkSize;
    },
  });
}
