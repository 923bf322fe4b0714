/**
 * An image of `.idx` layers packed straight from their records: no path string per entry, no
 * directory maps of names, no merge tree. Each layer's scan (direct-scan.ts) is laid out as its own
 * sorted tree (scan-tree.ts), the trees are merged top-down per directory (stack-merge.ts, hardlinks in
 * stack-links.ts), and here the merged directories, visited breadth-first in name order, get their
 * inode numbers. The answers are the merge's (merge.ts + pack.ts): same inode numbers, names, links,
 * warnings. Anything only the merge should judge — a name that is both a directory and something else
 * in one layer, a hardlink to a directory, a later record or nothing, an empty name — makes it give up
 * (undefined) and the caller merges instead.
 */
import { decodeText } from '../layer/index-records.js';
import { recordMode, type RecordEntries } from './layer-entries.js';
import { IMPLICIT_DIR_MODE, InodeTable, type DirentNames } from './tree.js';
import type { LayerScan } from './direct-scan.js';
import { NeedsMerge } from './scan-dirs.js';
import { ScanTree } from './scan-tree.js';
import { StackMerge } from './stack-merge.js';
import { rangeOf, StackLinks } from './stack-links.js';

/** What dirent names need of one position's tree (the rest of its scan can go). */
interface NameSource {
  buf: Buffer;
  kids: Int32Array;
  nameAt: Uint32Array;
  nameLen: Uint16Array;
  dirNameAt: readonly number[];
  dirNameLen: readonly number[];
}

/**
 * Dirent names as byte ranges of the layers' record buffers, decoded when asked: a dirent below
 * `kidsTotal` is a child in a position's laid-out kids, the others are the merged directories' (ovPos, ovKid).
 */
class ByteNames implements DirentNames {
  private readonly sources: NameSource[];
  private readonly kidBase: readonly number[];
  private readonly kidsTotal: number;
  private readonly ovPos: Int32Array;
  private readonly ovKid: Int32Array;

  constructor(m: StackMerge) {
    this.sources = m.trees.map((t) => ({ buf: t.buf, kids: t.kids, nameAt: t.s.nameAt, nameLen: t.s.nameLen, dirNameAt: t.s.dirNameAt, dirNameLen: t.s.dirNameLen }));
    this.kidBase = m.kidBase;
    this.kidsTotal = m.kidsTotal;
    this.ovPos = m.ovPos.a.subarray(0, m.ovPos.n);
    this.ovKid = m.ovKid.a.subarray(0, m.ovKid.n);
  }

  get length(): number {
    return this.kidsTotal + this.ovPos.length;
  }

  name(d: number): string {
    let pos: number;
    let v: number;
    if (d < this.kidsTotal) {
      pos = this.sources.length === 1 ? 0 : rangeOf(this.kidBase, d);
      v = this.sources[pos]!.kids[d - this.kidBase[pos]!]!;
    } else {
      pos = this.ovPos[d - this.kidsTotal]!;
      v = this.ovKid[d - this.kidsTotal]!;
    }
    const s = this.sources[pos]!;
    const at = v >= 0 ? s.nameAt[v]! : s.dirNameAt[~v]!;
    return decodeText(s.buf, at, at + (v >= 0 ? s.nameLen[v]! : s.dirNameLen[~v]!));
  }
}

/**
 * Packs `.idx` layers (bottom first; `scans[i]` made by scanIndex over `entries[i]`'s buffer, one scan
 * per distinct index) into an inode table and the merge's warnings; undefined when the merge must do it.
 */
export function packScans(scans: readonly LayerScan[], entries: readonly RecordEntries[]): { table: InodeTable; warnings: string[] } | undefined {
  if (scans.some((s) => !s.direct)) return undefined;
  try {
    const laidOut = new Map<LayerScan, ScanTree>(); // a layer at several positions is laid out once
    const trees = scans.map((s, i) => {
      let t = laidOut.get(s);
      if (t === undefined) laidOut.set(s, (t = new ScanTree(s, entries[i]!)));
      return t;
    });
    const links = new StackLinks(trees);
    const merge = new StackMerge(trees, links);
    links.resolve(merge);
    merge.run();
    const table = number(merge, links, entries);
    for (const s of scans) s.mode = new Uint16Array(0); // only the numbering needs the leaves' modes
    return { table, warnings: links.warnings.all() };
  } catch (err) {
    if (err instanceof NeedsMerge) return undefined;
    throw err;
  }
}

/** The table: inode numbers breadth-first in name order, as packTree gives them. */
function number(m: StackMerge, links: StackLinks, entries: readonly RecordEntries[]): InodeTable {
  return new Numbering(m, links, new InodeTable(m.inodes, new ByteNames(m), entries)).run();
}

class Numbering {
  /** Inode of each merged directory (they are numbered in the order the merge made them). */
  private readonly mIno: Uint32Array;
  /** Origin → inode, for the origins hardlinks name. */
  private readonly shared = new Map<number, number>();
  private next = 1;
  private nextDir = 1;

  constructor(
    private readonly m: StackMerge,
    private readonly links: StackLinks,
    private readonly t: InodeTable,
  ) {
    this.mIno = new Uint32Array(m.mChain.n);
  }

