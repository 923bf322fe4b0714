/**
 * Random access to the members of an image archive (`docker save`, OCI archive) on disk.
 *
 * tar-stream parses layer contents (see src/layer/flatten.ts), but it only reads sequentially and does
 * not expose member offsets. An archive holds several layers we want to stream in parallel — and, in a
 * multi-arch archive, many we want to skip without reading — so this walks the headers once, records
 * where each member's bytes lie, and opens members as byte ranges of the file.
 * It understands what image archives contain: ustar names with prefix, GNU long names ('L'),
 * PAX `path` records ('x'), global headers ('g', ignored) and hard/symbolic links (used by some writers
 * to deduplicate blobs).
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';

const BLOCK = 512;

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

  /** Streams a member's bytes. */
  stream(name: string): Readable {
    const member = this.require(name);
    if (member.size === 0) return createReadStream(this.path, { start: 1, end: 0 });
    return createReadStream(this.path, { start: member.offset, end: member.offset + member.size - 1, highWaterMark: 1 << 20 });
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
  const header = Buffer.alloc(BLOCK);
  let offset = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let paxPath: string | undefined;
  let paxLink: string | undefined;
  while (offset + BLOCK <= fileSize) {
    const { bytesRead } = await handle.read(header, 0, BLOCK, offset);
    if (bytesRead < BLOCK) break;
    if (header.every((b) => b === 0)) break;
    if (!validChecksum(header)) throw notTar(path, offset);
    const size = parseNumber(header.subarray(124, 136));
    const type = String.fromCharCode(header[156] ?? 0);
    const dataOffset = offset + BLOCK;
    const next = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
    if (next > fileSize + BLOCK) throw truncated(path, cString(header.subarray(0, 100)));
    if (type === 'L' || type === 'K' || type === 'x') {
      const data = Buffer.alloc(size);
      await handle.read(data, 0, size, dataOffset);
      if (type === 'L') longName = cString(data);
      else if (type === 'K') longLink = cString(data);
      else ({ path: paxPath, linkpath: paxLink } = parsePax(data));
    } else if (type !== 'g') {
      const name = paxPath ?? longName ?? ustarName(header);
      const linkName = paxLink ?? longLink ?? cString(header.subarray(157, 257));
      members.set(normalize(name), { name: normalize(name), offset: dataOffset, size, type, ...(linkName ? { linkName } : {}) });
      longName = longLink = paxPath = paxLink = undefined;
    }
    offset = next;
  }
  if (members.size === 0) throw notTar(path, 0);
  return members;
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const magic = header.subarray(257, 263).toString('latin1');
  const prefix = magic.startsWith('ustar') ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function parsePax(data: Buffer): { path?: string; linkpath?: string } {
  const out: { path?: string; linkpath?: string } = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const length = Number(data.subarray(i, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0) break;
    const record = data.subarray(space + 1, i + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    if (key === 'path' || key === 'linkpath') out[key] = record.slice(eq + 1);
    i += length;
  }
  return out;
}

function parseNumber(field: Buffer): number {
  if ((field[0] ?? 0) & 0x80) {
    // GNU base-256 for sizes over 8 GiB.
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return n;
  }
  const text = cString(field).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function validChecksum(header: Buffer): boolean {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += header[i] ?? 0;
  return sum === parseNumber(header.subarray(148, 156));
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul < 0 ? buf.length : nul).toString('utf8');
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
