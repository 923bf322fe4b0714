/**
 * The header blocks of one tar entry, encoded by tar-stream's own header codec (its `headers`
 * module, the `encode` its pack calls) with no pack stream around it: a stream per entry (streamx's
 * Writable, events, callbacks) cost the export 10–20 µs of main-thread time per entry. What precedes
 * a body is a ustar block, or — when ustar cannot hold the entry — a pax extended header (records
 * byte-exact: binary xattr values and raw names keep their bytes) and then the ustar block.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { encodeName } from '../util/byte-names.js';

/** Entry types the export writes (tar-stream's names: they pick the typeflag). */
export type EntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

/** One entry's header: ustar fields, and the pax records it needs beyond path and linkpath. */
export interface TarHeader {
  /** The archive name (`./path`, a directory's with a trailing `/`). */
  name: string;
  type: EntryType;
  /** Permission bits (07777). */
  mode: number;
  /** Any non-negative integer: past ustar's field a pax `uid` record carries it (see {@link encodeHeader}). */
  uid: number;
  gid: number;
  /** Whole seconds since the epoch, negative before 1970 (floor: -1.5 s is -2 s + 500 000 000 ns). */
  mtime: number;
  /** Nanoseconds (0–999 999 999) past `mtime`: written only in a pax `mtime` record, when one is needed. */
  mtimeNsec?: number;
  /** Body bytes: a regular file's size, else 0. */
  size: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Set: write a pax header (path, linkpath, numeric records, then these in order) before the ustar block. */
  pax?: [string, Buffer][];
}

/** tar-stream 3's header codec, as its pack uses it (`headers.js`). */
interface TarStreamHeaders {
  /** A 512-byte ustar block, or null when ustar cannot hold the name or link target. */
  encode(h: { name: string; type: string; mode: number; uid: number; gid: number; size: number; mtime: Date; linkname?: string; devmajor?: number; devminor?: number }): Buffer | null;
}

const require = createRequire(import.meta.url);
/**
 * tar-stream 3 exports only its entry point (`exports: { ".": … }`): its header codec is the entry's
 * sibling `headers.js`, which its pack requires by path. Loaded by path too (a file path is not
 * subject to the exports map), so it is the very module the installed tar-stream packs with.
 */
const headers = require(join(dirname(require.resolve('tar-stream')), 'headers.js')) as TarStreamHeaders;

/**
 * The blocks before `h`'s body (a multiple of 512 bytes): the ustar block alone when it can hold the
 * entry and no pax record is asked for, else pax header block + records (padded) + ustar block, as
 * tar-stream's pack lays them out. Mode, uid and gid are written as given (0 stays 0). Numbers past
 * what tar-stream's encoder writes are the class of breaker6's T1 (fixed by {@link wideFields}).
 */
export function encodeHeader(h: TarHeader): Buffer {
  const wide = isWide(h);
  // wide: numbers the encoder writes right here, the ustar block's true ones by wideFields below
  const fields = { name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, size: h.size, mtime: new Date(h.mtime * 1000), linkname: h.linkname, devmajor: h.devmajor, devminor: h.devminor };
  if (wide) Object.assign(fields, { uid: Math.min(h.uid, MAX_OCT6), gid: Math.min(h.gid, MAX_OCT6), mtime: new Date(Math.min(Math.max(h.mtime, 0), MAX_INT32) * 1000) });
  if (h.pax === undefined && !wide) {
    const block = headers.encode(fields);
    if (block) return block;
  }
  const records: Buffer[] = [];
  // names keep their bytes, UTF-8 or not, as GNU tar writes them (it warns on `hdrcharset`, so none is added)
  if (h.name) records.push(paxRecord('path', encodeName(h.name)));
  if (h.linkname) records.push(paxRecord('linkpath', encodeName(h.linkname)));
  if (wide) for (const [k, v] of numericRecords(h)) records.push(paxRecord(k, Buffer.from(v)));
  for (const [k, v] of h.pax ?? []) records.push(paxRecord(k, v));
  const body = Buffer.concat(records);
  const placeholder = { ...fields, name: 'PaxHeader', linkname: h.linkname ? 'PaxHeader' : undefined };
  const padded = Buffer.alloc(512 + roundUp(body.length) + 512);
  headers.encode({ ...placeholder, size: body.length, type: 'pax-header', linkname: undefined })!.copy(padded, 0);
  body.copy(padded, 512);
  const ustar = headers.encode(placeholder)!;
  if (wide) wideFields(ustar, h);
  ustar.copy(padded, 512 + roundUp(body.length));
  return padded;
}

