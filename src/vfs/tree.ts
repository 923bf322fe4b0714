/**
 * The merged tree packed into typed arrays indexed by inode number (root = 1, 0 unused). Per inode
 * only its st_mode, link count and where its metadata lives (layer + entry number) are kept: owner,
 * times, size, content offset, link target, sha256 and xattrs are read from the layer's entries when
 * asked (layer-entries.ts; for `.idx` layers, from the retained record buffer). Directory entries of all
 * directories live in one array, each directory's slice sorted bytewise (UTF-8 order); their names
 * are a DirentNames (strings from a merge, or byte ranges of a layer's records).
 */
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../layer/entry.js';
import type { LayerEntries } from './layer-entries.js';
import { compareNameBytes } from '../util/byte-names.js';

export { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG };

export const ROOT_INO = 1;

/** Implicit directories (only implied by their children): 0755 root:root, mtime 0. */
export const IMPLICIT_DIR_MODE = S_IFDIR | 0o755;

/** The names of the dirent arrays, by dirent index. */
export interface DirentNames {
  readonly length: number;
  name(d: number): string;
}

/** Names held as strings (what the merge produces). */
export class StringNames implements DirentNames {
  constructor(private readonly names: string[]) {}

  get length(): number {
    return this.names.length;
  }

  name(d: number): string {
    return this.names[d]!;
  }
}

export class InodeTable {
  readonly count: number; // highest inode number
  /** Full st_mode as reported (symlinks 0120777; implicit directories IMPLICIT_DIR_MODE). */
  readonly mode: Uint32Array;
  readonly nlink: Uint32Array;
  /** Layer position holding the inode's metadata and content (-1: an implicit directory, which has neither). */
  readonly layer: Int32Array;
  /** The inode's entry number in `sources[layer]`. */
  readonly entry: Uint32Array;
  /** Directories: parent inode (root's is root) and their slice of the dirent arrays. */
  readonly parent: Uint32Array;
  readonly dirStart: Uint32Array;
  readonly dirCount: Uint32Array;
  /** Directories: index of their own dirent (for realpath); root: 0. */
  readonly selfDirent: Uint32Array;
  /**
   * Dirent i's inode, or 0 when it is `i + direntBase[its directory]`: a directory of files whose
   * inodes are numbered in dirent order takes one number instead of one per dirent. Read through childIno.
   */
  readonly direntIno: Uint32Array;
  readonly direntBase: Int32Array;
  /** Lazily built name → inode maps, one per directory looked up. */
  private readonly dirMaps = new Map<number, Map<string, number>>();

  /** `sources`: each layer position's entries (a layer listed twice appears twice). */
  constructor(inodes: number, readonly names: DirentNames, readonly sources: readonly LayerEntries[]) {
    const n = inodes + 1;
    this.count = inodes;
    this.mode = new Uint32Array(n);
    this.nlink = new Uint32Array(n);
    this.layer = new Int32Array(n);
    this.entry = new Uint32Array(n);
    this.parent = new Uint32Array(n);
    this.dirStart = new Uint32Array(n);
    this.dirCount = new Uint32Array(n);
    this.selfDirent = new Uint32Array(n);
    this.direntIno = new Uint32Array(names.length);
    this.direntBase = new Int32Array(n);
  }

  /** The inode of dirent i of directory `ino`. */
  childIno(ino: number, i: number): number {
    return this.direntIno[i]! || i + this.direntBase[ino]!;
  }

  /** The entries holding inode `ino`'s metadata, or undefined for an implicit directory. */
  private src(ino: number): LayerEntries | undefined {
    const l = this.layer[ino]!;
    return l < 0 ? undefined : this.sources[l];
  }

  uid(ino: number): number {
    return this.src(ino)?.uid(this.entry[ino]!) ?? 0;
  }

  gid(ino: number): number {
    return this.src(ino)?.gid(this.entry[ino]!) ?? 0;
  }

  mtimeSec(ino: number): number {
    return this.src(ino)?.mtimeSec(this.entry[ino]!) ?? 0;
  }

  mtimeNsec(ino: number): number {
    return this.src(ino)?.mtimeNsec(this.entry[ino]!) ?? 0;
  }

  devMajor(ino: number): number {
    return this.src(ino)?.devMajor(this.entry[ino]!) ?? 0;
  }

  devMinor(ino: number): number {
    return this.src(ino)?.devMinor(this.entry[ino]!) ?? 0;
  }

  /** Content bytes of a regular file, target bytes of a symlink, 0 otherwise. */
  size(ino: number): number {
    return this.src(ino)?.size(this.entry[ino]!) ?? 0;
  }

  /** A regular file's content offset in its layer's content. */
  offset(ino: number): number {
    return this.src(ino)?.offset(this.entry[ino]!) ?? 0;
  }

  /** A symlink's target; undefined for anything else. */
  linkTarget(ino: number): string | undefined {
    if ((this.mode[ino]! & S_IFMT) !== S_IFLNK) return undefined;
    return this.src(ino)?.linkTarget(this.entry[ino]!) ?? '';
  }

  sha256Hex(ino: number): string | undefined {
    return this.src(ino)?.sha256Hex(this.entry[ino]!);
  }

  xattrs(ino: number): Record<string, Buffer> | undefined {
    return this.src(ino)?.xattrs(this.entry[ino]!);
  }

  name(d: number): string {
    return this.names.name(d);
  }

  /** A directory's names, in its (bytewise) order. */
  dirNames(ino: number): string[] {
    const out: string[] = [];
    for (let d = this.dirStart[ino]!, end = d + this.dirCount[ino]!; d < end; d++) out.push(this.names.name(d));
    return out;
  }

  isDir(ino: number): boolean {
    return (this.mode[ino]! & S_IFMT) === S_IFDIR;
  }

  /** Child inode by name, 0 when absent. `ino` must be a directory. */
  child(ino: number, name: string): number {
    let map = this.dirMaps.get(ino);
    if (map === undefined) {
      map = new Map();
      const end = this.dirStart[ino]! + this.dirCount[ino]!;
      for (let i = this.dirStart[ino]!; i < end; i++) map.set(this.names.name(i), this.childIno(ino, i));
      this.dirMaps.set(ino, map);
    }
    return map.get(name) ?? 0;
  }
}

/**
 * Bytewise order of the names' bytes (util/byte-names.ts). UTF-16 code-unit order agrees until a
 * surrogate differs: astral characters (pairs) and escaped raw bytes (U+DC80..U+DCFF) are compared as bytes.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if ((x >= 0xd800 && x <= 0xdfff) || (y >= 0xd800 && y <= 0xdfff)) return compareNameBytes(a, b);
    return x - y;
  }
  return a.length - b.length;
}
