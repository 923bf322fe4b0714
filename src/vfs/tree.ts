/**
 * The merged tree packed into typed arrays indexed by inode number (root = 1, 0 unused):
 * a few dozen bytes per inode plus one string per directory entry. Directory entries of all
 * directories live in one array, each directory's slice sorted bytewise (UTF-8 order).
 */
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../layer/entry.js';

export { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG };
import { MNode, type Child, type LeafTable } from './merge.js';
import { compareNameBytes } from '../util/byte-names.js';

export const ROOT_INO = 1;

/** Implicit directories (only implied by their children): 0755 root:root, mtime 0. */
const IMPLICIT_DIR_MODE = S_IFDIR | 0o755;

export class InodeTable {
  readonly count: number; // highest inode number
  readonly mode: Uint32Array;
  readonly uid: Uint32Array;
  readonly gid: Uint32Array;
  readonly nlink: Uint32Array;
  readonly mtimeNsec: Uint32Array;
  readonly devMajor: Uint32Array;
  readonly devMinor: Uint32Array;
  readonly layer: Int32Array;
  readonly size: Float64Array;
  readonly mtimeSec: Float64Array;
  readonly offset: Float64Array;
  /** Directories: parent inode (root's is root) and their slice of the dirent arrays. */
  readonly parent: Uint32Array;
  readonly dirStart: Uint32Array;
  readonly dirCount: Uint32Array;
  /** Directories: index of their own dirent (for realpath); root: 0. */
  readonly selfDirent: Uint32Array;
  readonly direntName: string[];
  readonly direntIno: Uint32Array;
  readonly linkTarget = new Map<number, string>();
  /** Raw sha256 of regular files' content, 32 bytes per inode (hex strings would cost 3x more). */
  readonly sha256: Buffer;
  readonly hasSha256: Uint8Array;
  readonly xattrs = new Map<number, Record<string, Buffer>>();
  /** Lazily built name → inode maps, one per directory looked up. */
  readonly dirMaps: (Map<string, number> | undefined)[];

  constructor(inodes: number, direntName: string[]) {
    const n = inodes + 1;
    this.count = inodes;
    this.mode = new Uint32Array(n);
    this.uid = new Uint32Array(n);
    this.gid = new Uint32Array(n);
    this.nlink = new Uint32Array(n);
    this.mtimeNsec = new Uint32Array(n);
    this.devMajor = new Uint32Array(n);
    this.devMinor = new Uint32Array(n);
    this.layer = new Int32Array(n);
    this.size = new Float64Array(n);
    this.mtimeSec = new Float64Array(n);
    this.offset = new Float64Array(n);
    this.parent = new Uint32Array(n);
    this.dirStart = new Uint32Array(n);
    this.dirCount = new Uint32Array(n);
    this.selfDirent = new Uint32Array(n);
    this.sha256 = Buffer.alloc(n * 32);
    this.hasSha256 = new Uint8Array(n);
    this.direntName = direntName;
    this.direntIno = new Uint32Array(direntName.length);
    this.dirMaps = new Array(n);
  }

  sha256Hex(ino: number): string | undefined {
    return this.hasSha256[ino] ? this.sha256.toString('hex', ino * 32, ino * 32 + 32) : undefined;
  }

  isDir(ino: number): boolean {
    return (this.mode[ino]! & S_IFMT) === S_IFDIR;
  }

