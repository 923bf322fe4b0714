/**
 * Streaming tar reader working on raw bytes (ustar, GNU, PAX, old v7).
 * Our own rather than tar-stream's extract because tar-stream decodes PAX records as UTF-8
 * (corrupting binary xattrs such as security.capability and non-UTF-8 PAX paths), drops
 * sub-second mtimes and GNU sparse files, and fails archives that end without zero blocks.
 */
import { ByteReader } from './byte-reader.js';
import { invalid, parseNumeric, parsePax, paxInt, type PaxRecords } from './tar-fields.js';
import { checkMap, sparseSegments, readMapFromData, readOldGnuSparse, sparseFromPax, type SparseInfo } from './sparse.js';
import { decodeName, encodeName } from '../util/byte-names.js';

export interface TarHeader {
  /** Typeflag character ('0', '5', '2', ...); '\0' and '7' are reported as '0'. */
  type: string;
  /** Raw name bytes (PAX `path` / GNU long name applied). */
  name: Buffer;
  linkname: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  devMajor: number;
  devMinor: number;
  xattrs: Record<string, Buffer> | undefined;
  /** Was a GNU sparse file (old 'S' type or PAX GNU.sparse.*); body() yields its holes as numbers, `size` is the real size. */
  sparse: boolean;
  /** Byte offset of this entry's header block in the tar (for messages). */
  headerOffset: number;
  /** Byte offset of the entry's first header block, PAX `x` and GNU `L`/`K` blocks included. */
  firstHeaderOffset: number;
  /** Byte offset of the entry's first data byte: after its last header block (old GNU sparse extension blocks too). */
  dataOffset: number;
  /** Data bytes stored after the last header block: the header's `size` (a PAX 1.0 sparse map included). */
  storedSize: number;
}

const MAX_META = 1 << 20;
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
/** Typeflags (as bytes) of blocks that extend the next header, and of old GNU sparse files: `next()` reads those. */
const EXTENDED = new Set([...'xgLKS'].map((c) => c.charCodeAt(0)));

export function checksumOk(block: Buffer): boolean {
  // The checksum field (bytes 148-155) counts as eight spaces; the signed form (old writers) counts
  // bytes over 127 as negative: the unsigned sum less 256 per such byte.
  let unsigned = 8 * 0x20;
  let high = 0;
  for (let i = 0; i < 148; i++) {
    const b = block[i]!;
    unsigned += b;
    high += b >>> 7;
  }
  for (let i = 156; i < 512; i++) {
    const b = block[i]!;
    unsigned += b;
    high += b >>> 7;
  }
  const signed = unsigned - 256 * high;
  let stored: number;
  try {
    stored = parseNumeric(block, 148, 8, 'checksum');
  } catch {
    return false; // garbage in the checksum field: not a tar header
  }
  return stored === unsigned || stored === signed;
}

export function cstr(block: Buffer, off: number, len: number): Buffer {
  const nul = block.indexOf(0, off);
  return block.subarray(off, nul < 0 || nul > off + len ? off + len : nul);
}

export function isZero(block: Buffer): boolean {
  for (let i = 0; i < 512; i++) if (block[i] !== 0) return false;
  return true;
}

function paxMtime(v: string): [number, number] {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v);
  if (m === null) throw invalid(`PAX mtime "${v}" is not a number`);
  let sec = Number(m[2]);
  let nsec = Number((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  return [sec, nsec];
}

/** bsdtar's form: URL-encoded name, base64 value; SCHILY.xattr wins when both are present. */
function libarchiveXattr(h: TarHeader, encodedName: string, value: Buffer): void {
  const name = percentDecode(encodedName);
  if (name === undefined) throw invalid(`PAX xattr name "${encodedName}" is not URL-encoded`);
  const xattrs = (h.xattrs ??= {});
  if (!(name in xattrs)) xattrs[name] = Buffer.from(value.toString('latin1'), 'base64');
}

/** RFC 3986 percent-decoding to bytes (any bytes, not only UTF-8), as a util/byte-names.ts name. */
function percentDecode(text: string): string | undefined {
  const bytes = encodeName(text);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x25) out.push(bytes[i]!);
    else {
      const hex = bytes.toString('latin1', i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      out.push(parseInt(hex, 16));
      i += 2;
    }
  }
  return decodeName(Buffer.from(out));
}

