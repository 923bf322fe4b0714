/**
 * The one pass over a single layer's `.idx` records that direct-pack.ts builds on, fused with the
 * records' checks (scanIndex runs it in place of scanRecords): each record checked, then its name
 * bytes, the directories (keyed by parent and name, implicit ones made on the way), every child in
 * order of appearance with the directory holding it, and which directories got their children out of
 * name order. What only the merge may judge (one name twice in a directory, an empty name) ends the
 * directory work (`direct` false) but never the checks.
 */
import { EntryType, S_IFLNK } from '../layer/entry.js';
import { TYPE_BITS } from './layer-entries.js';
import { R_SHA256 } from '../layer/index-records.js';
import { scanRecords, viewOf, type RecordBounds, type RecordScanner } from '../layer/record-checks.js';

const SLASH = 47;
/** Records checked, then scanned, per turn (~85 KB of a typical index: they stay in the cache between the two loops). */
const CHUNK = 1024;

/** Thrown by the rare paths of the scan when the layer needs the general merge. */
export class NeedsMerge extends Error {}

export class LayerScan {
  buf: Buffer = Buffer.alloc(0);
  n = 0;
  /** Where each record starts (scanIndex's array) and the fixed record size of the index's version. */
  starts: Uint32Array = new Uint32Array(1);
  fixed = 72;
  /** False when the layer needs the merge (the pack must not use this scan). */
  direct = true;
  /** Per record: its name's bytes (records that are children: not markers, directories or the root). */
  nameAt: Uint32Array = new Uint32Array(0);
  nameLen: Uint16Array = new Uint16Array(0);
  /** Per leaf record: its st_mode as reported (16 bits hold it), taken while the record is in the cache. */
  mode: Uint16Array = new Uint16Array(0);
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
  private runDir = -1;
  /** The hardlink records. */
  readonly hardlinks: number[] = [];
  /** The scan's state between chunks (see scanDirect). */
  private view = viewOf(Buffer.alloc(0));
  private prevP = 0;
  private prevLen = 0;
  private prevS = -1;
  private prevDir = 0;
  private prevChild = false;
  /** Per directory: the name bytes of its last child so far (length -1: none yet). */
  private readonly lastAt: number[] = [0];
  private readonly lastLen: number[] = [-1];
  /** Per directory: how many children it has. */
  readonly childCount: number[] = [0];
  /** ensureDir's cursor: the path it resolved last starts at byte curP; per level, its directory and component end. */
  private curP = 0;
  private readonly curDir: number[] = [];
  private readonly curEnd: number[] = [];

  /** The records loop for scanIndex: checks as scanRecords does, and scans in the same pass. */
  readonly records: RecordScanner = (buf, at, count, b, starts) => this.scan(buf, at, count, b, starts);

  private scan(buf: Buffer, at: number, count: number, b: RecordBounds, starts: Uint32Array): number {
    this.buf = buf;
    this.n = count;
    this.starts = starts;
    this.fixed = b.version === 2 ? 72 : 64;
    this.nameAt = new Uint32Array(count);
    this.nameLen = new Uint16Array(count);
    this.mode = new Uint16Array(count);
    this.events = new Int32Array(Math.max(16, count + (count >> 3)));
    this.view = viewOf(buf);
    starts[0] = at;
    // Checked, then scanned, a chunk at a time: its records are still in the cache for the scan, and each
    // loop is small, so TurboFan's code for it (compiled on another thread while the loop runs unoptimised) comes early.
    for (let i = 0; i < count; ) {
      const to = Math.min(count, i + CHUNK);
      at = scanRecords(buf, at, to, b, starts, i);
      this.scanDirect(i, to);
      if (!this.direct) {
        // the rest is only checked; the merge needs none of this
        this.nameAt = new Uint32Array(0);
        this.nameLen = this.mode = new Uint16Array(0);
        this.events = this.runs = new Int32Array(0);
        return scanRecords(buf, at, count, b, starts, to);
      }
      i = to;
    }
    return at;
  }

