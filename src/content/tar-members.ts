/**
 * Random access to the members of an image archive (`docker save`, OCI archive) on disk.
 *
 * Layer tars are read sequentially by src/layer/tar-reader.ts; that reader (like tar-stream) does not
 * seek. An archive holds several layers we want to stream in parallel — and, in a
 * multi-arch archive, many we want to skip without reading — so this walks the headers once, records
 * where each member's bytes lie, and opens members as byte ranges of the file.
 * Header decoding is the layer tar reader's (src/layer/tar-reader.ts); this only adds seeking.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { withRegion } from '../util/file-region.js';
import { parsePax, type PaxRecords } from '../layer/tar-fields.js';
import { applyPax, checksumOk, cstr, decodeHeader, isZero } from '../layer/tar-reader.js';

const BLOCK = 512;
/** Extended headers (PAX, GNU long names) larger than this are not from an image archive. */
const MAX_META = 1 << 20;

export interface TarMember {
  name: string;
  /** Byte offset of the member's data in the archive. */
  offset: number;
  size: number;
  /** tar typeflag: '0' file, '5' directory, '1' hardlink, '2' symlink, ... */
  type: string;
  linkName?: string;
}

export class TarMembers {
  readonly path: string;
  private readonly members: Map<string, TarMember>;

  private constructor(path: string, members: Map<string, TarMember>) {
    this.path = path;
    this.members = members;
  }

  static async open(path: string): Promise<TarMembers> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      throw new VmimgError(ErrorCode.NOT_FOUND, `${path}: cannot open archive (${(err as Error).message})`, { cause: err });
    }
    try {
      return new TarMembers(path, await scan(handle, path));
    } finally {
      await handle.close();
    }
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  has(name: string): boolean {
    return this.find(name) !== undefined;
  }

  /** The member, following hard and symbolic links between members. */
  find(name: string): TarMember | undefined {
    let member = this.members.get(normalize(name));
    for (let hops = 0; member && (member.type === '1' || member.type === '2') && hops < 8; hops++) {
      const target = member.type === '2' ? resolveSymlink(member.name, member.linkName ?? '') : member.linkName ?? '';
      member = this.members.get(normalize(target));
    }
    return member && (member.type === '0' || member.type === '\0' || member.type === '7') ? member : undefined;
  }

  /** Reads a whole member, refusing members larger than maxBytes. */
  async read(name: string, maxBytes: number): Promise<Buffer> {
    const member = this.require(name);
    if (member.size > maxBytes) {
      throw new VmimgError(ErrorCode.TOO_LARGE, `${this.path}: ${name} is ${member.size} bytes, over the ${maxBytes}-byte limit`);
    }
    const handle = await open(this.path, 'r');
    try {
      const buf = Buffer.alloc(member.size);
      const { bytesRead } = await handle.read(buf, 0, member.size, member.offset);
      if (bytesRead !== member.size) throw truncated(this.path, name);
      return buf;
    } finally {
      await handle.close();
    }
  }

  /** Streams a member's bytes: `length` of them from `offset` (default: all). */
  stream(name: string, offset = 0, length?: number): Readable {
    const member = this.require(name);
    const n = Math.max(0, Math.min(length ?? member.size, member.size - offset));
    if (n === 0) return Readable.from([]);
    const start = member.offset + offset;
    return withRegion(createReadStream(this.path, { start, end: start + n - 1, highWaterMark: 1 << 20 }), { path: this.path, offset: start, length: n });
  }

  require(name: string): TarMember {
    const member = this.find(name);
    if (!member) throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${this.path}: archive has no member "${name}"`);
    return member;
  }
}

async function scan(handle: FileHandle, path: string): Promise<Map<string, TarMember>> {
  const { size: fileSize } = await handle.stat();
  const members = new Map<string, TarMember>();
  const block = Buffer.alloc(BLOCK);
  let offset = 0;
  let pax: PaxRecords | undefined;
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  try {
    while (offset + BLOCK <= fileSize) {
      await handle.read(block, 0, BLOCK, offset);
      if (isZero(block)) break;
      if (!checksumOk(block)) throw notTar(path, offset);
      const h = decodeHeader(block, offset);
      const dataOffset = offset + BLOCK;
      offset = dataOffset + Math.ceil(h.size / BLOCK) * BLOCK;
      if (offset > fileSize + BLOCK) throw truncated(path, h.name.toString('utf8'));
      if (h.type === 'x' || h.type === 'L' || h.type === 'K') {
        if (h.size > MAX_META) throw notTar(path, dataOffset);
        const data = Buffer.alloc(h.size);
        await handle.read(data, 0, h.size, dataOffset);
        if (h.type === 'x') pax = parsePax(data);
        else if (h.type === 'L') longName = cstr(data, 0, data.length);
        else longLink = cstr(data, 0, data.length);
        continue;
      }
      if (h.type === 'g') continue;
      if (longName) h.name = longName;
      if (longLink) h.linkname = longLink;
      if (pax) applyPax(h, pax);
      const name = normalize(h.name.toString('utf8'));
      const linkName = h.linkname.toString('utf8');
      members.set(name, { name, offset: dataOffset, size: h.size, type: h.type, ...(linkName ? { linkName } : {}) });
      pax = longName = longLink = undefined;
    }
  } catch (err) {
    if (err instanceof VmimgError && err.code === ErrorCode.INVALID_ARCHIVE) throw err;
    throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${path}: not a readable tar archive (${(err as Error).message})`, { cause: err });
  }
  if (members.size === 0) throw notTar(path, 0);
  return members;
}

export function normalize(name: string): string {
  return name
    .split('/')
    .filter((part) => part !== '' && part !== '.')
    .join('/');
}

function resolveSymlink(from: string, target: string): string {
  if (target.startsWith('/')) return target;
  const parts = from.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '..') parts.pop();
    else if (part !== '.' && part !== '') parts.push(part);
  }
  return parts.join('/');
}

function notTar(path: string, offset: number): VmimgError {
  return new VmimgError(ErrorCode.INVALID_ARCHIVE, `${path}: not a tar archive (bad header at byte ${offset})`);
}

function truncated(path: string, name: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_ARCHIVE, `${path}: archive is truncated (member "${name}")`);
}
