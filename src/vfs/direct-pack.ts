/**
 * An image of one layer packed straight from its `.idx` records: no path string per entry, no
 * directory maps of names, no merge tree. Directories are keyed by (parent, name) and made only when a
 * record's parent differs from the previous record's (tar order groups entries by directory); each
 * directory's children are laid out by a counting sort, kept in record order when that is already
 * sorted (it usually is) and sorted by name bytes otherwise. The answers are the merge's (merge.ts +
 * pack.ts): same inode numbers, names, links. Anything only the merge should judge — a name that is both
 * a directory and something else, a hardlink that does not name an earlier non-directory of the layer,
 * a lower-layer link, an empty name — makes it give up (undefined) and the caller merges instead.
 */
import { EntryType } from '../layer/entry.js';
import { decodeText, pathStart, r32, R_LINK, R_LOWER_LINK } from '../layer/index-records.js';
import { recordMode, type RecordEntries } from './layer-entries.js';
import { IMPLICIT_DIR_MODE, InodeTable, type DirentNames } from './tree.js';
import { compareBytes, NeedsMerge, type LayerScan } from './direct-scan.js';

const SLASH = 47;

/**
 * Dirent names as byte ranges of one layer's record buffer, decoded when asked: dirent d is child
 * `kids[d]`, a record (its name's bytes at nameAt/nameLen) or ~directory (dirNameAt/dirNameLen).
 */
class ByteNames implements DirentNames {
  constructor(
    private readonly buf: Buffer,
    private readonly kids: Int32Array,
    private readonly nameAt: Uint32Array,
    private readonly nameLen: Uint16Array,
    private readonly dirNameAt: readonly number[],
    private readonly dirNameLen: readonly number[],
  ) {}

  get length(): number {
    return this.kids.length;
  }

  name(d: number): string {
    const v = this.kids[d]!;
    const at = v >= 0 ? this.nameAt[v]! : this.dirNameAt[~v]!;
    return decodeText(this.buf, at, at + (v >= 0 ? this.nameLen[v]! : this.dirNameLen[~v]!));
  }
}

/**
 * Packs a single layer's records (applied once, on nothing) from the scan that checked them
 * (`scanIndex(buf, scan.records)`); undefined when the merge must do it.
 */
export function packScanned(s: LayerScan, entries: RecordEntries): InodeTable | undefined {
  if (!s.direct) return undefined;
  try {
    const b = new DirectBuilder(s, entries);
    b.layOut();
    b.resolveHardlinks();
    return b.pack();
  } catch (err) {
    if (err instanceof NeedsMerge) return undefined;
    throw err;
  }
}

class DirectBuilder {
  private readonly buf: Buffer;
  private readonly linkTo = new Map<number, number>();
  // Laid out: every directory's children, sorted; directory d's are kids[childStart[d] .. childStart[d + 1]).
  private kids = new Int32Array(0);
  private childStart = new Uint32Array(0);

  constructor(
    private readonly s: LayerScan,
    private readonly entries: RecordEntries,
  ) {
    this.buf = s.buf;
  }

  /** Counting sort of the children by directory (appearance order kept), then each directory sorted by name. */
  layOut(): void {
    const dirs = this.s.dirRec.length;
    const { events, eventParent, eventCount } = this.s;
    const start = new Uint32Array(dirs + 1);
    for (let d = 0; d < dirs; d++) start[d + 1] = start[d]! + this.s.childCount[d]!;
    const fill = start.slice(0, dirs);
    const kids = new Int32Array(eventCount);
    for (let k = 0; k < eventCount; k++) kids[fill[eventParent[k]!]!++] = events[k]!;
    this.s.events = this.s.eventParent = new Int32Array(0); // done with them
    this.kids = kids;
    this.childStart = start;
    for (const d of this.s.unsorted) this.sortChildren(start[d]!, start[d + 1]!);
  }

  /** Sorts kids[from, to) by name bytes; two equal names mean the merge must judge. */
  private sortChildren(from: number, to: number): void {
    const slice = Array.from(this.kids.subarray(from, to)).sort((a, b) => this.compare(a, b));
    for (let k = 1; k < slice.length; k++) if (this.compare(slice[k - 1]!, slice[k]!) === 0) throw new NeedsMerge();
    this.kids.set(slice, from);
  }

  /** Bytewise order of two children's names. */
  private compare(a: number, b: number): number {
    return compareBytes(this.buf, this.at(a), this.len(a), this.at(b), this.len(b));
  }

