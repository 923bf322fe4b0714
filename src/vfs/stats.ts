/** Attribute records: a plain `Attr` for inode servers, and Node-shaped Stats / Dirent objects. */
import type { DirEntry } from './vfs-types.js';
import { type InodeTable, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from './tree.js';

export const S_IFSOCK = 0o140000;
export const BLOCK_SIZE = 4096;
/** What directories report as their size (like ext4's one-block directories). */
export const DIR_SIZE = 4096;

/** d_type values, as FUSE / 9p / getdents want them. */
export const DT = { UNKNOWN: 0, FIFO: 1, CHR: 2, DIR: 4, BLK: 6, REG: 8, LNK: 10, SOCK: 12 } as const;

export interface Attr {
  ino: number;
  /** Full st_mode: type bits | setuid/setgid/sticky | permissions. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  nlink: number;
  /** Linux `makedev(major, minor)` for devices, 0 otherwise. */
  rdev: number;
  /** 512-byte blocks. */
  blocks: number;
  blksize: number;
}

export function makedev(major: number, minor: number): number {
  // glibc's encoding, with arithmetic instead of 32-bit shifts so large majors survive
  const low = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12);
  return (low >>> 0) + Math.floor(major / 0x1000) * 2 ** 44 + Math.floor(minor / 0x100000) * 2 ** 32;
}

export function attrOf(t: InodeTable, ino: number): Attr {
  const mode = t.mode[ino]!;
  const type = mode & S_IFMT;
  const size = type === S_IFDIR ? DIR_SIZE : t.size(ino);
  return {
    ino,
    mode,
    uid: t.uid(ino),
    gid: t.gid(ino),
    size,
    mtimeSec: t.mtimeSec(ino),
    mtimeNsec: t.mtimeNsec(ino),
    nlink: t.nlink[ino]!,
    rdev: type === S_IFCHR || type === S_IFBLK ? makedev(t.devMajor(ino), t.devMinor(ino)) : 0,
    blocks: type === S_IFREG || type === S_IFDIR ? Math.ceil(size / 512) : 0,
    blksize: BLOCK_SIZE,
  };
}

/** Directory `ino`'s entries from `cookie` (an index into them), at most `limit`. */
export function direntsOf(t: InodeTable, ino: number, cookie: number, limit: number): DirEntry[] {
  const start = t.dirStart[ino]!;
  const first = Math.max(0, Math.floor(cookie));
  const end = Math.min(t.dirCount[ino]!, first + Math.max(0, limit));
  const out: DirEntry[] = [];
  for (let i = first; i < end; i++) {
    const child = t.childIno(ino, start + i);
    out.push({ name: t.name(start + i), ino: child, type: dtype(t.mode[child]!), nextCookie: i + 1 });
  }
  return out;
}

/** Totals for a statfs reply. */
export interface Statfs {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namelen: number;
}

/** A full, read-only filesystem: the regular files' bytes in 4 KiB blocks, no free blocks or inodes. */
export function statfsOf(t: InodeTable): Statfs {
  let bytes = 0;
  for (let ino = 1; ino <= t.count; ino++) if ((t.mode[ino]! & S_IFMT) === S_IFREG) bytes += t.size(ino);
  return { bsize: 4096, blocks: Math.ceil(bytes / 4096), bfree: 0, bavail: 0, files: t.count, ffree: 0, namelen: 255 };
}

export function dtype(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG: return DT.REG;
    case S_IFDIR: return DT.DIR;
    case S_IFLNK: return DT.LNK;
    case S_IFCHR: return DT.CHR;
    case S_IFBLK: return DT.BLK;
    case S_IFIFO: return DT.FIFO;
    case S_IFSOCK: return DT.SOCK;
    default: return DT.UNKNOWN;
  }
}

/** Shaped like `fs.Stats`; atime, ctime and birthtime all equal mtime (images record only mtime). */
export class VfsStats {
  isFile(): boolean { return this.typeBits() === S_IFREG; }
  isDirectory(): boolean { return this.typeBits() === S_IFDIR; }
  isSymbolicLink(): boolean { return this.typeBits() === S_IFLNK; }
  isCharacterDevice(): boolean { return this.typeBits() === S_IFCHR; }
  isBlockDevice(): boolean { return this.typeBits() === S_IFBLK; }
  isFIFO(): boolean { return this.typeBits() === S_IFIFO; }
  isSocket(): boolean { return this.typeBits() === S_IFSOCK; }

  readonly dev = 0;
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  readonly size: number;
  readonly blksize: number;
  readonly blocks: number;
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  readonly mtimeMs: number;
  readonly atimeMs: number;
  readonly ctimeMs: number;
  readonly birthtimeMs: number;

  constructor(a: Attr) {
    this.ino = a.ino;
    this.mode = a.mode;
    this.nlink = a.nlink;
    this.uid = a.uid;
    this.gid = a.gid;
    this.rdev = a.rdev;
    this.size = a.size;
    this.blksize = a.blksize;
    this.blocks = a.blocks;
    this.mtimeSec = a.mtimeSec;
    this.mtimeNsec = a.mtimeNsec;
    this.mtimeMs = a.mtimeSec * 1000 + a.mtimeNsec / 1e6;
    this.atimeMs = this.ctimeMs = this.birthtimeMs = this.mtimeMs;
  }

  private typeBits(): number { return this.mode & S_IFMT; }
  get mtime(): Date { return new Date(this.mtimeMs); }
  get atime(): Date { return new Date(this.atimeMs); }
  get ctime(): Date { return new Date(this.ctimeMs); }
  get birthtime(): Date { return new Date(this.birthtimeMs); }
}

/** Shaped like `fs.Dirent`. */
export class VfsDirent {
  constructor(
    readonly name: string,
    /** The directory holding the entry (Node 20.12+ `parentPath`; `path` is its older alias). */
    readonly parentPath: string,
    /** d_type (see DT). */
    readonly type: number,
  ) {}

  get path(): string { return this.parentPath; }
  isFile(): boolean { return this.type === DT.REG; }
  isDirectory(): boolean { return this.type === DT.DIR; }
  isSymbolicLink(): boolean { return this.type === DT.LNK; }
  isCharacterDevice(): boolean { return this.type === DT.CHR; }
  isBlockDevice(): boolean { return this.type === DT.BLK; }
  isFIFO(): boolean { return this.type === DT.FIFO; }
  isSocket(): boolean { return this.type === DT.SOCK; }
}