export function applyPax(h: TarHeader, pax: PaxRecords): void {
  for (const [key, value] of pax) {
    if (key === 'path') h.name = value;
    else if (key === 'linkpath') h.linkname = value;
    else if (key === 'size') h.size = paxInt(value, 'size');
    else if (key === 'uid') h.uid = paxInt(value, 'uid');
    else if (key === 'gid') h.gid = paxInt(value, 'gid');
    else if (key === 'mtime') [h.mtimeSec, h.mtimeNsec] = paxMtime(value.toString('latin1'));
    else if (key.startsWith('SCHILY.xattr.')) (h.xattrs ??= {})[key.slice(13)] = value;
    else if (key.startsWith('LIBARCHIVE.xattr.')) libarchiveXattr(h, key.slice(17), value);
  }
}

/**
 * The entry type of typeflag `flag` for the entry's final name: a regular file whose name ends in '/'
 * is a v7 directory. Judged on the final name (after PAX `path` / GNU long names), never on the
 * header's truncated 100-byte copy, which python's tarfile cuts wherever the limit falls.
 */
function entryType(flag: number, name: Buffer): string {
  const type = flag === 0 || flag === 0x37 ? '0' : String.fromCharCode(flag);
  return type === '0' && name.length > 0 && name[name.length - 1] === 0x2f ? '5' : type;
}

/** Decodes one 512-byte header block (ustar, GNU, v7); extended headers are applied by the caller. */
export function decodeHeader(block: Buffer, headerOffset: number): TarHeader {
  let name = cstr(block, 0, 100);
  const ustar = block.toString('latin1', 257, 263) === 'ustar\0';
  if (ustar && block[345] !== 0) name = Buffer.concat([cstr(block, 345, 155), Buffer.from('/'), name]);
  const type = entryType(block[156]!, name);
  return {
    type,
    name,
    linkname: cstr(block, 157, 100),
    mode: parseNumeric(block, 100, 8, 'mode'),
    uid: parseNumeric(block, 108, 8, 'uid'),
    gid: parseNumeric(block, 116, 8, 'gid'),
    size: parseNumeric(block, 124, 12, 'size'),
    mtimeSec: parseNumeric(block, 136, 12, 'mtime'),
    mtimeNsec: 0,
    devMajor: parseNumeric(block, 329, 8, 'devmajor'),
    devMinor: parseNumeric(block, 337, 8, 'devminor'),
    xattrs: undefined,
    sparse: type === 'S',
    firstHeaderOffset: headerOffset,
    dataOffset: headerOffset + 512,
    storedSize: 0,
    headerOffset,
  };
}

export class TarReader {
  private readonly r: ByteReader;
  private remaining = 0;
  private padding = 0;
  private done = false;
  private sparse: SparseInfo | undefined;

  /** `copyHeaders`: headers never view the input (see ByteReader's `copy`). */
  constructor(chunks: AsyncIterator<Buffer>, copyHeaders = false) {
    this.r = new ByteReader(chunks, copyHeaders);
  }

  /**
   * The next entry when its header block is buffered already and stands alone (no PAX or GNU long-name
   * block before it, not an old GNU sparse file): the common case, without promises. Else undefined,
   * nothing consumed, and `next()` is the way (it also reports the end and every malformed header).
   */
  tryNext(): TarHeader | undefined {
    if (this.done) return undefined;
    const skip = this.remaining + this.padding;
    const peeked = this.r.peek(skip, 512);
    if (peeked === undefined || isZero(peeked) || EXTENDED.has(peeked[156]!) || !checksumOk(peeked)) return undefined;
    this.r.skipBuffered(skip);
    this.remaining = 0;
    this.padding = 0;
    const headerOffset = this.r.offset;
    const h = decodeHeader(this.r.readBuffered(512)!, headerOffset);
    if (h.size < 0) throw invalid(`negative size at byte ${headerOffset}`);
    this.entered(h, undefined);
    return h;
  }

