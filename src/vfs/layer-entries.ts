/**
 * A layer's entries as the merge and the inode table read them: by position, without an object per
 * entry. `.idx` files are read as records straight from their buffer (RecordEntries): a million-entry
 * layer costs its file bytes plus 4 bytes per entry, and the inode table keeps only (layer, entry) per
 * inode and reads mode, owner, size, link, sha256 and xattrs from here when asked (docs/DECISIONS.md).
 * Layers built in memory (`MemoryLayer`) are wrapped as they are (ObjectEntries).
 */
import { EntryType, type IndexEntry } from '../layer/entry.js';
import type { ScannedIndex } from '../layer/index-format.js';
import { decodeText, decodeXattrs, EMPTY_SHA256, ENTRY_FIXED_SIZE, pathStart, r16, r32, R_LINK, R_LOWER_LINK, R_SHA256, u64, type IndexVersion } from '../layer/index-records.js';
import { encodeName } from '../util/byte-names.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from '../layer/entry.js';

/** Entry i of a layer; the metadata accessors answer as ContainerFS reports the inode the entry makes. */
export interface LayerEntries {
  readonly count: number;
  type(i: number): number;
  /** Root-relative path, decoded losslessly (util/byte-names.ts). */
  path(i: number): string;
  /** Symlink target or hardlink target path; undefined when the entry has none. */
  linkTarget(i: number): string | undefined;
  /** A hardlink to the lower layers' file (true), to an entry of its layer (false), or not recorded (undefined: version 1). */
  lowerLink(i: number): boolean | undefined;
  /** Full st_mode as reported: type bits from the entry type, the stored low 12 bits; symlinks 0120777. */
  mode(i: number): number;
  uid(i: number): number;
  gid(i: number): number;
  mtimeSec(i: number): number;
  mtimeNsec(i: number): number;
  devMajor(i: number): number;
  devMinor(i: number): number;
  /** Bytes: a regular file's content, a symlink's target bytes, 0 for the rest. */
  size(i: number): number;
  /** A regular file's content offset in its layer's content (0 for the rest). */
  offset(i: number): number;
  /** Lowercase hex sha256 of a regular file's content, when recorded. */
  sha256Hex(i: number): string | undefined;
  /** Extended attributes, decoded on each call; undefined when there are none. */
  xattrs(i: number): Record<string, Buffer> | undefined;
}

/** S_IFMT bits by entry type (a hardlink's record describes a regular file; markers never become inodes). */
export const TYPE_BITS = new Uint32Array(256).fill(S_IFREG);
TYPE_BITS[EntryType.Dir] = S_IFDIR;
TYPE_BITS[EntryType.Symlink] = S_IFLNK;
TYPE_BITS[EntryType.CharDevice] = S_IFCHR;
TYPE_BITS[EntryType.BlockDevice] = S_IFBLK;
TYPE_BITS[EntryType.Fifo] = S_IFIFO;

function typeBitsOf(type: number): number {
  return TYPE_BITS[type & 0xff]!;
}

/** The reported st_mode of an entry of `type` with stored `mode`. Linux reports every symlink as 0777. */
function reportedMode(type: number, mode: number): number {
  const typeBits = typeBitsOf(type);
  return typeBits === S_IFLNK ? S_IFLNK | 0o777 : typeBits | (mode & 0o7777);
}