  run(): InodeTable {
    const { m, t } = this;
    this.mIno[0] = 1;
    setDir(t, m, 0, 1, 1);
    for (let d = 0; d < m.mChain.n; d++) {
      const ino = this.mIno[d]!;
      const start = m.mStart.a[d]!;
      const end = start + m.mCount.a[d]!;
      const pos = m.mPos.a[d]!;
      t.dirStart[ino] = start;
      t.dirCount[ino] = end - start;
      const plain = pos >= 0 && !this.links.involves(pos);
      t.nlink[ino] = 2 + (plain ? this.plainSlice(d, ino, pos, start, end) : this.mixed(ino, pos, start, end));
    }
    return t;
  }

  /** Dirent k names the next merged directory, a child of `parent`. */
  private subdir(k: number, parent: number): void {
    const ino = ++this.next;
    this.mIno[this.nextDir] = ino;
    setDir(this.t, this.m, this.nextDir++, ino, parent);
    this.t.selfDirent[ino] = k;
    this.t.direntIno[k] = ino;
  }

  /**
   * Merged directory d, one layer directory's slice, no hardlinks: every record child is a new inode (most directories).
   * Returns the subdirectories. Its loop runs over nearly every entry, mostly before TurboFan's code for
   * it arrives: locals only, and a slice of files alone (most entries) takes its entries, link counts,
   * layer and (records in order) modes in bulk (native fills and copies), and its dirent inodes as one
   * number (InodeTable.direntBase).
   */
  private plainSlice(d: number, ino: number, pos: number, start: number, end: number): number {
    const { mode, entry, layer, nlink, direntIno } = this.t;
    const tree = this.m.trees[pos]!;
    const { kids } = tree;
    const modes = tree.s.mode;
    const base = this.m.kidBase[pos]!;
    let next = this.next;
    if (this.m.filesOnly(d)) {
      const first = next + 1;
      const n = end - start;
      const from = start - base;
      entry.set(kids.subarray(from, from + n), first);
      nlink.fill(1, first, first + n);
      if (pos !== 0) layer.fill(pos, first, first + n); // 0 as allocated
      // records r0 .. r0 + n - 1 in that order (tar order, and sorted): their modes in one copy
      const r0 = kids[from]!;
      if (n > 0 && kids[from + n - 1]! - r0 === n - 1 && !tree.s.unsorted.has(this.m.chainDir.a[this.m.mChain.a[d]!]!)) mode.set(modes.subarray(r0, r0 + n), first);
      else gather(mode, first, modes, kids, from, n);
      this.t.direntBase[ino] = first - start; // dirent k is inode k + first - start
      this.next = next + n;
      return 0;
    }
    let subdirs = 0;
    for (let k = start; k < end; k++) {
      const v = kids[k - base]!;
      if (v < 0) {
        this.next = next;
        this.subdir(k, ino);
        next = this.next;
        subdirs++;
        continue;
      }
      const child = ++next;
      layer[child] = pos;
      entry[child] = v;
      mode[child] = modes[v]!;
      nlink[child] = 1;
      direntIno[k] = child;
    }
    this.next = next;
    return subdirs;
  }

  /** Any other directory: merged dirents (pos < 0) or a slice with hardlinks. Returns the subdirectories. */
  private mixed(ino: number, inPlace: number, start: number, end: number): number {
    const { m, links, t } = this;
    const kids = inPlace >= 0 ? m.trees[inPlace]!.kids : undefined;
    const base = inPlace >= 0 ? m.kidBase[inPlace]! : m.kidsTotal;
    let subdirs = 0;
    for (let k = start; k < end; k++) {
      const pos = kids !== undefined ? inPlace : m.ovPos.a[k - base]!;
      const v = kids !== undefined ? kids[k - base]! : m.ovKid.a[k - base]!;
      if (v < 0) {
        this.subdir(k, ino);
        subdirs++;
        continue;
      }
      let child = 0;
      let opos = pos;
      let orec = v;
      const o = links.originOf(pos, v);
      if (links.isShared(o)) {
        [opos, orec] = links.positionOf(o);
        child = this.shared.get(o) ?? 0;
        if (child === 0) this.shared.set(o, this.next + 1);
      }
      if (child === 0) {
        child = ++this.next;
        t.layer[child] = opos;
        t.entry[child] = orec;
        t.mode[child] = m.trees[opos]!.s.mode[orec]!;
      }
      t.nlink[child]++;
      t.direntIno[k] = child;
    }
    return subdirs;
  }
}

// A loop over every entry is a tiny function of its own: TurboFan compiles one in a millisecond or two,
// after a few calls, where the loop inside a large function waits for that whole function's code.

/** to[at + i] = values[keys[from + i]] for i < n. */
function gather(to: Uint32Array, at: number, values: Uint16Array, keys: Int32Array, from: number, n: number): void {
  for (let i = 0; i < n; i++) to[at + i] = values[keys[from + i]!]!;
}

/** Directory inode `ino` of merged directory d: metadata from the topmost layer directory with a record, else implicit. */
function setDir(t: InodeTable, m: StackMerge, d: number, ino: number, parent: number): void {
  const [from, to] = m.chain(d);
  let pos = -1;
  let rec = -1;
  for (let c = from; c < to && rec < 0; c++) {
    pos = m.chainPos.a[c]!;
    rec = m.trees[pos]!.s.dirRec[m.chainDir.a[c]!]!;
  }
  t.layer[ino] = rec < 0 ? -1 : pos;
  t.entry[ino] = rec < 0 ? 0 : rec;
  t.mode[ino] = rec < 0 ? IMPLICIT_DIR_MODE : recordMode(m.trees[pos]!.buf, m.trees[pos]!.entries.starts[rec]!);
  t.parent[ino] = parent;
}
