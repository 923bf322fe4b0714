/**
 * The one escaping of text that images and registries control (names, link targets, labels, env,
 * registry and error messages) before the CLI prints it for a human. Like `ls -b` (GNU quoting style
 * "escape"): what a terminal would act on or not show is written as a C escape, so no ESC sequence,
 * newline or carriage return from an image reaches the terminal and each printed name maps back to
 * one byte string. JSON output is never passed through this: JSON.stringify is exact already.
 *
 * - `\` → `\\`; BEL BS TAB LF VT FF CR → `\a \b \t \n \v \f \r`;
 * - other C0 controls, DEL, C1 controls (U+0080..U+009F), U+2028/U+2029 and format characters
 *   (bidi overrides, zero-width space, BOM, ...; ZWJ/ZWNJ and emoji tag characters are kept) → `\ooo`,
 *   one per byte of their UTF-8 encoding;
 * - a byte that was not valid UTF-8 (U+DC80..U+DCFF, see util/byte-names.ts) → `\ooo` of that byte;
 * - any other lone surrogate → `\uXXXX`.
 * Printable characters, spaces and non-ASCII letters are kept.
 */

// \p{Cs} matches lone surrogates only (the `u` flag reads valid pairs as one astral character).
const UNSAFE = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSAFE_ALL = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const SHORT: Record<string, string> = { '\\': '\\\\', '\x07': '\\a', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\v': '\\v', '\f': '\\f', '\r': '\\r' };
/** Format characters that join emoji sequences: harmless, and escaping them would garble names. */
const KEPT_FORMAT = /^[\u200c\u200d]$|^\udb40[\udc20-\udc7f]$/;

/** `text` with every non-printable character escaped as `ls -b` does (see the module comment). */
export function escapeTerminal(text: string): string {
  if (!UNSAFE.test(text)) return text;
  return text.replace(UNSAFE_ALL, escapeChar);
}

function escapeChar(ch: string): string {
  const short = SHORT[ch];
  if (short !== undefined) return short;
  if (KEPT_FORMAT.test(ch)) return ch;
  const c = ch.codePointAt(0)!;
  if (c >= 0xdc80 && c <= 0xdcff) return octal(c - 0xdc00);
  if (c >= 0xd800 && c <= 0xdfff) return `\\u${c.toString(16).toUpperCase()}`;
  let out = '';
  for (const byte of Buffer.from(ch, 'utf8')) out += octal(byte);
  return out;
}

function octal(byte: number): string {
  return `\\${byte.toString(8).padStart(3, '0')}`;
}
