/**
 * Hardlinks of a stack of scanned layers (stack-merge.ts), as the merge resolves them (merge.ts): a
 * hardlink is the inode of its origin, the record (not a hardlink) that first held it. One naming an
 * earlier record of its own layer shares that record's origin; one flagged as a link to the lower
 * layers (or naming nothing in its layer) shares the origin of the file at that path in the merge of
 * the layers below, before its own layer's whiteouts, with a warning. Anything else (a directory, a
 * later record, nothing anywhere) is left to the merge (NeedsMerge), which refuses or decides it.
 * Origins are numbered across positions: position p's record r is recBase[p] + r.
 */
import { pathStart, r32, R_LINK, R_LOWER_LINK } from '../layer/index-records.js';
import { NeedsMerge } from './scan-dirs.js';
import { LinkWarnings } from './merge.js';
import { ABSENT, type ScanTree } from './scan-tree.js';
import type { StackMerge } from './stack-merge.js';

export class StackLinks {
  /** Each position's first origin number, then the total. */
  readonly recBase: number[] = [];
  readonly warnings = new LinkWarnings();
  /** Per position: hardlink record → its origin. */
  private readonly origin: (Map<number, number> | undefined)[];
  /** Origins that hardlinks name (more than one name may reach them), and the positions holding them. */
  private readonly shared = new Set<number>();
  private readonly sharedAt = new Set<number>();
  /** Shared origins counted by firstName. */
  private readonly counted = new Set<number>();

  constructor(private readonly trees: readonly ScanTree[]) {
    let total = 0;
    for (const t of trees) {
      this.recBase.push(total);
      total += t.entries.count;
    }
    this.recBase.push(total);
    this.origin = trees.map(() => undefined);
  }

  /** Resolves every position's hardlinks, bottom first (a lower link needs the positions below resolved). */
  resolve(merge: StackMerge): void {
    this.trees.forEach((tree, pos) => {
      for (const r of tree.s.hardlinks) this.resolveOne(merge, tree, pos, r);
    });
  }

  private resolveOne(merge: StackMerge, tree: ScanTree, pos: number, r: number): void {
    const { buf, starts, version } = tree.entries;
    const at = starts[r]!;
    const flags = buf[at + 1]!;
    if (!(flags & R_LINK)) throw new NeedsMerge();
    const p = pathStart(buf, at, version) + r32(buf, at + 36);
    const len = r32(buf, at + 56);
    let o: number | undefined;
    if (version === 1 || !(flags & R_LOWER_LINK)) {
      const v = tree.find(buf, p, len);
      if (v !== ABSENT) {
        if (v < 0 || v >= r) throw new NeedsMerge(); // a directory, or a later record: the merge judges
        o = this.originOf(pos, v);
      }
    }
    if (o === undefined) {
      const below = merge.lookupBelow(pos, buf, p, len);
      if (below === undefined) throw new NeedsMerge();
      o = this.originOf(below[0], below[1]);
    }
    let map = this.origin[pos];
    if (map === undefined) this.origin[pos] = map = new Map();
    map.set(r, o);
    this.shared.add(o);
    const [op] = this.positionOf(o);
    this.sharedAt.add(op);
    if (op !== pos) this.warnings.add(pos, tree.entries.path(r), tree.entries.linkTarget(r), op);
  }

  /** Whether position `pos` has hardlinks or records they name (its records need originOf). */
  involves(pos: number): boolean {
    return this.origin[pos] !== undefined || this.sharedAt.has(pos);
  }

  /** The origin of record r of position pos. */
  originOf(pos: number, r: number): number {
    return this.origin[pos]?.get(r) ?? this.recBase[pos]! + r;
  }

  /** Whether origin `o` may be reached by several names. */
  isShared(o: number): boolean {
    return this.shared.has(o);
  }

  /** Whether record r of pos is the first name met of its inode (counting inodes). */
  firstName(pos: number, r: number): boolean {
    const o = this.originOf(pos, r);
    if (!this.shared.has(o)) return true;
    if (this.counted.has(o)) return false;
    this.counted.add(o);
    return true;
  }

  /** [position, record] of origin o. */
  positionOf(o: number): [number, number] {
    const pos = rangeOf(this.recBase, o);
    return [pos, o - this.recBase[pos]!];
  }
}

/**
 * The position whose range holds number n: `bases` gives each position's first number and ends with
 * the total (so position p holds [bases[p], bases[p + 1]); an empty one holds nothing).
 */
export function rangeOf(bases: readonly number[], n: number): number {
  let lo = 0;
  let hi = bases.length - 1; // n < the total: the last base at or before n is a non-empty position's
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (bases[mid]! <= n) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