  /**
   * Records [from, to) (checked: `starts` has them) scanned, in one flat loop. It runs once per open,
   * mostly before TurboFan's code for it arrives (a 100k-entry index: its first ~20k records), where every
   * bytecode counts: the state lives in locals (a field is a lookup there, and so is `EntryType.X`: types
   * are literals here), and the rare paths (directories, markers, giving up) are calls. Returns `to`, or
   * the record after the one that needs the merge (`direct` false).
   */
  private scanDirect(from: number, to: number): number {
    const { buf, view, starts, nameAt, nameLen, mode, fixed, lastAt, lastLen, childCount } = this;
    // The previous record's path bytes, its last slash (-1: none), its directory, and whether it was that directory's last child.
    let { prevP, prevLen, prevS, prevDir, prevChild } = this;
    // this.events / eventCount, in locals between the calls that may append (dirAt, childDirAt, whiteout)
    let events = this.events;
    let n = this.eventCount;
    for (let i = from; i < to; i++) {
      if (prevChild) {
        // the files that follow in the same directory (nearly all records), by a loop of their own
        this.prevP = prevP;
        this.prevLen = prevLen;
        this.eventCount = n;
        i = this.sameDir(i, to, prevDir, prevS + 1);
        prevP = this.prevP;
        prevLen = this.prevLen;
        n = this.eventCount;
        if (i === to) break;
      }
      const rec = starts[i]!;
      const type = buf[rec]!;
      if (type === 8 /* Whiteout */) {
        this.eventCount = n;
        if (!this.whiteout(rec)) return this.giveUp(i);
        ({ events, eventCount: n } = this);
        prevChild = false; // a ghost directory may have become its directory's last child
        continue;
      }
      const p = rec + fixed + (buf[rec + 1]! & R_SHA256 ? 32 : 0);
      const len = buf[rec + 36]! | (buf[rec + 37]! << 8); // at most 65535 (checked)
      // The common prefix with the previous path says whether this record sits in the same directory:
      // when it covers the previous directory and its slash, and no slash follows, it does.
      const m = len < prevLen ? len : prevLen;
      let k = 0;
      while (k + 4 <= m && view.getUint32(p + k) === view.getUint32(prevP + k)) k += 4;
      while (k < m && buf[p + k] === buf[prevP + k]) k++;
      const afterPrev = k < m ? buf[p + k]! - buf[prevP + k]! : len - prevLen; // this path against the previous one
      let s = k > prevS ? k : len;
      while (s < len && buf[p + s] !== SLASH) s++;
      let dir = prevDir;
      if (s === len && k > prevS) s = prevS;
      else {
        s = len - 1;
        while (s >= 0 && buf[p + s] !== SLASH) s--;
        this.eventCount = n;
        dir = this.dirAt(p, s);
        if (dir < 0) return this.giveUp(i);
        ({ events, eventCount: n } = this);
      }
      const same = dir === prevDir && prevChild;
      prevP = p;
      prevLen = len;
      prevS = s;
      prevDir = dir;
      prevChild = false;
      if (type === 2 /* Dir */ || type === 9 /* Opaque */ || s === len - 1) {
        // a directory or marker (len 0: the root's), or an empty name
        this.eventCount = n;
        if (!this.notChild(i, type, dir, p, s, len)) return this.giveUp(i);
        ({ events, eventCount: n } = this);
        continue;
      }
      const nameStart = p + s + 1;
      const nl = len - s - 1;
      nameAt[i] = nameStart;
      nameLen[i] = nl;
      // Name order within the directory: against the previous record's name when it was the last child (the
      // common prefix already compared), else against the directory's last child.
      const c = same ? afterPrev : lastLen[dir]! < 0 ? 1 : compareBytes(buf, nameStart, nl, lastAt[dir]!, lastLen[dir]!);
      if (c === 0) return this.giveUp(i); // one name twice in a directory
      if (c < 0) this.unsorted.add(dir);
      if (n === events.length) {
        this.eventCount = n;
        this.grow();
        events = this.events;
      }
      if (dir !== this.runDir) this.openRun(dir, n);
      events[n++] = i;
      lastAt[dir] = nameStart;
      lastLen[dir] = nl;
      childCount[dir]++;
      prevChild = true;
      if (type === 4 /* Hardlink */) this.hardlinks.push(i);
      else mode[i] = type === 3 /* Symlink */ ? S_IFLNK | 0o777 : TYPE_BITS[type]! | (view.getUint16(rec + 4, true) & 0o7777); // as recordMode
    }
    this.eventCount = n;
    this.prevP = prevP;
    this.prevLen = prevLen;
    this.prevS = prevS;
    this.prevDir = prevDir;
    this.prevChild = prevChild;
    return to;
  }

