/**
 * A layer's entries as the merge reads them: by position, without an object per entry. `.idx` files are
 * read as records straight from their buffer (RecordEntries): a million-entry layer costs its file
 * bytes plus 4 bytes per entry while merging, instead of a decoded IndexEntry each (docs/DECISIONS.md).
 * Layers built in memory (`MemoryLayer`) are wrapped as they are (ObjectEntries).
 */
import { EntryType, type IndexEntry } from '../layer/entry.js';
import type { ScannedIndex } from '../layer/index-format.js';
import { decodeText, decodeXattrs, ENTRY_FIXED_SIZE, pathStart, r16, r32, R_LINK, R_LOWER_LINK, R_SHA256, u64, type IndexVersion } from '../layer/index-records.js';
import { encodeName } from '../util/byte-names.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from '../layer/entry.js';
import type { InodeTable } from './tree.js';

export interface LayerEntries {
  readonly count: number;
  type(i: number): number;
  /** Root-relative path, decoded losslessly (util/byte-names.ts). */
  path(i: number): string;
  /** Symlink target or hardlink target path; undefined when the entry has none. */
  linkTarget(i: number): string | undefined;
  /** A hardlink to the lower layers' file (true), to an entry of its layer (false), or not recorded (undefined: version 1). */
  lowerLink(i: number): boolean | undefined;
  /** Writes entry i's metadata into inode `ino` of `t` (mode, owner, times, size, content, link, xattrs). */
  fill(i: number, t: InodeTable, ino: number): void;
}

const TYPE_BITS: Record<number, number> = {
  [EntryType.File]: S_IFREG,
  [EntryType.Dir]: S_IFDIR,
  [EntryType.Symlink]: S_IFLNK,
  [EntryType.CharDevice]: S_IFCHR,
  [EntryType.BlockDevice]: S_IFBLK,
  [EntryType.Fifo]: S_IFIFO,
};

/** The fields every entry form fills alike; returns the S_IFMT bits. Linux reports every symlink as 0777. */
function fillCommon(t: InodeTable, ino: number, type: number, mode: number, size: number, offset: number): number {
  const typeBits = TYPE_BITS[type] ?? S_IFREG;
  t.mode[ino] = typeBits === S_IFLNK ? S_IFLNK | 0o777 : typeBits | (mode & 0o7777);
  if (typeBits === S_IFREG) {
    t.size[ino] = size;
    t.offset[ino] = offset;
  }
  return typeBits;
}

function setLink(t: InodeTable, ino: number, target: string): void {
  t.linkTarget.set(ino, target);
  t.size[ino] = encodeName(target).length;
}

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

  fill(i: number, t: InodeTable, ino: number): void {
    const m = this.entries[i]!;
    const typeBits = fillCommon(t, ino, m.type, m.mode, m.size, m.offset);
    t.uid[ino] = m.uid;
    t.gid[ino] = m.gid;
    t.mtimeSec[ino] = m.mtimeSec;
    t.mtimeNsec[ino] = m.mtimeNsec;
    t.devMajor[ino] = m.devMajor;
    t.devMinor[ino] = m.devMinor;
    if (typeBits === S_IFREG && m.sha256 !== undefined && t.sha256.write(m.sha256, ino * 32, 32, 'hex') === 32) t.hasSha256[ino] = 1;
    else if (typeBits === S_IFLNK) setLink(t, ino, m.linkTarget ?? '');
    if (m.xattrs !== undefined && Object.keys(m.xattrs).length > 0) t.xattrs.set(ino, m.xattrs);
  }
}

/** The records of a checked `.idx` buffer (layer/index-format.ts `scanIndex`), read in place. */
export class RecordEntries implements LayerEntries {
  private readonly buf: Buffer;
  private readonly starts: Uint32Array;
  private readonly version: IndexVersion;
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

  fill(i: number, t: InodeTable, ino: number): void {
    const { buf } = this;
    const at = this.starts[i]!;
    const typeBits = fillCommon(t, ino, buf[at]!, r32(buf, at + 4), u64(buf, at + 40), u64(buf, at + 48));
    t.uid[ino] = r32(buf, at + 8);
    t.gid[ino] = r32(buf, at + 12);
    t.mtimeSec[ino] = (r32(buf, at + 20) | 0) * 0x100000000 + r32(buf, at + 16);
    t.mtimeNsec[ino] = r32(buf, at + 24);
    t.devMajor[ino] = r32(buf, at + 28);
    t.devMinor[ino] = r32(buf, at + 32);
    const shaAt = at + ENTRY_FIXED_SIZE[this.version];
    if (typeBits === S_IFREG && buf[at + 1]! & R_SHA256) {
      const sha = t.sha256; // raw bytes, no hex round trip; a loop: Buffer.copy costs more for 32 bytes
      for (let k = 0, to = ino * 32; k < 32; k++) sha[to + k] = buf[shaAt + k]!;
      t.hasSha256[ino] = 1;
    } else if (typeBits === S_IFLNK) {
      setLink(t, ino, this.linkTarget(i) ?? '');
    }
    const xattrCount = r16(buf, at + 2);
    if (xattrCount > 0) {
      const p = pathStart(buf, at, this.version) + r32(buf, at + 36) + r32(buf, at + 56);
      const holder: { xattrs?: Record<string, Buffer> } = {};
      decodeXattrs(buf, p, xattrCount, holder);
      t.xattrs.set(ino, holder.xattrs!);
    }
  }
}

/** Wraps in-memory entries; record-backed ones pass through. */
export function layerEntries(entries: readonly IndexEntry[] | LayerEntries): LayerEntries {
  return Array.isArray(entries) ? new ObjectEntries(entries as readonly IndexEntry[]) : (entries as LayerEntries);
}
