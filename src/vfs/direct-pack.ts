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
import { decodeText, ENTRY_FIXED_SIZE, pathStart, r32, R_LINK, R_LOWER_LINK, R_SHA256 } from '../layer/index-records.js';
import { recordMode, type RecordEntries } from './layer-entries.js';
import { IMPLICIT_DIR_MODE, InodeTable, type DirentNames } from './tree.js';

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

/** Thrown inside the builder when the layer needs the general merge. */
class NeedsMerge extends Error {}

/** Packs a single layer's records (applied once, on nothing); undefined when the merge must do it. */
export function packRecords(entries: RecordEntries): InodeTable | undefined {
  try {
    const b = new DirectBuilder(entries);
    b.scan();
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
  private readonly n: number;
  /** Per record: its name's bytes (records that are children: not markers, directories or the root). */
  private readonly nameAt: Uint32Array;
  private readonly nameLen: Uint16Array;
  /** Per directory (0 = root): its record (-1: implicit) and name bytes. */
  private readonly dirRec: number[] = [-1];
  private readonly dirNameAt: number[] = [0];
  private readonly dirNameLen: number[] = [0];
  private readonly dirKeys = new Map<string, number>();
  /** Per directory: the name bytes of its last child so far (length -1: none yet); directories whose children came out of order. */
  private readonly lastAt: number[] = [0];
  private readonly lastLen: number[] = [-1];
  private readonly unsorted = new Set<number>();
  /** Children in the order they appeared: a record number, or ~dir; and the directory holding each. */
  private events: Int32Array;
  private eventParent: Int32Array;
  private eventCount = 0;
  private leaves = 0;
  private readonly hardlinks: number[] = [];
  private readonly linkTo = new Map<number, number>();
  // Laid out: every directory's children, sorted; directory d's are kids[childStart[d] .. childStart[d + 1]).
  private kids = new Int32Array(0);
  private childStart = new Uint32Array(0);

  constructor(private readonly entries: RecordEntries) {
    this.buf = entries.buf;
    this.n = entries.count;
    this.nameAt = new Uint32Array(this.n);
    this.nameLen = new Uint16Array(this.n);
    this.events = new Int32Array(Math.max(16, this.n + (this.n >> 3)));
    this.eventParent = new Int32Array(this.events.length);
  }

  /**
   * One pass over the records: parents, names, directories, in order of appearance, and whether each
   * directory's children came in name order. Flat on purpose: it runs once per open, mostly unoptimised.
   */
  scan(): void {
    const { buf, n, nameAt, nameLen } = this;
    const { starts, version } = this.entries;
    const fixed = ENTRY_FIXED_SIZE[version];
    let prevAt = 0;
    let prevLen = -1;
    let prevDir = 0;
    for (let i = 0; i < n; i++) {
      const at = starts[i]!;
      const type = buf[at]!;
      if (type === EntryType.Whiteout) continue; // hides lower layers only: there are none
      const p = at + fixed + (buf[at + 1]! & R_SHA256 ? 32 : 0);
      const len = buf[at + 36]! | (buf[at + 37]! << 8); // at most 65535 (checkRecord)
      let s = len - 1;
      while (s >= 0 && buf[p + s] !== SLASH) s--;
      const dirLen = s < 0 ? 0 : s;
      let dir = prevDir;
      if (dirLen !== prevLen) dir = this.ensureDir(p, dirLen);
      else {
        for (let k = 0; k < dirLen; k++) {
          if (buf[p + k] !== buf[prevAt + k]) {
            dir = this.ensureDir(p, dirLen);
            break;
          }
        }
      }
      prevAt = p;
      prevLen = dirLen;
      prevDir = dir;
      if (type === EntryType.Opaque) {
        if (len > 0) this.childDir(dir, p + s + 1, len - s - 1); // the marker's directory exists
        continue;
      }
      if (len === 0) {
        if (type === EntryType.Dir) this.dirRec[0] = i; // a non-directory root entry is ignored, as the merge does
        continue;
      }
      if (s === len - 1) throw new NeedsMerge();
      if (type === EntryType.Dir) {
        this.dirRec[this.childDir(dir, p + s + 1, len - s - 1)] = i;
        continue;
      }
      nameAt[i] = p + s + 1;
      nameLen[i] = len - s - 1;
      this.append(dir, i, p + s + 1, len - s - 1);
      if (type === EntryType.Hardlink) this.hardlinks.push(i);
      else this.leaves++;
    }
  }

  /** Child `v` of `dir` appeared, named by bytes [at, at + len): recorded, and the directory's order checked. */
  private append(dir: number, v: number, at: number, len: number): void {
    if (this.eventCount === this.events.length) {
      this.events = grown(this.events);
      this.eventParent = grown(this.eventParent);
    }
    this.eventParent[this.eventCount] = dir;
    this.events[this.eventCount++] = v;
    const lastLen = this.lastLen[dir]!;
    if (lastLen >= 0) {
      const c = compareBytes(this.buf, this.lastAt[dir]!, lastLen, at, len);
      if (c === 0) throw new NeedsMerge(); // one name twice in a directory
      if (c > 0) this.unsorted.add(dir);
    }
    this.lastAt[dir] = at;
    this.lastLen[dir] = len;
  }

  /** The directory at path bytes [p, p + len), made (implicit) with its missing ancestors. */
  private ensureDir(p: number, len: number): number {
    let dir = 0;
    for (let i = p, end = p + len; i < end; ) {
      let j = i;
      while (j < end && this.buf[j] !== SLASH) j++;
      dir = this.childDir(dir, i, j - i);
      i = j + 1;
    }
    return dir;
  }

  /** Directory `parent`'s child directory named by bytes [at, at + len), made when missing. */
  private childDir(parent: number, at: number, len: number): number {
    if (len === 0) throw new NeedsMerge();
    const key = `${parent}/${this.buf.toString('latin1', at, at + len)}`;
    let d = this.dirKeys.get(key);
    if (d === undefined) {
      d = this.dirRec.length;
      this.dirKeys.set(key, d);
      this.dirRec.push(-1);
      this.dirNameAt.push(at);
      this.dirNameLen.push(len);
      this.lastAt.push(0);
      this.lastLen.push(-1);
      this.append(parent, ~d, at, len);
    }
    return d;
  }

  /** Counting sort of the children by directory (appearance order kept), then each directory sorted by name. */
  layOut(): void {
    const dirs = this.dirRec.length;
    const { events, eventParent, eventCount } = this;
    const start = new Uint32Array(dirs + 1);
    for (let k = 0; k < eventCount; k++) start[eventParent[k]! + 1]++;
    for (let d = 0; d < dirs; d++) start[d + 1]! += start[d]!;
    const fill = start.slice(0, dirs);
    const kids = new Int32Array(eventCount);
    for (let k = 0; k < eventCount; k++) kids[fill[eventParent[k]!]!++] = events[k]!;
    this.events = this.eventParent = new Int32Array(0);
    this.kids = kids;
    this.childStart = start;
    for (const d of this.unsorted) this.sortChildren(start[d]!, start[d + 1]!);
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
    return v >= 0 ? this.nameAt[v]! : this.dirNameAt[~v]!;
  }

  private len(v: number): number {
    return v >= 0 ? this.nameLen[v]! : this.dirNameLen[~v]!;
  }

  /** Each hardlink → the earlier record (not a directory, not a hardlink) whose inode it names. */
  resolveHardlinks(): void {
    const { buf, entries } = this;
    for (const r of this.hardlinks) {
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
      const d = this.dirKeys.get(`${dir}/${this.buf.toString('latin1', i, j)}`);
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
    const dirs = this.dirRec.length;
    const { buf, kids, childStart } = this;
    const { starts } = this.entries;
    const names = new ByteNames(buf, kids, this.nameAt, this.nameLen, this.dirNameAt, this.dirNameLen);
    const t = new InodeTable(dirs + this.leaves, names, [this.entries]);
    const { mode, entry, nlink, direntIno, selfDirent } = t;
    const dirIno = new Uint32Array(dirs);
    // Only a hardlink's target can be met twice; without hardlinks every record child is a new inode.
    const recIno = this.hardlinks.length > 0 ? new Uint32Array(this.n) : null;
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
          mode[child] = recordMode(buf, starts[r]!);
        }
        nlink[child]++;
        direntIno[k] = child;
      }
      nlink[ino] = 2 + subdirs;
    }
    return t;
  }

  private setDir(t: InodeTable, d: number, ino: number, parent: number): void {
    const rec = this.dirRec[d]!;
    t.layer[ino] = rec < 0 ? -1 : 0;
    t.entry[ino] = rec < 0 ? 0 : rec;
    t.mode[ino] = rec < 0 ? IMPLICIT_DIR_MODE : recordMode(this.buf, this.entries.starts[rec]!);
    t.parent[ino] = parent;
    t.dirStart[ino] = this.childStart[d]!;
    t.dirCount[ino] = this.childStart[d + 1]! - this.childStart[d]!;
  }
}

function grown(a: Int32Array): Int32Array {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

function compareBytes(buf: Buffer, aAt: number, aLen: number, bAt: number, bLen: number): number {
  for (let i = 0, m = Math.min(aLen, bLen); i < m; i++) {
    const x = buf[aAt + i]!;
    const y = buf[bAt + i]!;
    if (x !== y) return x - y;
  }
  return aLen - bLen;
}
