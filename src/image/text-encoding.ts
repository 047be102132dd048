// Lossless UTF-8 for protobuf string fields.
//
// CRIU stores file paths, comm names, mount options etc. in proto2 `string` fields, but Linux
// paths are arbitrary bytes. A plain TextDecoder would turn invalid sequences into U+FFFD and a
// restore would then open the wrong path. Like Python's "surrogateescape", each byte that is not
// part of valid UTF-8 is decoded to a lone surrogate U+DC80..U+DCFF and encoded back to the
// same byte, so decode/encode is an exact round trip for any bytes. Valid UTF-8 takes the fast
// path and is unchanged.
//
// installLosslessTextEncoding() configures the @bufbuild/protobuf copy this package uses; io.ts
// calls it at load time. stringToBytes()/bytesToString() give the same mapping to callers that
// need the raw bytes of a string field (e.g. to open a path with a Buffer).

import { configureTextEncoding } from "@bufbuild/protobuf/wire";

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

// A lone low surrogate in the escape range, not preceded by a high surrogate.
const ESCAPE_RE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;

/** Decode bytes as UTF-8, escaping every invalid byte as U+DC80+byte. */
export function bytesToString(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return decodeEscaped(bytes);
  }
}

/** Encode a string as UTF-8, turning escaped bytes (U+DC80..U+DCFF) back into raw bytes. */
export function stringToBytes(text: string): Uint8Array<ArrayBuffer> {
  if (!ESCAPE_RE.test(text)) return encoder.encode(text);
  const parts: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const prevHigh = i > 0 && isHigh(text.charCodeAt(i - 1));
    if (c >= 0xdc80 && c <= 0xdcff && !prevHigh) {
      parts.push(c - 0xdc00);
      continue;
    }
    // Encode one code point (a surrogate pair counts as one).
    let end = i + 1;
    if (isHigh(c) && i + 1 < text.length && isLow(text.charCodeAt(i + 1))) end = i + 2;
    for (const b of encoder.encode(text.slice(i, end))) parts.push(b);
    i = end - 1;
  }
  return Uint8Array.from(parts);
}

function isHigh(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

// Slow path: walk the bytes, decode each maximal valid UTF-8 sequence, escape the rest.
function decodeEscaped(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const n = validSequenceLength(bytes, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + bytes[i]!);
      i += 1;
    } else {
      out += strictDecoder.decode(bytes.subarray(i, i + n));
      i += n;
    }
  }
  return out;
}

// Length of the valid UTF-8 sequence starting at i, or 0 when the byte there starts none.
// Follows the Unicode table of well-formed sequences (no overlongs, no surrogates, <= U+10FFFF).
function validSequenceLength(b: Uint8Array, i: number): number {
  const b0 = b[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

let installed = false;

/** Make @bufbuild/protobuf use the lossless mapping for every string field (idempotent). */
export function installLosslessTextEncoding(): void {
  if (installed) return;
  installed = true;
  configureTextEncoding({
    encodeUtf8: stringToBytes,
    decodeUtf8: (bytes: Uint8Array) => bytesToString(bytes),
    // Strings produced by bytesToString are always acceptable to stringToBytes.
    checkUtf8: () => true,
  });
}
