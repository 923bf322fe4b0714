/**
 * The one pass over a single layer's `.idx` records that direct-pack.ts builds on: each record's name
 * bytes, the directories (keyed by parent and name, implicit ones made on the way), every child in
 * order of appearance with the directory holding it, and which directories got their children out of
 * name order. Throws NeedsMerge on what only the merge may judge (one name twice in a directory, an
 * empty name).
 */
import { EntryType } from '../layer/entry.js';
import { ENTRY_FIXED_SIZE, R_SHA256 } from '../layer/index-records.js';
import type { RecordEntries } from './layer-entries.js';

const SLASH = 47;

/** Thrown while packing when the layer needs the general merge. */
export class NeedsMerge extends Error {}

export class LayerScan {
  readonly buf: Buffer;
  readonly n: number;
  /** Per record: its name's bytes (records that are children: not markers, directories or the root). */
  readonly nameAt: Uint32Array;
  readonly nameLen: Uint16Array;
  /** Per directory (0 = root): its record (-1: implicit) and name bytes; keyed by `${parent}/${latin1 name}`. */
  readonly dirRec: number[] = [-1];
  readonly dirNameAt: number[] = [0];
  readonly dirNameLen: number[] = [0];
  readonly dirKeys = new Map<string, number>();
  /** Directories whose children came out of name order. */
  readonly unsorted = new Set<number>();
  /** Children in the order they appeared (a record number, or ~dir) and the directory holding each. */
  events: Int32Array;
  eventParent: Int32Array;
  eventCount = 0;
  /** Records that are inodes of their own (not directories, not hardlinks), and the hardlink records. */
  leaves = 0;
  readonly hardlinks: number[] = [];
  /** Per directory: the name bytes of its last child so far (length -1: none yet). */
  private readonly lastAt: number[] = [0];
  private readonly lastLen: number[] = [-1];
  /** Per directory: how many children it has. */
  readonly childCount: number[] = [0];

  constructor(readonly entries: RecordEntries) {
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
    this.childCount[dir]++;
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
      this.childCount.push(0);
      this.append(parent, ~d, at, len);
    }
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
  for (let i = 0, m = Math.min(aLen, bLen); i < m; i++) {
    const x = buf[aAt + i]!;
    const y = buf[bAt + i]!;
    if (x !== y) return x - y;
  }
  return aLen - bLen;
}