  /** The next entry, or null at the end of the archive (zero block or clean EOF at a header boundary). */
  async next(): Promise<TarHeader | null> {
    await this.skipBody();
    let pax: PaxRecords | undefined;
    let longName: Buffer | undefined;
    let longLink: Buffer | undefined;
    let firstHeaderOffset = -1;
    for (;;) {
      if (this.done) return null;
      const headerOffset = this.r.offset;
      if (firstHeaderOffset < 0) firstHeaderOffset = headerOffset;
      const block = await this.r.read(512);
      if (block.length === 0 && pax === undefined && longName === undefined && longLink === undefined) return this.end();
      if (block.length < 512) throw invalid(`tar truncated inside the header at byte ${headerOffset}`);
      if (isZero(block)) return this.end();
      if (!checksumOk(block)) throw invalid(`bad tar header checksum at byte ${headerOffset} (not a tar, or corrupt)`);
      const h = decodeHeader(block, headerOffset);
      if (h.type === 'x' || h.type === 'g' || h.type === 'L' || h.type === 'K') {
        const data = await this.meta(h);
        if (h.type === 'x') pax = parsePax(data);
        else if (h.type === 'L') longName = cstr(data, 0, data.length);
        else if (h.type === 'K') longLink = cstr(data, 0, data.length);
        // 'g' (global PAX) is read and ignored, as docker/containerd do.
        continue;
      }
      if (longName !== undefined) h.name = longName;
      if (longLink !== undefined) h.linkname = longLink;
      if (pax !== undefined) applyPax(h, pax);
      h.type = entryType(block[156]!, h.name);
      if (h.size < 0) throw invalid(`negative size at byte ${headerOffset}`);
      const sparse = h.type === 'S' ? await readOldGnuSparse(block, this.r) : pax && sparseFromPax(pax);
      h.firstHeaderOffset = firstHeaderOffset;
      h.dataOffset = this.r.offset;
      this.entered(h, sparse);
      if (sparse !== undefined) await this.setUpSparse(h, sparse);
      return h;
    }
  }

  /** `h` is the current entry now: its data (and padding) come next. */
  private entered(h: TarHeader, sparse: SparseInfo | undefined): void {
    h.storedSize = HEADER_ONLY.has(h.type) ? 0 : h.size;
    // Like Go's archive/tar: links, devices, dirs and fifos never carry data, whatever `size` says.
    this.remaining = h.storedSize;
    this.padding = (512 - (this.remaining % 512)) % 512;
    this.sparse = sparse;
  }

  /**
   * The current entry's data, as views of the input (consume before calling next()). A sparse file's
   * holes come as numbers (that many zero bytes), so nobody has to materialise them.
   */
  async *body(): AsyncGenerator<Buffer | number> {
    if (this.sparse !== undefined) yield* sparseSegments(this.sparse, (n) => this.data(n));
    else yield* this.data(this.remaining);
  }

  /**
   * The current entry's whole data as one view when it is already buffered (a small file, the common
   * case: no generators and awaits per file), else undefined and `body()` is the way.
   */
  bodyAtOnce(): Buffer | undefined {
    if (this.sparse !== undefined) return undefined;
    const data = this.r.takeBuffered(this.remaining);
    if (data !== undefined) this.remaining = 0;
    return data;
  }

  /** Tar bytes parsed so far (after next(): up to the current entry's data). */
  get offset(): number {
    return this.r.offset;
  }

  /** Data bytes the current entry stores in the tar (a sparse file's segments, without its map). */
  get stored(): number {
    return this.remaining;
  }

  private async *data(n: number): AsyncGenerator<Buffer> {
    let left = n;
    for await (const chunk of this.r.take(n)) {
      this.remaining -= chunk.length;
      left -= chunk.length;
      yield chunk;
    }
    if (left > 0) throw invalid('tar truncated inside file data');
  }

  private async setUpSparse(h: TarHeader, sparse: SparseInfo): Promise<void> {
    if (h.type !== '0' && h.type !== 'S') throw invalid(`GNU sparse header on a non-file entry at byte ${h.headerOffset}`);
    if (sparse.mapInData) this.remaining -= await readMapFromData(this.r, sparse, this.remaining);
    checkMap(sparse, this.remaining);
    if (sparse.name !== undefined) h.name = sparse.name;
    h.type = '0';
    h.size = sparse.realSize;
    h.sparse = true;
  }

  /** Consumes whatever follows the archive; `onChunk` sees the tar offset (to bound and abort it). */
  async drain(onChunk?: (offset: number) => void): Promise<void> {
    await this.r.drain(onChunk);
  }

  private end(): null {
    this.done = true;
    return null;
  }

  private async skipBody(): Promise<void> {
    const want = this.remaining + this.padding;
    const got = await this.r.skip(want);
    // Missing padding after the last entry is tolerated (EOF at a boundary); missing data is not.
    if (got < this.remaining) throw invalid('tar truncated inside file data');
    if (got < want) this.done = true;
    this.remaining = 0;
    this.padding = 0;
  }

  private async meta(h: TarHeader): Promise<Buffer> {
    if (h.size > MAX_META) throw invalid(`tar extended header of ${h.size} bytes at byte ${h.headerOffset} is too large`);
    const data = await this.r.read(h.size);
    if (data.length < h.size) throw invalid('tar truncated inside an extended header');
    const pad = (512 - (h.size % 512)) % 512;
    if ((await this.r.skip(pad)) < pad) this.done = true;
    return Buffer.from(data);
  }

}
