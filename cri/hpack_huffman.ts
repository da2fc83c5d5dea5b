/**
 * The HPACK Huffman code (RFC 7541 Section 5.2 and Appendix B): encoding and decoding of header strings kept as
 * latin1 strings (one char per octet). Pure; the decoding table is built once at module load.
 * @module
 */
import { InvalidArgument } from "../lib/errors.ts";

// Code lengths of symbols 0..255 and EOS (256), transcribed from RFC 7541 Appendix B. The code there is canonical
// (codes of one length are consecutive in symbol order, shorter codes first), so the codes follow from the lengths;
// hpack_test.ts checks the derived codes against samples of the appendix and the Kraft sum.
// deno-fmt-ignore
const LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;

/** Code length in bits of each symbol 0..256 (256 is EOS). */
export const HUFFMAN_LENGTHS: Uint8Array = Uint8Array.from(LENGTHS);

/** The code of each symbol 0..256, right-aligned in `HUFFMAN_LENGTHS[sym]` bits. */
export const HUFFMAN_CODES: Uint32Array = canonicalCodes(HUFFMAN_LENGTHS);

function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const codes = new Uint32Array(lengths.length);
  let code = 0;
  let prevLen = 0;
  for (let len = 1; len <= 30; len++) {
    for (let sym = 0; sym < lengths.length; sym++) {
      if (lengths[sym] !== len) continue;
      code = prevLen === 0 ? 0 : (code + 1) * 2 ** (len - prevLen);
      codes[sym] = code;
      prevLen = len;
    }
  }
  return codes;
}

// Decoding walks a 4-bit-at-a-time state machine over the code tree's 256 internal nodes (state 0 is the root).
// Every code is at least 5 bits long, so one nibble completes at most one symbol. Entry layout:
// bits 0-7 next state, bit 8 "emits a symbol", bit 9 "hits EOS" (an error), bits 10-17 the symbol.
const EMIT = 1 << 8;
const FAIL = 1 << 9;
const { table: NIBBLE_TABLE, accepting: ACCEPTING } = buildDecoder();

function buildDecoder(): { table: Int32Array; accepting: Uint8Array } {
  // child[node * 2 + bit]: > 0 an internal node, < 0 a leaf -(sym + 1); 0 (the root) never is a child.
  const child = new Int16Array(512);
  const depth = new Uint8Array(256);
  const allOnes = new Uint8Array(256);
  allOnes[0] = 1;
  let next = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const len = HUFFMAN_LENGTHS[sym]!;
    const code = HUFFMAN_CODES[sym]!;
    let node = 0;
    for (let i = len - 1; i > 0; i--) {
      const bit = (code >>> i) & 1;
      let c = child[node * 2 + bit]!;
      if (c === 0) {
        c = next++;
        child[node * 2 + bit] = c;
        depth[c] = depth[node]! + 1;
        allOnes[c] = allOnes[node]! & bit;
      }
      node = c;
    }
    child[node * 2 + (code & 1)] = -(sym + 1);
  }
  const table = new Int32Array(256 * 16);
  const accepting = new Uint8Array(256);
  for (let state = 0; state < 256; state++) {
    // Section 5.2: padding is at most 7 bits and must be the most significant bits of EOS (all ones).
    accepting[state] = state === 0 || (allOnes[state] === 1 && depth[state]! <= 7) ? 1 : 0;
    for (let nibble = 0; nibble < 16; nibble++) {
      let cur = state;
      let entry = 0;
      for (let b = 3; b >= 0; b--) {
        const c = child[cur * 2 + ((nibble >>> b) & 1)]!;
        if (c < 0) {
          const sym = -c - 1;
          entry |= sym === EOS ? FAIL : EMIT | (sym << 10);
          cur = 0;
        } else {
          cur = c;
        }
      }
      table[state * 16 + nibble] = entry | cur;
    }
  }
  return { table, accepting };
}

/** The length in octets of `s` (a latin1 string) once Huffman-encoded. */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff]!;
  return (bits + 7) >>> 3;
}

/**
 * Writes the Huffman encoding of `s` (a latin1 string) into `out` at `pos`, padded with the most significant bits
 * of EOS; returns the position after it. `out` must have room for {@link huffmanEncodedLength} octets.
 */
export function huffmanEncode(s: string, out: Uint8Array, pos: number): number {
  let acc = 0;
  let bits = 0;
  let p = pos;
  // `acc` holds fewer than 8 pending bits between symbols, so adding at most 24 bits stays within 31 bits.
  const put = (code: number, len: number) => {
    acc = (acc << len) | code;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      out[p++] = (acc >>> bits) & 0xff;
    }
    acc &= (1 << bits) - 1;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff;
    const len = HUFFMAN_LENGTHS[c]!;
    const code = HUFFMAN_CODES[c]!;
    if (len > 24) {
      put(code >>> 16, len - 16);
      put(code & 0xffff, 16);
    } else {
      put(code, len);
    }
  }
  if (bits > 0) out[p++] = ((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff;
  return p;
}

/**
 * Decodes the Huffman-encoded octets `src[start..end)` into `scratch` (which needs room for `(end - start) * 8 / 5`
 * octets, the most a valid input can yield); returns the decoded length. Throws InvalidArgument on EOS inside the
 * string or invalid padding (RFC 7541 Section 5.2).
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number, scratch: Uint8Array): number {
  let state = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    let e = NIBBLE_TABLE[(state << 4) | (byte >>> 4)]!;
    if (e & FAIL) throw new InvalidArgument("HPACK: Huffman-encoded string contains EOS");
    if (e & EMIT) scratch[n++] = e >>> 10;
    e = NIBBLE_TABLE[((e & 0xff) << 4) | (byte & 0x0f)]!;
    if (e & FAIL) throw new InvalidArgument("HPACK: Huffman-encoded string contains EOS");
    if (e & EMIT) scratch[n++] = e >>> 10;
    state = e & 0xff;
  }
  if (ACCEPTING[state] !== 1) {
    throw new InvalidArgument("HPACK: Huffman-encoded string has invalid padding (longer than 7 bits or not EOS)");
  }
  return n;
}