  /** Child inode by name, 0 when absent. `ino` must be a directory. */
  child(ino: number, name: string): number {
    let map = this.dirMaps[ino];
    if (map === undefined) {
      map = new Map();
      const end = this.dirStart[ino]! + this.dirCount[ino]!;
      for (let i = this.dirStart[ino]!; i < end; i++) map.set(this.direntName[i]!, this.direntIno[i]!);
      this.dirMaps[ino] = map;
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

const SURROGATE = /[\ud800-\udfff]/;

/** Bytewise order; the built-in (UTF-16) sort agrees unless a name has surrogates. */
function sortNames(names: string[]): string[] {
  return names.some((n) => SURROGATE.test(n)) ? names.sort(compareNames) : names.sort();
}

/** Stands in for a directory's children once packed: the tree is thrown away after packing, its maps first. */
const PACKED = new Map<string, Child>();

/**
 * Packs a merged tree: inode numbers in breadth-first, sorted order, so equal trees get equal numbers.
 * `leaves` resolves the leaf numbers the merge left in place of nodes. Consumes the tree.
 */
export function packTree(root: MNode, leaves?: LeafTable): InodeTable {
  const order: Child[] = [root];
  const names: string[] = [];
  const kidIno: number[] = [];
  const starts: number[] = []; // by position in `order`: first dirent
  root.ino = 1;
  for (let q = 0; q < order.length; q++) {
    const node = order[q]!;
    starts.push(names.length);
    if (typeof node === 'number' || node.children === null) continue;
    for (const name of sortNames([...node.children.keys()])) {
      const child = node.children.get(name)!;
      names.push(name);
      if (typeof child === 'number') {
        order.push(child); // a leaf has one name
        kidIno.push(order.length);
        continue;
      }
      child.links++;
      if (child.ino === 0) {
        order.push(child);
        child.ino = order.length;
      }
      kidIno.push(child.ino);
    }
    node.children = PACKED; // still a directory; its map can go
  }
  starts.push(names.length);
  const t = new InodeTable(order.length, names);
  for (let q = 0; q < order.length; q++) {
    const node = order[q]!;
    const ino = q + 1;
    if (typeof node === 'number') {
      leaves!.fill(node, t, ino);
      continue;
    }
    fillInode(t, node);
    if (node.children === null) continue;
    const end = starts[q + 1]!;
    let subdirs = 0;
    t.dirStart[ino] = starts[q]!;
    t.dirCount[ino] = end - starts[q]!;
    for (let d = starts[q]!; d < end; d++) {
      const child = kidIno[d]!;
      t.direntIno[d] = child;
      const c = order[child - 1]!;
      if (typeof c === 'object' && c.children !== null) {
        subdirs++;
        t.parent[child] = ino;
        t.selfDirent[child] = d;
      }
    }
    t.nlink[ino] = 2 + subdirs;
  }
  t.parent[1] = 1;
  return t;
}

function fillInode(t: InodeTable, node: MNode): void {
  const ino = node.ino;
  t.layer[ino] = node.layer;
  t.nlink[ino] = node.links;
  if (node.src === null) t.mode[ino] = IMPLICIT_DIR_MODE;
  else if (node.src instanceof InodeTable) copyInode(t, node.src, node.idx, ino);
  else node.src.fill(node.idx, t, ino);
}

function copyInode(t: InodeTable, s: InodeTable, from: number, ino: number): void {
  t.mode[ino] = s.mode[from]!;
  t.uid[ino] = s.uid[from]!;
  t.gid[ino] = s.gid[from]!;
  t.mtimeSec[ino] = s.mtimeSec[from]!;
  t.mtimeNsec[ino] = s.mtimeNsec[from]!;
  t.devMajor[ino] = s.devMajor[from]!;
  t.devMinor[ino] = s.devMinor[from]!;
  t.size[ino] = s.size[from]!;
  t.offset[ino] = s.offset[from]!;
  const target = s.linkTarget.get(from);
  if (target !== undefined) t.linkTarget.set(ino, target);
  if (s.hasSha256[from]) {
    s.sha256.copy(t.sha256, ino * 32, from * 32, from * 32 + 32);
    t.hasSha256[ino] = 1;
  }
  const x = s.xattrs.get(from);
  if (x !== undefined) t.xattrs.set(ino, x);
}

/** Rebuilds a merge tree from a packed one (for stacking more layers on a ContainerFS). */
export function unpackTree(t: InodeTable): MNode {
  const nodes = new Array<MNode | undefined>(t.count + 1);
  const make = (ino: number): MNode => {
    let n = nodes[ino];
    if (n !== undefined) return n;
    n = new MNode(t.isDir(ino));
    n.src = t;
    n.idx = ino;
    n.layer = t.layer[ino]!;
    nodes[ino] = n;
    return n;
  };
  for (let ino = 1; ino <= t.count; ino++) {
    if (!t.isDir(ino)) continue;
    const dir = make(ino);
    const end = t.dirStart[ino]! + t.dirCount[ino]!;
    for (let i = t.dirStart[ino]!; i < end; i++) dir.children!.set(t.direntName[i]!, make(t.direntIno[i]!));
  }
  return make(1);
}