/** tar-stream writes uid, gid, devmajor, devminor in 6 octal digits (7 fit the 8-byte field). */
const MAX_OCT6 = 0o777777;
const MAX_OCT7 = 0o7777777;
/** 11 octal digits in the 12-byte mtime field; tar-stream takes the seconds `| 0` (wraps at 2^31). */
const MAX_OCT11 = 0o77777777777;
const MAX_INT32 = 0x7fffffff;

/** Whether a number of `h` is past what tar-stream's encoder writes right (cheap: most entries are not). */
function isWide(h: TarHeader): boolean {
  return h.uid > MAX_OCT6 || h.gid > MAX_OCT6 || h.mtime > MAX_INT32 || h.mtime < 0 || (h.devmajor ?? 0) > MAX_OCT6 || (h.devminor ?? 0) > MAX_OCT6;
}

/**
 * The pax records for numbers ustar cannot hold (POSIX pax keys; GNU tar, umoci/Go and python read
 * them): uid/gid past 7 octal digits, an mtime before 1970 or past 11 octal digits (2^33 s, year 2242),
 * the mtime as a decimal with its nanoseconds ("-1.5" = 1.5 s before the epoch).
 */
function numericRecords(h: TarHeader): [string, string][] {
  const out: [string, string][] = [];
  if (h.mtime < 0 || h.mtime > MAX_OCT11) out.push(['mtime', paxTime(h.mtime, h.mtimeNsec ?? 0)]);
  if (h.uid > MAX_OCT7) out.push(['uid', String(h.uid)]);
  if (h.gid > MAX_OCT7) out.push(['gid', String(h.gid)]);
  return out;
}

/** `sec` + `nsec`/1e9 as a pax decimal: the fraction's digits are of the absolute value. */
function paxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec);
  const [whole, frac] = sec < 0 ? [`-${-sec - 1}`, 1e9 - nsec] : [String(sec), nsec];
  return `${whole}.${String(frac).padStart(9, '0').replace(/0+$/, '')}`;
}

/**
 * Rewrites `ustar`'s numeric fields that tar-stream clamped or wrapped, then its checksum. Fields with a
 * pax record hold what fits (the reader takes the record). devmajor/devminor have no POSIX pax key: 7
 * octal digits, and past that GNU's base-256 (GNU tar 1.34 and Go read both without a warning).
 */
function wideFields(ustar: Buffer, h: TarHeader): void {
  writeNumber(ustar, 108, Math.min(h.uid, MAX_OCT7), 8);
  writeNumber(ustar, 116, Math.min(h.gid, MAX_OCT7), 8);
  writeNumber(ustar, 136, Math.min(Math.max(h.mtime, 0), MAX_OCT11), 12);
  writeNumber(ustar, 329, h.devmajor ?? 0, 8);
  writeNumber(ustar, 337, h.devminor ?? 0, 8);
  let sum = 8 * 0x20; // the checksum field counts as spaces
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += ustar[i]!;
  ustar.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

/** `v` in a `len`-byte field: octal digits and a NUL when they fit, else base-256 (0x80, big-endian). */
function writeNumber(buf: Buffer, off: number, v: number, len: number): void {
  const oct = v.toString(8);
  if (oct.length < len) {
    buf.write(`${oct.padStart(len - 1, '0')}\0`, off, 'latin1');
    return;
  }
  buf.fill(0, off, off + len);
  buf[off] = 0x80;
  for (let i = len - 1, n = v; i > 0 && n > 0; i--, n = Math.floor(n / 256)) buf[off + i] = n % 256;
}

/** `n` rounded up to whole 512-byte blocks. */
export function roundUp(n: number): number {
  return Math.ceil(n / 512) * 512;
}

/** One pax record: `<len> <key>=<value>\n` where len counts its own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(' '), encodeName(key), Buffer.from('='), value, Buffer.from('\n')]); // xattr names: any bytes
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}
