/**
 * The one pass over a single layer's `.idx` records that direct-pack.ts builds on, fused with the
 * records' checks (scanIndex runs it in place of scanRecords): each record checked, then its name
 * bytes, the directories (keyed by parent and name, implicit ones made on the way), every child in
 * order of appearance with the directory holding it, and which directories got their children out of
 * name order. What only the merge may judge (one name twice in a directory, an empty name) ends the
 * directory work (`direct` false) but never the checks. This file is the hot loop over the records;
 * the directories, and the rare records it hands over, are scan-dirs.ts's.
 */
import { S_IFLNK } from '../layer/entry.js';
import { TYPE_BITS } from './layer-entries.js';
import { R_SHA256 } from '../layer/index-records.js';
import { scanRecords, viewOf, type RecordBounds, type RecordScanner } from '../layer/record-checks.js';
import { compareBytes, ScanDirs, SLASH } from './scan-dirs.js';

/** Records checked, then scanned, per turn (~85 KB of a typical index: they stay in the cache between the two loops). */
const CHUNK = 1024;

/** One layer's records scanned for the direct pack (see the file's comment). */
export class LayerScan extends ScanDirs {
  n = 0;
  /** Where each record starts (scanIndex's array); the fixed record size is ScanDirs' `fixed`. */
  starts: Uint32Array = new Uint32Array(1);
  /** False when the layer needs the merge (the pack must not use this scan). */
  direct = true;
  /** Per record: its name's bytes (records that are children: not markers, directories or the root). */
  nameAt: Uint32Array = new Uint32Array(0);
  nameLen: Uint16Array = new Uint16Array(0);
  /** Per leaf record: its st_mode as reported (16 bits hold it), taken while the record is in the cache. */
  mode: Uint16Array = new Uint16Array(0);
  /** The hardlink records. */
  readonly hardlinks: number[] = [];
  /** The scan's state between chunks (see scanDirect). */
  private view = viewOf(Buffer.alloc(0));
  private prevP = 0;
  private prevLen = 0;
  private prevS = -1;
  private prevDir = 0;
  private prevChild = false;
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

  /** Record i (checked) needs the merge: the records after it are only checked. */
  private giveUp(i: number): number {
    this.direct = false;
    return i + 1;
  }
}