/** The reported st_mode of the `.idx` record at `at` (see LayerEntries.mode). */
export function recordMode(buf: Uint8Array, at: number): number {
  return reportedMode(buf[at]!, buf[at + 4]! | (buf[at + 5]! << 8)); // only the low 12 bits count
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** Entries decoded in memory (tests, tools, `ContainerFS.fromLayers`). */
export class ObjectEntries implements LayerEntries {
  constructor(private readonly entries: readonly IndexEntry[]) {}

  get count(): number {
    return this.entries.length;
  }

  type(i: number): number {
    return this.entries[i]!.type;
  }

  path(i: number): string {
    return this.entries[i]!.path;
  }

  linkTarget(i: number): string | undefined {
    return this.entries[i]!.linkTarget;
  }

  lowerLink(i: number): boolean | undefined {
    return this.entries[i]!.lowerLink;
  }

  mode(i: number): number {
    return reportedMode(this.entries[i]!.type, this.entries[i]!.mode);
  }

  uid(i: number): number {
    return this.entries[i]!.uid;
  }

  gid(i: number): number {
    return this.entries[i]!.gid;
  }

  mtimeSec(i: number): number {
    return this.entries[i]!.mtimeSec;
  }

  mtimeNsec(i: number): number {
    return this.entries[i]!.mtimeNsec;
  }

  devMajor(i: number): number {
    return this.entries[i]!.devMajor;
  }

  devMinor(i: number): number {
    return this.entries[i]!.devMinor;
  }

  size(i: number): number {
    const e = this.entries[i]!;
    const bits = typeBitsOf(e.type);
    if (bits === S_IFLNK) return encodeName(e.linkTarget ?? '').length;
    return bits === S_IFREG ? e.size : 0;
  }

  offset(i: number): number {
    const e = this.entries[i]!;
    return typeBitsOf(e.type) === S_IFREG ? e.offset : 0;
  }

  sha256Hex(i: number): string | undefined {
    const e = this.entries[i]!;
    if (typeBitsOf(e.type) !== S_IFREG) return undefined;
    if (e.sha256 === undefined) return e.type === EntryType.File && e.size === 0 ? EMPTY_SHA256 : undefined;
    return HEX64.test(e.sha256) ? e.sha256.toLowerCase() : undefined;
  }

  xattrs(i: number): Record<string, Buffer> | undefined {
    const x = this.entries[i]!.xattrs;
    return x !== undefined && Object.keys(x).length > 0 ? x : undefined;
  }
}

/** The records of a checked `.idx` buffer (layer/index-format.ts `scanIndex`), read in place. */
export class RecordEntries implements LayerEntries {
  readonly buf: Buffer;
  /** Byte offset of record i in `buf`. */
  readonly starts: Uint32Array;
  readonly version: IndexVersion;
  readonly count: number;

  constructor(index: ScannedIndex) {
    this.buf = index.buf;
    this.starts = index.starts;
    this.version = index.version;
    this.count = index.header.entryCount;
  }

  type(i: number): number {
    return this.buf[this.starts[i]!]!;
  }

  path(i: number): string {
    const at = this.starts[i]!;
    const p = pathStart(this.buf, at, this.version);
    return decodeText(this.buf, p, p + r32(this.buf, at + 36));
  }

  linkTarget(i: number): string | undefined {
    const at = this.starts[i]!;
    if (!(this.buf[at + 1]! & R_LINK)) return undefined;
    const p = pathStart(this.buf, at, this.version) + r32(this.buf, at + 36);
    return decodeText(this.buf, p, p + r32(this.buf, at + 56));
  }

  lowerLink(i: number): boolean | undefined {
    return this.version === 1 ? undefined : (this.buf[this.starts[i]! + 1]! & R_LOWER_LINK) !== 0;
  }

  mode(i: number): number {
    return recordMode(this.buf, this.starts[i]!);
  }

  uid(i: number): number {
    return r32(this.buf, this.starts[i]! + 8);
  }

  gid(i: number): number {
    return r32(this.buf, this.starts[i]! + 12);
  }

  mtimeSec(i: number): number {
    const at = this.starts[i]!;
    return (r32(this.buf, at + 20) | 0) * 0x100000000 + r32(this.buf, at + 16);
  }

  mtimeNsec(i: number): number {
    return r32(this.buf, this.starts[i]! + 24);
  }

  devMajor(i: number): number {
    return r32(this.buf, this.starts[i]! + 28);
  }

  devMinor(i: number): number {
    return r32(this.buf, this.starts[i]! + 32);
  }

  size(i: number): number {
    const at = this.starts[i]!;
    const bits = typeBitsOf(this.buf[at]!);
    if (bits === S_IFLNK) return this.buf[at + 1]! & R_LINK ? r32(this.buf, at + 56) : 0;
    return bits === S_IFREG ? u64(this.buf, at + 40) : 0;
  }

  offset(i: number): number {
    const at = this.starts[i]!;
    return typeBitsOf(this.buf[at]!) === S_IFREG ? u64(this.buf, at + 48) : 0;
  }

  sha256Hex(i: number): string | undefined {
    const at = this.starts[i]!;
    if (typeBitsOf(this.buf[at]!) !== S_IFREG) return undefined;
    if (!(this.buf[at + 1]! & R_SHA256)) return this.buf[at] === EntryType.File && u64(this.buf, at + 40) === 0 ? EMPTY_SHA256 : undefined;
    const shaAt = at + ENTRY_FIXED_SIZE[this.version];
    return this.buf.toString('hex', shaAt, shaAt + 32);
  }

  xattrs(i: number): Record<string, Buffer> | undefined {
    const { buf } = this;
    const at = this.starts[i]!;
    const count = r16(buf, at + 2);
    if (count === 0) return undefined;
    const holder: { xattrs?: Record<string, Buffer> } = {};
    decodeXattrs(buf, pathStart(buf, at, this.version) + r32(buf, at + 36) + r32(buf, at + 56), count, holder);
    return holder.xattrs;
  }
}

/** Wraps in-memory entries; record-backed ones pass through. */
export function layerEntries(entries: readonly IndexEntry[] | LayerEntries): LayerEntries {
  return Array.isArray(entries) ? new ObjectEntries(entries as readonly IndexEntry[]) : (entries as LayerEntries);
}
