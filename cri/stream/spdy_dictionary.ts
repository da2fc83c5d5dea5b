/**
 * The SPDY/3 header compression dictionary (SPDY Protocol Draft 3.1, Section 2.6.10.1): the preset zlib
 * dictionary both directions of every SPDY/3 connection start from. The spec prints it as 1423 bytes; they are
 * a run of header names and common values, each prefixed by its 32-bit big-endian length, followed by an
 * unprefixed tail of status texts, dates, media types and charsets. This module rebuilds those bytes from that
 * structure so that they can be read and checked, and exports them together with their Adler-32 checksum
 * (RFC 1950's DICTID, which a zlib stream that uses the dictionary carries in its header).
 * @module
 */

// The length-prefixed entries, in the spec's order.
const PREFIXED = [
  "options",
  "head",
  "post",
  "put",
  "delete",
  "trace",
  "accept",
  "accept-charset",
  "accept-encoding",
  "accept-language",
  "accept-ranges",
  "age",
  "allow",
  "authorization",
  "cache-control",
  "connection",
  "content-base",
  "content-encoding",
  "content-language",
  "content-length",
  "content-location",
  "content-md5",
  "content-range",
  "content-type",
  "date",
  "etag",
  "expect",
  "expires",
  "from",
  "host",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "pragma",
  "proxy-authenticate",
  "proxy-authorization",
  "range",
  "referer",
  "retry-after",
  "server",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "vary",
  "via",
  "warning",
  "www-authenticate",
  "method",
  "get",
  "status",
  "200 OK",
  "version",
  "HTTP/1.1",
  "url",
  "public",
  "set-cookie",
  "keep-alive",
  "origin",
];

// The unprefixed tail, in pieces that follow the spec's grouping (status codes, reason phrases, months, a time,
// weekdays, media types, cache and encoding tokens, charsets).
const TAIL = [
  "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
  "203 Non-Authoritative Information",
  "204 No Content",
  "301 Moved Permanently",
  "400 Bad Request",
  "401 Unauthorized",
  "403 Forbidden",
  "404 Not Found",
  "500 Internal Server Error",
  "501 Not Implemented",
  "503 Service Unavailable",
  "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
  "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
  "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
  "text/javascript,publicprivatemax-age=gzip,deflate,sdch",
  "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
].join("");

function build(): Uint8Array {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [];
  for (const word of PREFIXED) {
    const bytes = encoder.encode(word);
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, bytes.length);
    parts.push(prefix, bytes);
  }
  parts.push(encoder.encode(TAIL));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Adler-32 (RFC 1950, Section 8.2) of `data`. */
export function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  // 5552 is the largest run for which the sums cannot overflow 2^53 before the modulo; any run would do here.
  for (let i = 0; i < data.length; i += 5552) {
    const end = Math.min(i + 5552, data.length);
    for (let j = i; j < end; j++) {
      a += data[j]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** The SPDY/3 header compression dictionary: 1423 bytes. */
export const SPDY3_DICTIONARY: Uint8Array = build();

/** Adler-32 of {@link SPDY3_DICTIONARY}: the DICTID of a zlib stream that uses it. */
export const SPDY3_DICTIONARY_ID: number = adler32(SPDY3_DICTIONARY);
