/**
 * One layer's scanned records (direct-scan.ts) laid out as a tree of its own: every directory's
 * children in one array, each directory's slice sorted by name bytes, its whiteouts beside them, sorted
 * too. The stack merge (stack-merge.ts) walks these trees, one per layer position, and looks names up
 * in them without a string per entry. A child is a record number (>= 0) or ~directory.
 */
import type { LayerScan } from './direct-scan.js';
import { compareBytes, compareBytesOf, NeedsMerge } from './scan-dirs.js';
import type { RecordEntries } from './layer-entries.js';

const SLASH = 47;
/** What `kid` answers for a name a directory does not have. */
export const ABSENT = 0x7fffffff;
/** No events: made once (a construct right after the layout's loop, never run before, sent its optimised code back to the interpreter). */
const NONE = new Int32Array(0);

export class ScanTree {
  readonly buf: Buffer;
  /** Directory d's children are kids[childStart[d] .. childStart[d + 1]), sorted by name bytes. */
  readonly kids: Int32Array;
  readonly childStart: Uint32Array;
  /** Directories with a ghost child (a directory that holds whiteouts only). */
  readonly ghostParents = new Set<number>();
  /** Whiteouts sorted by (directory, name bytes): directory d's are wo[woStart.get(d)[0] .. [1]). */
  private readonly wo: number[];
  private readonly woStart = new Map<number, [number, number]>();

  /** Lays out `s` (consumes its child events); NeedsMerge when one name is twice in a directory. */
  constructor(
    readonly s: LayerScan,
    readonly entries: RecordEntries,
  ) {
    this.buf = s.buf;
    const dirs = s.dirRec.length;
    const { events, runs, runCount, eventCount } = s;
    const start = new Uint32Array(dirs + 1);
    for (let d = 0; d < dirs; d++) start[d + 1] = start[d]! + s.childCount[d]!;
    const kids = new Int32Array(eventCount);
    layOut(kids, start.slice(0, dirs), events, runs, runCount, eventCount);
    s.events = s.runs = NONE; // done with them
    this.kids = kids;
    this.childStart = start;
    for (const d of s.unsorted) this.sortChildren(start[d]!, start[d + 1]!);
    for (let d = 1; d < dirs; d++) if (s.dirReal[d] === 0) this.ghostParents.add(s.dirParent[d]!);
    this.wo = this.sortWhiteouts();
  }

  /** Whether directory d is made by an entry of the layer (not a ghost). */
  real(d: number): boolean {
    return this.s.dirReal[d] === 1;
  }

  /** Where child `v`'s name bytes start, and how many there are. */
  at(v: number): number {
    return v >= 0 ? this.s.nameAt[v]! : this.s.dirNameAt[~v]!;
  }

  len(v: number): number {
    return v >= 0 ? this.s.nameLen[v]! : this.s.dirNameLen[~v]!;
  }

  /** Directory d's whiteouts as [from, to) of `whiteoutAt`/`whiteoutLen` positions in sorted order, or undefined. */
  whiteouts(d: number): [number, number] | undefined {
    return this.woStart.get(d);
  }

  /** The number of the k-th whiteout in sorted order (an index into the scan's whiteout arrays). */
  whiteout(k: number): number {
    return this.wo[k]!;
  }

  /** Sorts kids[from, to) by name bytes; two equal names mean the merge must judge. */
  private sortChildren(from: number, to: number): void {
    const slice = Array.from(this.kids.subarray(from, to)).sort((a, b) => this.compare(a, b));
    for (let k = 1; k < slice.length; k++) if (this.compare(slice[k - 1]!, slice[k]!) === 0) throw new NeedsMerge();
    this.kids.set(slice, from);
  }

  private compare(a: number, b: number): number {
    return compareBytes(this.buf, this.at(a), this.len(a), this.at(b), this.len(b));
  }

  private sortWhiteouts(): number[] {
    const { whiteoutDir, whiteoutAt, whiteoutLen } = this.s;
    const order = whiteoutDir.map((_, k) => k);
    if (order.length === 0) return order;
    order.sort((a, b) => whiteoutDir[a]! - whiteoutDir[b]! || compareBytes(this.buf, whiteoutAt[a]!, whiteoutLen[a]!, whiteoutAt[b]!, whiteoutLen[b]!));
    for (let k = 0; k < order.length; ) {
      const d = whiteoutDir[order[k]!]!;
      let e = k + 1;
      while (e < order.length && whiteoutDir[order[e]!] === d) e++;
      this.woStart.set(d, [k, e]);
      k = e;
    }
    return order;
  }

  /** Directory `dir`'s child named by `src` bytes [at, at + len) (a record, or ~directory), or ABSENT. */
  kid(dir: number, src: Buffer, at: number, len: number): number {
    let lo = this.childStart[dir]!;
    let hi = this.childStart[dir + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.kids[mid]!;
      const c = compareBytesOf(this.buf, this.at(v), this.len(v), src, at, len);
      if (c === 0) return v;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return ABSENT;
  }

  /** Whether directory `dir` whites out the name `src` bytes [at, at + len). */
  hides(dir: number, src: Buffer, at: number, len: number): boolean {
    const range = this.woStart.get(dir);
    if (range === undefined) return false;
    const { whiteoutAt, whiteoutLen } = this.s;
    let lo = range[0];
    let hi = range[1] - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const w = this.wo[mid]!;
      const c = compareBytesOf(this.buf, whiteoutAt[w]!, whiteoutLen[w]!, src, at, len);
      if (c === 0) return true;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  /** The child at path bytes [p, p + len) of `src` in this layer's own tree (a record, ~directory), or ABSENT. */
  find(src: Buffer, p: number, len: number): number {
    let dir = 0;
    for (let i = p, end = p + len; ; ) {
      let j = i;
      while (j < end && src[j] !== SLASH) j++;
      const v = this.kid(dir, src, i, j - i);
      if (j >= end || v === ABSENT) return v;
      if (v >= 0) return ABSENT; // a record is no directory
      dir = ~v;
      i = j + 1;
    }
  }
}

/**
 * Counting sort's last step, a run of one directory's children at a time: run r (events from runs[2r],
 * of directory runs[2r + 1]) to kids[fill[its directory]...], fill advanced. Long runs (a directory's files:
 * nearly all events) are native copies; a small function either way, soon compiled by TurboFan.
 */
function layOut(kids: Int32Array, fill: Uint32Array, events: Int32Array, runs: Int32Array, runCount: number, count: number): void {
  for (let r = 0; r < runCount; r++) {
    const from = runs[2 * r]!;
    const to = r + 1 < runCount ? runs[2 * r + 2]! : count;
    const d = runs[2 * r + 1]!;
    const at = fill[d]!;
    if (to - from > 16) kids.set(events.subarray(from, to), at);
    else for (let k = from; k < to; k++) kids[at + k - from] = events[k]!;
    fill[d] = at + to - from;
  }
}
