/** Gzip member header parsing (RFC 1952 2.3), for the native block inflater's own framing. */
import { ErrorCode, VmimgError } from '../errors.js';

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

function corrupt(what: string): never {
  throw new VmimgError(ErrorCode.INVALID_LAYER, `gzip data is corrupt (${what})`);
}

/**
 * The length of the gzip header at the start of `b`, or undefined when `b` ends inside it. Not a gzip
 * header (magic, method 8, reserved flags clear, as zlib checks) is ERR_INVALID_LAYER.
 */
export function gzipHeaderLength(b: Uint8Array): number | undefined {
  if (b.length >= 1 && b[0] !== 0x1f) corrupt('incorrect header check');
  if (b.length >= 2 && b[1] !== 0x8b) corrupt('incorrect header check');
  if (b.length >= 3 && b[2] !== 8) corrupt('unknown compression method');
  if (b.length < 10) return undefined;
  const flags = b[3]!;
  if ((flags & 0xe0) !== 0) corrupt('unknown header flags set');
  let at = 10;
  if (flags & FEXTRA) {
    if (b.length < at + 2) return undefined;
    at += 2 + (b[at]! | (b[at + 1]! << 8));
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if ((flags & flag) === 0) continue;
    const nul = b.indexOf(0, at);
    if (nul < 0) return undefined;
    at = nul + 1;
  }
  if (flags & FHCRC) at += 2;
  return b.length >= at ? at : undefined;
}
