/**
 * GNU sparse files (their data segments and holes): old GNU (type 'S' with map in the header and
 * extension blocks) and PAX versions 0.0, 0.1 and 1.0 (GNU tar's --format=posix default).
 */
import type { ByteReader } from './byte-reader.js';
import { invalid, parseNumeric, paxInt, type PaxRecords } from './tar-fields.js';

export interface SparseSegment {
  offset: number;
  size: number;
}

export interface SparseInfo {
  map: SparseSegment[];
  realSize: number;
  /** PAX 1.0 keeps the map at the start of the data. */
  mapInData: boolean;
  /** The real name (PAX 0.1/1.0 put a made-up name in the header). */
  name?: Buffer;
}

/** Segments from `count` 24-byte (offset, numbytes) slots at `off`; empty slots end the list. */
function slots(block: Buffer, off: number, count: number, out: SparseSegment[]): void {
  for (let i = 0; i < count; i++) {
    const at = off + i * 24;
    if (block[at] === 0) return;
    out.push({ offset: parseNumeric(block, at, 12, 'sparse offset'), size: parseNumeric(block, at + 12, 12, 'sparse numbytes') });
  }
}

/** Old GNU 'S' header: 4 slots at 386, isextended at 482, realsize at 483; then extension blocks of 21 slots. */
export async function readOldGnuSparse(block: Buffer, r: ByteReader): Promise<SparseInfo> {
  const map: SparseSegment[] = [];
  slots(block, 386, 4, map);
  let extended = block[482] === 1;
  while (extended) {
    const ext = await r.read(512);
    if (ext.length < 512) throw invalid('tar truncated inside a GNU sparse map');
    slots(ext, 0, 21, map);
    extended = ext[504] === 1;
  }
  return { map, realSize: parseNumeric(block, 483, 12, 'sparse realsize'), mapInData: false };
}

/** Sparse description from PAX records, or undefined when there is none. */
export function sparseFromPax(pax: PaxRecords): SparseInfo | undefined {
  const get = (k: string): Buffer | undefined => {
    let found: Buffer | undefined;
    for (const [key, value] of pax) if (key === k) found = value;
    return found;
  };
  const major = get('GNU.sparse.major');
  const size = get('GNU.sparse.realsize') ?? get('GNU.sparse.size');
  if (major === undefined && size === undefined && !pax.some(([k]) => k.startsWith('GNU.sparse.'))) return undefined;
  if (size === undefined) throw invalid('GNU sparse PAX header without a real size');
  const info: SparseInfo = { map: [], realSize: paxInt(size, 'GNU.sparse size'), mapInData: false };
  const name = get('GNU.sparse.name');
  if (name !== undefined) info.name = name;
  if (major !== undefined) {
    if (major.toString('latin1') !== '1') throw invalid(`GNU sparse format ${major.toString('latin1')}.x is not supported`);
    info.mapInData = true;
    return info;
  }
  const mapText = get('GNU.sparse.map');
  if (mapText !== undefined) {
    const nums = mapText.length === 0 ? [] : mapText.toString('latin1').split(',').map((n) => paxInt(n, 'GNU.sparse.map'));
    if (nums.length % 2 !== 0) throw invalid('GNU.sparse.map has an odd number of values');
    for (let i = 0; i < nums.length; i += 2) info.map.push({ offset: nums[i]!, size: nums[i + 1]! });
    return info;
  }
  let offset: number | undefined; // 0.0: repeated offset/numbytes records, in order
  for (const [key, value] of pax) {
    if (key === 'GNU.sparse.offset') offset = paxInt(value, key);
    else if (key === 'GNU.sparse.numbytes') {
      if (offset === undefined) throw invalid('GNU.sparse.numbytes without an offset');
      info.map.push({ offset, size: paxInt(value, key) });
      offset = undefined;
    }
  }
  return info;
}

/** PAX 1.0: decimal map (`N\n` then N offset/size pairs) padded to 512 at the start of the data; returns bytes used. */
export async function readMapFromData(r: ByteReader, info: SparseInfo, stored: number): Promise<number> {
  let text = '';
  let used = 0;
  const numbers: number[] = [];
  for (;;) {
    const lines = text.split('\n');
    text = lines.pop()!;
    for (const line of lines) numbers.push(paxInt(line, 'sparse map entry'));
    if (numbers.length > 0 && numbers.length >= 1 + 2 * numbers[0]!) break;
    if (used + 512 > stored) throw invalid('GNU sparse map runs past the file data');
    const block = await r.read(512);
    if (block.length < 512) throw invalid('tar truncated inside a GNU sparse map');
    used += 512;
    text += block.toString('latin1');
    if (text.length > 1 << 24) throw invalid('GNU sparse map too large');
  }
  if (numbers.length !== 1 + 2 * numbers[0]!) throw invalid('GNU sparse map has trailing numbers');
  for (let i = 1; i < numbers.length; i += 2) info.map.push({ offset: numbers[i]!, size: numbers[i + 1]! });
  return used;
}

/** Checks the map is sorted, non-overlapping, inside realSize, and covers exactly the stored bytes. */
export function checkMap(info: SparseInfo, stored: number): void {
  let end = 0;
  let total = 0;
  for (const { offset, size } of info.map) {
    if (offset < end || offset + size > info.realSize) throw invalid('GNU sparse map is unsorted, overlapping or past the real size');
    end = offset + size;
    total += size;
  }
  if (total !== stored) throw invalid(`GNU sparse map covers ${total} bytes but the entry stores ${stored}`);
}

/**
 * The expanded file as data segments from `take` and, for each hole, its length in zero bytes (a
 * number): the writer seeks past holes instead of writing zeros, so they stay holes on disk.
 */
export async function* sparseSegments(info: SparseInfo, take: (n: number) => AsyncGenerator<Buffer>): AsyncGenerator<Buffer | number> {
  let pos = 0;
  for (const { offset, size } of info.map) {
    if (offset > pos) yield offset - pos;
    yield* take(size);
    pos = offset + size;
  }
  if (info.realSize > pos) yield info.realSize - pos;
}
