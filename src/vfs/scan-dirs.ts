/**
 * The directory side of a layer's scan (direct-scan.ts runs the records loop over it): the layer's
 * directories, keyed by parent and name (implicit ones made on the way; ghosts, which only a whiteout
 * names), every child in order of appearance as runs of one directory's events, which directories got
 * their children out of name order, and the rare records the hot loop hands over: directories, opaque
 * markers, whiteouts and the root. What only the merge may judge (one name twice in a directory, an
 * empty name) is NeedsMerge inside, and false or -1 at the methods the loop calls.
 */
import { EntryType } from '../layer/entry.js';
import { R_SHA256 } from '../layer/index-records.js';

export const SLASH = 47;

/** Thrown by the rare paths of the scan when the layer needs the general merge. */
export class NeedsMerge extends Error {}

/** A layer's directories and child events; LayerScan (direct-scan.ts) fills them from the records. */
export class ScanDirs {
  /** The index's bytes, and the fixed record size of its version. */
  buf: Buffer = Buffer.alloc(0);
  fixed = 72;
  /** Per directory (0 = root): its record (-1: implicit) and name bytes; keyed by `${parent}/${latin1 name}`. */
  readonly dirRec: number[] = [-1];
  readonly dirNameAt: number[] = [0];
  readonly dirNameLen: number[] = [0];
  readonly dirKeys = new Map<string, number>();
  /** Per directory: its parent (root: 0), whether an entry of the layer makes it (0: a ghost), whether it is opaque. */
  readonly dirParent: number[] = [0];
  readonly dirReal: number[] = [1];
  /** Per directory: how many of its children are directories. */
  readonly dirKids: number[] = [0];
  readonly opaque = new Set<number>();
  /** Whiteouts: the directory each sits in and its name bytes, in record order. */
  readonly whiteoutDir: number[] = [];
  readonly whiteoutAt: number[] = [];
  readonly whiteoutLen: number[] = [];
  /** Directories whose children came out of name order. */
  readonly unsorted = new Set<number>();
  /** Children in the order they appeared (a record number, or ~dir) and the directory holding each. */
  events: Int32Array = new Int32Array(0);
  eventCount = 0;
  /**
   * The events as runs of one directory's children: run r starts at event runs[2r] and is directory
   * runs[2r + 1]'s (tar order keeps a directory's files together: a few runs per directory).
   */
  runs: Int32Array = new Int32Array(64);
  runCount = 0;
  protected runDir = -1;
  /** Per directory: the name bytes of its last child so far (length -1: none yet). */
  protected readonly lastAt: number[] = [0];
  protected readonly lastLen: number[] = [-1];
  /** Per directory: how many children it has. */
  readonly childCount: number[] = [0];
  /** ensureDir's cursor: the path it resolved last starts at byte curP; per level, its directory and component end. */
  private curP = 0;
  private readonly curDir: number[] = [];
  private readonly curEnd: number[] = [];

  /**
   * Record i of `type` at path bytes [p, p + len), in directory `dir` (its last slash at s), when it is
   * no child: a directory, an opaque marker, the root (len 0), or an empty name. False when the merge must judge.
   */
  protected notChild(i: number, type: number, dir: number, p: number, s: number, len: number): boolean {
    if (type === EntryType.Opaque) {
      const d = len > 0 ? this.childDirAt(dir, p + s + 1, len - s - 1) : 0; // the marker's directory exists
      if (d < 0) return false;
      this.opaque.add(d);
      return true;
    }
    if (len === 0) {
      if (type === EntryType.Dir) this.dirRec[0] = i; // a non-directory root entry is ignored, as the merge does
      return true;
    }
    if (s === len - 1) return false; // an empty name
    const d = this.childDirAt(dir, p + s + 1, len - s - 1);
    if (d < 0) return false;
    this.dirRec[d] = i;
    return true;
  }

  /** The whiteout record at `rec`: kept with its directory (a ghost unless real); false when the merge must judge. */
  protected whiteout(rec: number): boolean {
    const p = rec + this.fixed + (this.buf[rec + 1]! & R_SHA256 ? 32 : 0);
    const len = this.buf[rec + 36]! | (this.buf[rec + 37]! << 8);
    if (len === 0) return true; // the root: nothing hides it
    let s = len - 1;
    while (s >= 0 && this.buf[p + s] !== SLASH) s--;
    if (s === len - 1) return false;
    let dir = 0;
    try {
      if (s >= 0) dir = this.ensureDir(p, s, false);
    } catch (err) {
      if (err instanceof NeedsMerge) return false;
      throw err;
    }
    this.whiteoutDir.push(dir);
    this.whiteoutAt.push(p + s + 1);
    this.whiteoutLen.push(len - s - 1);
    return true;
  }

  /** The directory at path bytes [p, p + s) (s < 0: the root), made with its missing ancestors; -1 when the merge must judge. */
  protected dirAt(p: number, s: number): number {
    try {
      return s < 0 ? 0 : this.ensureDir(p, s);
    } catch (err) {
      if (err instanceof NeedsMerge) return -1;
      throw err;
    }
  }

