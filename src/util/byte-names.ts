/**
 * Lossless bytes ↔ string for names, link targets and xattr names (Python's PEP 383 "surrogateescape").
 *
 * Linux names are bytes; tar layers carry them unchanged, valid UTF-8 or not. vmimg keeps names as JS
 * strings, decoded so that no two byte strings share one string:
 * - valid UTF-8 decodes as usual (so every UTF-8 name is unchanged);
 * - each byte of an invalid sequence becomes one lone surrogate U+DC80..U+DCFF (byte 0x80..0xFF);
 * - encoding turns those surrogates back into their bytes.
 * UTF-8 cannot encode surrogates, so the mapping is a bijection between byte strings and the strings
 * `decodeName` produces. Only the code that writes bytes (exports, JSON, terminal output) must know.
 */
import { isUtf8 } from 'node:buffer';

/** A lone low surrogate U+DC80..U+DCFF, i.e. an escaped byte. */
const ESCAPE_LO = 0xdc80;
const ESCAPE_HI = 0xdcff;
// eslint-disable-next-line no-control-regex
const ASCII_ONLY = /^[\x00-\x7f]*$/;
const ANY_SURROGATE = /[\ud800-\udfff]/;

/** Bytes → name: UTF-8, with each byte of an invalid sequence as U+DC80 + (byte − 0x80). */
export function decodeName(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(buf)) return buf.toString('utf8');
  let out = '';
  let start = 0; // start of the pending run of valid UTF-8
  for (let i = 0; i < buf.length; ) {
    const n = validSequence(buf, i);
    if (n > 0) {
      i += n;
      continue;
    }
    out += buf.toString('utf8', start, i) + String.fromCharCode(0xdc00 + buf[i]!);
    i++;
    start = i;
  }
  return out + buf.toString('utf8', start);
}

/** Length of the well-formed UTF-8 sequence at `i` (Unicode table 3-7), 0 when there is none. */
function validSequence(b: Buffer, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const [lo, hi] = c === 0xe0 ? [0xa0, 0xbf] : c === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const [lo, hi] = c === 0xf0 ? [0x90, 0xbf] : c === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/**
 * Name → bytes, the inverse of `decodeName`. A string holding a surrogate that `decodeName` never
 * produces (a lone high surrogate, a lone low one below U+DC80) names no file: RangeError.
 */
export function encodeName(name: string): Buffer {
  if (!ANY_SURROGATE.test(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff) {
      const d = name.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++; // a surrogate pair: an astral character, plain UTF-8
        continue;
      }
    } else if (c >= ESCAPE_LO && c <= ESCAPE_HI) {
      parts.push(Buffer.from(name.slice(start, i), 'utf8'), Buffer.of(c - 0xdc00));
      start = i + 1;
      continue;
    }
    throw new RangeError(`name holds a lone surrogate U+${c.toString(16).toUpperCase()} at ${i}, which is no byte string`);
  }
  parts.push(Buffer.from(name.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/** Bytes of a name given as a string (see `encodeName`) or as bytes. */
export function nameBytes(name: string | Uint8Array): Buffer {
  return typeof name === 'string' ? encodeName(name) : Buffer.from(name);
}

/**
 * A name given as bytes or as a string, in `decodeName`'s form: strings pass through unless they hold
 * surrogates; a string that no byte string decodes to is returned unchanged (it names no file).
 */
export function nameString(name: string | Uint8Array): string {
  if (typeof name !== 'string') return decodeName(name);
  if (!ANY_SURROGATE.test(name)) return name;
  try {
    return decodeName(encodeName(name));
  } catch {
    return name;
  }
}

/** True when `name` came from bytes that are not valid UTF-8 (it holds an escaped byte). */
export function isRawName(name: string): boolean {
  if (ASCII_ONLY.test(name) || !ANY_SURROGATE.test(name)) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) i++;
    else if (c >= ESCAPE_LO && c <= ESCAPE_HI) return true;
  }
  return false;
}

/** Bytewise (= UTF-8, = Linux `LC_ALL=C`) order of two decoded names. */
export function compareNameBytes(a: string, b: string): number {
  return Buffer.compare(encodeName(a), encodeName(b));
}
