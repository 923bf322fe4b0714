/** Low-level tar field decoding shared by the tar reader and the sparse-file support. */
import { ErrorCode, VmimgError } from '../errors.js';
import { decodeName } from '../util/byte-names.js';

export function invalid(msg: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_LAYER, msg);
}

/** Octal (space/NUL padded) or GNU base-256 (first byte 0x80 / 0xff) numeric field. */
export function parseNumeric(block: Buffer, off: number, len: number, what: string): number {
  const first = block[off]!;
  if (first === 0x80 || first === 0xff) {
    // GNU base-256: big-endian two's complement in the remaining bytes.
    let n = 0;
    for (let i = off + 1; i < off + len; i++) n = n * 256 + (first === 0xff ? 255 - block[i]! : block[i]!);
    if (!Number.isSafeInteger(n)) throw invalid(`tar header field ${what} is too large`);
    return first === 0xff ? -n - 1 : n;
  }
  let i = off;
  const end = off + len;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let n = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw invalid(`tar header field ${what} is not octal`);
    n = n * 8 + (c - 0x30);
  }
  if (!Number.isSafeInteger(n)) throw invalid(`tar header field ${what} is too large`);
  return n;
}

/** PAX extended header records (`LEN KEY=VALUE\n`) in order, values as raw bytes. */
export type PaxRecords = [string, Buffer][];

export function parsePax(data: Buffer): PaxRecords {
  const out: PaxRecords = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // NUL padding some writers leave
    const space = data.indexOf(0x20, pos);
    const len = space < 0 ? NaN : Number(data.toString('latin1', pos, space));
    if (!Number.isInteger(len) || len <= space - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw invalid(`malformed PAX record at byte ${pos}`);
    }
    const rec = data.subarray(space + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw invalid(`PAX record without "=" at byte ${pos}`);
    out.push([decodeName(rec.subarray(0, eq)), rec.subarray(eq + 1)]); // keys hold xattr names: any bytes
    pos += len;
  }
  return out;
}

export function paxInt(v: Buffer | string, what: string): number {
  const s = typeof v === 'string' ? v : v.toString('latin1');
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw invalid(`PAX ${what} "${s}" is not a valid number`);
  return Number(s);
}