  /** childDir, or -1 when the merge must judge. */
  protected childDirAt(parent: number, at: number, len: number): number {
    try {
      return this.childDir(parent, at, len);
    } catch (err) {
      if (err instanceof NeedsMerge) return -1;
      throw err;
    }
  }

  protected grow(): void {
    this.events = grown(this.events);
  }

  /** Directory `dir`'s children start a run at event n. */
  protected openRun(dir: number, n: number): void {
    if (2 * this.runCount === this.runs.length) this.runs = grown(this.runs);
    this.runs[2 * this.runCount] = n;
    this.runs[2 * this.runCount + 1] = dir;
    this.runCount++;
    this.runDir = dir;
  }

  /** Child `v` of `dir` appeared, named by bytes [at, at + len): recorded, and the directory's order checked. */
  private append(dir: number, v: number, at: number, len: number): void {
    if (this.eventCount === this.events.length) this.grow();
    if (dir !== this.runDir) this.openRun(dir, this.eventCount);
    this.events[this.eventCount++] = v;
    const lastLen = this.lastLen[dir]!;
    if (lastLen >= 0) {
      const c = compareBytes(this.buf, this.lastAt[dir]!, lastLen, at, len);
      if (c === 0) throw new NeedsMerge(); // one name twice in a directory
      if (c > 0) this.unsorted.add(dir);
    }
    this.lastAt[dir] = at;
    this.lastLen[dir] = len;
    this.childCount[dir]++;
  }

  /**
   * The directory at path bytes [p, p + len), made (implicit) with its missing ancestors; `real`: an entry
   * makes it (and so its ancestors). Walks from the deepest directory it shares with the path resolved last
   * (the cursor), so a record costs its path's bytes and its new components, not its depth: a 5 000-level
   * tree resolved from the root each time took 12.5 M lookups.
   */
  private ensureDir(p: number, len: number, real = true): number {
    const { buf, curDir, curEnd } = this;
    const q = this.curP;
    const m = Math.min(len, curEnd.length > 0 ? curEnd[curEnd.length - 1]! : 0);
    let c = 0;
    while (c < m && buf[p + c] === buf[q + c]) c++;
    // the cursor's levels this path passes through too: the same bytes up to a component's end, then a slash (or the end)
    let depth = curEnd.length;
    while (depth > 0) {
      const e = curEnd[depth - 1]!;
      if (e <= c && (e === len || buf[p + e] === SLASH)) break;
      depth--;
    }
    curDir.length = curEnd.length = depth;
    this.curP = p;
    // a real directory's ancestors are real: mark upwards until one is
    if (real) for (let j = depth - 1; j >= 0 && this.dirReal[curDir[j]!] === 0; j--) this.dirReal[curDir[j]!] = 1;
    let dir = depth > 0 ? curDir[depth - 1]! : 0;
    for (let i = depth > 0 ? curEnd[depth - 1]! + 1 : 0; i < len; ) {
      let j = i;
      while (j < len && buf[p + j] !== SLASH) j++;
      dir = this.childDir(dir, p + i, j - i, real);
      curDir.push(dir);
      curEnd.push(j);
      i = j + 1;
    }
    return dir;
  }

  /** Directory `parent`'s child directory named by bytes [at, at + len), made when missing (parent real when `real`). */
  private childDir(parent: number, at: number, len: number, real = true): number {
    if (len === 0) throw new NeedsMerge();
    const key = `${parent}/${this.buf.toString('latin1', at, at + len)}`;
    let d = this.dirKeys.get(key);
    if (d === undefined) {
      d = this.dirRec.length;
      this.dirKeys.set(key, d);
      this.dirRec.push(-1);
      this.dirNameAt.push(at);
      this.dirNameLen.push(len);
      this.dirParent.push(parent);
      this.dirReal.push(real ? 1 : 0);
      this.dirKids.push(0);
      this.dirKids[parent]++;
      this.lastAt.push(0);
      this.lastLen.push(-1);
      this.childCount.push(0);
      this.append(parent, ~d, at, len);
    } else if (real) this.dirReal[d] = 1;
    return d;
  }
}

function grown(a: Int32Array): Int32Array {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

/** Bytewise order of two byte ranges of `buf`. */
export function compareBytes(buf: Buffer, aAt: number, aLen: number, bAt: number, bLen: number): number {
  return compareBytesOf(buf, aAt, aLen, buf, bAt, bLen);
}

/** Bytewise order of a byte range of `a` and one of `b`. */
export function compareBytesOf(a: Buffer, aAt: number, aLen: number, b: Buffer, bAt: number, bLen: number): number {
  for (let i = 0, m = Math.min(aLen, bLen); i < m; i++) {
    const x = a[aAt + i]!;
    const y = b[bAt + i]!;
    if (x !== y) return x - y;
  }
  return aLen - bLen;
}