  /**
   * Records [from, to) while each is a file-like child (no directory, marker or hardlink) of directory
   * `dir` (its path's first `dirLen` bytes are the directory's and a slash), the previous record being
   * one too: its name, mode and child event taken as scanDirect would. Returns the first record it did
   * not take (scanDirect decides that one). A loop of its own, and small: TurboFan's code for it comes
   * a few milliseconds into the scan, where the scan's whole loop would wait for that whole function.
   */
  private sameDir(from: number, to: number, dir: number, dirLen: number): number {
    const { buf, starts, fixed, nameAt, nameLen, mode, events } = this;
    let p0 = this.prevP;
    let len0 = this.prevLen;
    let n = this.eventCount;
    const cap = events.length;
    let unsorted = false;
    if (dir !== this.runDir) this.openRun(dir, n);
    let i = from;
    for (; i < to && n < cap; i++) {
      const rec = starts[i]!;
      const type = buf[rec]!;
      if (type === 2 /* Dir */ || type === 4 /* Hardlink */ || type >= 8 /* Whiteout, Opaque */) break;
      const p = rec + fixed + (buf[rec + 1]! & R_SHA256 ? 32 : 0);
      const len = buf[rec + 36]! | (buf[rec + 37]! << 8);
      if (len <= dirLen) break;
      let k = 0;
      while (k < dirLen && buf[p + k] === buf[p0 + k]) k++;
      if (k < dirLen) break; // another directory
      // the name against the previous one (which has no slash): their common part, then a slash after it?
      const m = len < len0 ? len : len0;
      while (k < m && buf[p + k] === buf[p0 + k]) k++;
      let s = k;
      while (s < len && buf[p + s] !== SLASH) s++;
      const c = k < m ? buf[p + k]! - buf[p0 + k]! : len - len0;
      if (s < len || c === 0) break; // deeper, or one name twice (scanDirect gives up on it)
      if (c < 0) unsorted = true;
      nameAt[i] = p + dirLen;
      nameLen[i] = len - dirLen;
      events[n++] = i;
      mode[i] = type === 3 /* Symlink */ ? S_IFLNK | 0o777 : TYPE_BITS[type]! | buf[rec + 4]! | ((buf[rec + 5]! & 0xf) << 8); // as recordMode
      p0 = p;
      len0 = len;
    }
    if (i > from) {
      this.childCount[dir] += n - this.eventCount;
      this.eventCount = n;
      this.prevP = p0;
      this.prevLen = len0;
      this.lastAt[dir] = p0 + dirLen;
      this.lastLen[dir] = len0 - dirLen;
      if (unsorted) this.unsorted.add(dir);
    }
    return i;
  }

  /**
   * Record i of `type` at path bytes [p, p + len), in directory `dir` (its last slash at s), when it is
   * no child: a directory, an opaque marker, the root (len 0), or an empty name. False when the merge must judge.
   */
  private notChild(i: number, type: number, dir: number, p: number, s: number, len: number): boolean {
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
  private whiteout(rec: number): boolean {
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

  /** Record i (checked) needs the merge: the records after it are only checked. */
  private giveUp(i: number): number {
    this.direct = false;
    return i + 1;
  }

  /** The directory at path bytes [p, p + s) (s < 0: the root), made with its missing ancestors; -1 when the merge must judge. */
  private dirAt(p: number, s: number): number {
    try {
      return s < 0 ? 0 : this.ensureDir(p, s);
    } catch (err) {
      if (err instanceof NeedsMerge) return -1;
      throw err;
    }
  }

  /** childDir, or -1 when the merge must judge. */
  private childDirAt(parent: number, at: number, len: number): number {
    try {
      return this.childDir(parent, at, len);
    } catch (err) {
      if (err instanceof NeedsMerge) return -1;
      throw err;
    }
  }

  private grow(): void {
    this.events = grown(this.events);
  }

  /** Directory `dir`'s children start a run at event n. */
  private openRun(dir: number, n: number): void {
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
