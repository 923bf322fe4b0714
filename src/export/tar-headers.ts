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
  uid: number;
  gid: number;
  /** Seconds since the epoch (≥ 0). */
  mtime: number;
  /** Body bytes: a regular file's size, else 0. */
  size: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Set: write a pax header (path, linkpath, then these records in order) before the ustar block. */
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
 * tar-stream's pack lays them out. Mode, uid and gid are written as given (0 stays 0).
 */
export function encodeHeader(h: TarHeader): Buffer {
  const fields = { name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, size: h.size, mtime: new Date(h.mtime * 1000), linkname: h.linkname, devmajor: h.devmajor, devminor: h.devminor };
  if (h.pax === undefined) {
    const block = headers.encode(fields);
    if (block) return block;
  }
  const records: Buffer[] = [];
  // names keep their bytes, UTF-8 or not, as GNU tar writes them (it warns on `hdrcharset`, so none is added)
  if (h.name) records.push(paxRecord('path', encodeName(h.name)));
  if (h.linkname) records.push(paxRecord('linkpath', encodeName(h.linkname)));
  for (const [k, v] of h.pax ?? []) records.push(paxRecord(k, v));
  const body = Buffer.concat(records);
  const placeholder = { ...fields, name: 'PaxHeader', linkname: h.linkname ? 'PaxHeader' : undefined };
  const padded = Buffer.alloc(512 + roundUp(body.length) + 512);
  headers.encode({ ...placeholder, size: body.length, type: 'pax-header', linkname: undefined })!.copy(padded, 0);
  body.copy(padded, 512);
  headers.encode(placeholder)!.copy(padded, 512 + roundUp(body.length));
  return padded;
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