  /** Where child `v`'s name bytes start, and how many there are. */
  private at(v: number): number {
    return v >= 0 ? this.s.nameAt[v]! : this.s.dirNameAt[~v]!;
  }

  private len(v: number): number {
    return v >= 0 ? this.s.nameLen[v]! : this.s.dirNameLen[~v]!;
  }

  /** Each hardlink → the earlier record (not a directory, not a hardlink) whose inode it names. */
  resolveHardlinks(): void {
    const { buf, entries } = this;
    for (const r of this.s.hardlinks) {
      const at = entries.starts[r]!;
      if (!(buf[at + 1]! & R_LINK) || buf[at + 1]! & R_LOWER_LINK) throw new NeedsMerge();
      const p = pathStart(buf, at, entries.version) + r32(buf, at + 36);
      const target = this.find(p, r32(buf, at + 56));
      if (target < 0 || target >= r) throw new NeedsMerge();
      this.linkTo.set(r, this.linkTo.get(target) ?? target);
    }
  }

  /** The record at path bytes [p, p + len) among the laid-out children, or -1 (a directory, or nothing). */
  private find(p: number, len: number): number {
    let dir = 0;
    let i = p;
    const end = p + len;
    for (;;) {
      let j = i;
      while (j < end && this.buf[j] !== SLASH) j++;
      if (j >= end) return this.child(dir, i, j - i);
      const d = this.s.dirKeys.get(`${dir}/${this.buf.toString('latin1', i, j)}`);
      if (d === undefined) return -1;
      dir = d;
      i = j + 1;
    }
  }

  /** Binary search of directory `dir`'s sorted children for a record named by bytes [at, at + len). */
  private child(dir: number, at: number, len: number): number {
    let lo = this.childStart[dir]!;
    let hi = this.childStart[dir + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.kids[mid]!;
      const c = compareBytes(this.buf, this.at(v), this.len(v), at, len);
      if (c === 0) return v; // a directory is ~d < 0: not a record
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The table: inode numbers breadth-first in name order, as packTree gives them. */
  pack(): InodeTable {
    const dirs = this.s.dirRec.length;
    const { buf, kids, childStart } = this;
    const { starts } = this.s;
    const names = new ByteNames(buf, kids, this.s.nameAt, this.s.nameLen, this.s.dirNameAt, this.s.dirNameLen);
    const t = new InodeTable(dirs + this.s.leaves, names, [this.entries]);
    const { mode, entry, nlink, direntIno, selfDirent } = t;
    const dirIno = new Uint32Array(dirs);
    const recMode = this.s.mode;
    // Only a hardlink's target can be met twice; without hardlinks every record child is a new inode.
    const recIno = this.s.hardlinks.length > 0 ? new Uint32Array(this.s.n) : null;
    const queue = new Uint32Array(dirs);
    let next = 1;
    dirIno[0] = 1;
    this.setDir(t, 0, 1, 1);
    for (let head = 0, tail = 1; head < tail; head++) {
      const d = queue[head]!;
      const ino = dirIno[d]!;
      let subdirs = 0;
      for (let k = childStart[d]!, end = childStart[d + 1]!; k < end; k++) {
        const v = kids[k]!;
        if (v < 0) {
          const c = ~v;
          dirIno[c] = ++next;
          queue[tail++] = c;
          this.setDir(t, c, next, ino);
          selfDirent[next] = k;
          direntIno[k] = next;
          subdirs++;
          continue;
        }
        let r = v;
        let child = 0;
        if (recIno !== null) {
          if (buf[starts[v]!] === EntryType.Hardlink) r = this.linkTo.get(v)!;
          child = recIno[r]!;
        }
        if (child === 0) {
          child = ++next;
          if (recIno !== null) recIno[r] = child;
          entry[child] = r; // layer 0: the arrays start zeroed
          mode[child] = recMode[r]!;
        }
        nlink[child]++;
        direntIno[k] = child;
      }
      nlink[ino] = 2 + subdirs;
    }
    return t;
  }

  private setDir(t: InodeTable, d: number, ino: number, parent: number): void {
    const rec = this.s.dirRec[d]!;
    t.layer[ino] = rec < 0 ? -1 : 0;
    t.entry[ino] = rec < 0 ? 0 : rec;
    t.mode[ino] = rec < 0 ? IMPLICIT_DIR_MODE : recordMode(this.buf, this.s.starts[rec]!);
    t.parent[ino] = parent;
    t.dirStart[ino] = this.childStart[d]!;
    t.dirCount[ino] = this.childStart[d + 1]! - this.childStart[d]!;
  }
}
