/**
 * The layers of an image merged from their scanned trees (scan-tree.ts), top-down, without a string,
 * map or object per entry: the merge's rules (merge.ts) applied per name, as overlayfs looks names up.
 * A merged directory is a chain of the layers' directories at its path, top first: it stops below a
 * whiteout of the name or a non-directory, and an opaque directory cuts the children of those below it
 * (their metadata still counts). A ghost (a directory that only holds a layer's whiteouts) carries those
 * whiteouts down the chain but makes no directory. A name's items, top first, decide what it is: the
 * topmost non-directory unless a real directory came first; any directories above it chain.
 * Directories are visited breadth-first in name order, so the order they are made in is the order of
 * their inode numbers (direct-pack.ts numbers them). A directory whose children come from one layer
 * directory alone (most of them) keeps that layer's sorted slice as its dirents; the others' children
 * are merged by name (a heap over the layers' sorted slices) into `ovPos`/`ovKid`.
 */
import { compareBytesOf } from './scan-dirs.js';
import { ABSENT, type ScanTree } from './scan-tree.js';
import type { StackLinks } from './stack-links.js';

/** An Int32Array that grows. */
export class Grow {
  a: Int32Array;
  n = 0;

  constructor(capacity = 16) {
    this.a = new Int32Array(capacity);
  }

  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
}

/** One layer directory's sorted children (kind 0) or whiteouts (kind 1) in the name merge of a directory. */
interface Stream {
  tree: ScanTree;
  pos: number;
  /** The directory's place in the chain (0: top). */
  i: number;
  kind: 0 | 1;
  k: number;
  end: number;
  /** The current item: a child (record or ~directory) and its name bytes. */
  v: number;
  at: number;
  len: number;
}

export class StackMerge {
  /** Chain elements of all merged directories: layer position and directory number. */
  readonly chainPos = new Grow();
  readonly chainDir = new Grow();
  /** Per merged directory, breadth-first: where its chain starts, its dirents, and the position whose slice they are (-1: merged). */
  readonly mChain = new Grow();
  readonly mStart = new Grow();
  readonly mCount = new Grow();
  readonly mPos = new Grow();
  /** Dirents of merged directories whose children come from several layer directories: position and child. */
  readonly ovPos = new Grow();
  readonly ovKid = new Grow();
  /** Where each position's kids start in the dirent numbers, then their total: the dirents past it are the merged ones. */
  readonly kidBase: number[] = [];
  readonly kidsTotal: number;
  /** Non-directory inodes of the tree (each reached by one name or more). */
  private leaves = 0;
  // one name's decision (see take)
  private real = false;
  private stopped = false;
  private recPos = -1;
  private recKid = 0;

  /** `trees`: each layer position's tree, bottom first; `links`: their hardlinks, resolved. */
  constructor(
    readonly trees: readonly ScanTree[],
    private readonly links: StackLinks,
  ) {
    let total = 0;
    for (const t of trees) {
      this.kidBase.push(total);
      total += t.kids.length;
    }
    this.kidBase.push(total);
    this.kidsTotal = total;
  }

  /** Merges the whole tree, breadth-first. */
  run(): void {
    this.mChain.push(0);
    for (let pos = this.trees.length - 1; pos >= 0; pos--) this.pushElement(pos, 0);
    for (let m = 0; m < this.mChain.n; m++) this.visit(m);
  }

  /** Inodes the tree has (after run): its directories and the rest. */
  get inodes(): number {
    return this.mChain.n + this.leaves;
  }

  /** The chain of merged directory m: [from, to) of chainPos/chainDir. */
  chain(m: number): [number, number] {
    return [this.mChain.a[m]!, m + 1 < this.mChain.n ? this.mChain.a[m + 1]! : this.chainPos.n];
  }

  /** Whether merged directory m, whose dirents are a layer directory's slice (mPos >= 0), holds files only. */
  filesOnly(m: number): boolean {
    return this.trees[this.mPos.a[m]!]!.s.dirKids[this.chainDir.a[this.mChain.a[m]!]!] === 0;
  }

  private pushElement(pos: number, d: number): void {
    this.chainPos.push(pos);
    this.chainDir.push(d);
  }

  /** Lays out merged directory m's children; directories among them are queued. */
  private visit(m: number): void {
    const [from, to] = this.chain(m);
    let cut = from;
    while (cut < to - 1 && !this.opaqueAt(cut)) cut++; // the children come from [from, cut]
    const pos = this.chainPos.a[from]!;
    const d = this.chainDir.a[from]!;
    const tree = this.trees[pos]!;
    if (cut === from && !tree.ghostParents.has(d)) return this.slice(m, pos, tree, d);
    this.mStart.push(this.kidsTotal + this.ovPos.n);
    this.mPos.push(-1);
    this.mergeNames(from, cut);
    this.mCount.push(this.kidsTotal + this.ovPos.n - this.mStart.a[m]!);
  }

  private opaqueAt(c: number): boolean {
    const tree = this.trees[this.chainPos.a[c]!]!;
    const d = this.chainDir.a[c]!;
    return tree.real(d) && tree.s.opaque.has(d);
  }

  /** Directory m's children are layer directory d's, all real: its slice is the dirents. */
  private slice(m: number, pos: number, tree: ScanTree, d: number): void {
    const from = tree.childStart[d]!;
    const to = tree.childStart[d + 1]!;
    this.mStart.push(this.kidBase[pos]! + from);
    this.mCount.push(to - from);
    this.mPos.push(pos);
    const { kids } = tree;
    const plain = !this.links.involves(pos);
    if (plain && tree.s.dirKids[d] === 0) {
      this.leaves += to - from; // files only (most entries sit in such directories): no loop over them
      return;
    }
    for (let k = from; k < to; k++) {
      const v = kids[k]!;
      if (v < 0) {
        this.mChain.push(this.chainPos.n);
        this.pushElement(pos, ~v);
      } else if (plain) this.leaves++;
      else this.countLeaf(pos, v);
    }
  }

  /** One more inode unless a hardlink's inode was counted already. */
  private countLeaf(pos: number, v: number): void {
    if (this.links.firstName(pos, v)) this.leaves++;
  }

  /** The children of chain elements [from, cut] merged by name, each name decided by `take`. */
  private mergeNames(from: number, cut: number): void {
    const heap: Stream[] = [];
    for (let c = from; c <= cut; c++) {
      const pos = this.chainPos.a[c]!;
      const tree = this.trees[pos]!;
      const d = this.chainDir.a[c]!;
      const kids: Stream = { tree, pos, i: c - from, kind: 0, k: tree.childStart[d]!, end: tree.childStart[d + 1]!, v: 0, at: 0, len: 0 };
      if (load(kids)) heap.push(kids);
      const wo = tree.whiteouts(d);
      const outs: Stream | undefined = wo && { tree, pos, i: c - from, kind: 1, k: wo[0], end: wo[1], v: 0, at: 0, len: 0 };
      if (outs !== undefined && load(outs)) heap.push(outs);
    }
    for (let k = (heap.length >> 1) - 1; k >= 0; k--) siftDown(heap, k);
    while (heap.length > 0) {
      const first = heap[0]!;
      const { tree, at, len } = first;
      this.begin();
      do {
        const s = heap[0]!;
        if (!this.stopped) this.take(s.pos, s.kind === 0 ? s.v : ABSENT, s.kind === 1);
        s.k++;
        if (load(s)) siftDown(heap, 0);
        else {
          heap[0] = heap[heap.length - 1]!;
          heap.pop();
          if (heap.length > 0) siftDown(heap, 0);
        }
      } while (heap.length > 0 && compareBytesOf(heap[0]!.tree.buf, heap[0]!.at, heap[0]!.len, tree.buf, at, len) === 0);
      this.emit();
    }
  }

  private mark = 0;

  /** A new name: nothing decided, nothing chained. */
  private begin(): void {
    this.real = false;
    this.stopped = false;
    this.recPos = -1;
    this.mark = this.chainPos.n;
  }

  /**
   * The next item of the name, top-down: the child `v` of a layer directory at `pos` (ABSENT: none),
   * then whether that directory whites the name out (hiding it in the layers below only).
   */
  private take(pos: number, v: number, whiteout: boolean): void {
    if (v !== ABSENT) {
      if (v >= 0) {
        if (!this.real) {
          this.recPos = pos;
          this.recKid = v;
        }
        this.stopped = true; // a non-directory hides what is below it
        return;
      }
      this.pushElement(pos, ~v);
      if (this.trees[pos]!.real(~v)) this.real = true;
    }
    if (whiteout) this.stopped = true;
  }

  /** The decided name as a dirent (a directory queued), or nothing. */
  private emit(): void {
    if (this.real) {
      this.mChain.push(this.mark);
      this.ovPos.push(this.chainPos.a[this.mark]!);
      this.ovKid.push(~this.chainDir.a[this.mark]!);
      return;
    }
    this.chainPos.n = this.chainDir.n = this.mark; // ghosts only
    if (this.recPos < 0) return;
    this.ovPos.push(this.recPos);
    this.ovKid.push(this.recKid);
    this.countLeaf(this.recPos, this.recKid);
  }

  /**
   * What path bytes [p, p + len) of `src` name in the merge of positions below `top` (their whiteouts
   * applied, not those of `top`): [position, record], or undefined for a directory or nothing.
   */
  lookupBelow(top: number, src: Buffer, p: number, len: number): [number, number] | undefined {
    let chain: [number, number][] = [];
    for (let pos = top - 1; pos >= 0; pos--) chain.push([pos, 0]);
    const end = p + len;
    for (let i = p; ; ) {
      let j = i;
      while (j < end && src[j] !== 47) j++;
      this.begin();
      for (let c = 0; c < chain.length && !this.stopped; c++) {
        const [pos, d] = chain[c]!;
        const tree = this.trees[pos]!;
        this.take(pos, tree.kid(d, src, i, j - i), tree.hides(d, src, i, j - i));
        if (tree.real(d) && tree.s.opaque.has(d)) break; // the directories below give no children
      }
      const next: [number, number][] = [];
      for (let c = this.mark; c < this.chainPos.n; c++) next.push([this.chainPos.a[c]!, this.chainDir.a[c]!]);
      this.chainPos.n = this.chainDir.n = this.mark;
      if (j >= end) return !this.real && this.recPos >= 0 ? [this.recPos, this.recKid] : undefined;
      if (!this.real) return undefined;
      chain = next;
      i = j + 1;
    }
  }
}

/** Loads stream s's current item; false when it is exhausted. */
function load(s: Stream): boolean {
  if (s.k >= s.end) return false;
  const { tree } = s;
  if (s.kind === 0) {
    const v = tree.kids[s.k]!;
    s.v = v;
    s.at = tree.at(v);
    s.len = tree.len(v);
  } else {
    const w = tree.whiteout(s.k);
    s.at = tree.s.whiteoutAt[w]!;
    s.len = tree.s.whiteoutLen[w]!;
  }
  return true;
}

/** Name order, then top first, then a directory's child before its whiteout. */
function before(a: Stream, b: Stream): boolean {
  const c = compareBytesOf(a.tree.buf, a.at, a.len, b.tree.buf, b.at, b.len);
  if (c !== 0) return c < 0;
  return a.i !== b.i ? a.i < b.i : a.kind < b.kind;
}

function siftDown(heap: Stream[], k: number): void {
  const n = heap.length;
  const s = heap[k]!;
  for (;;) {
    let c = 2 * k + 1;
    if (c >= n) break;
    if (c + 1 < n && before(heap[c + 1]!, heap[c]!)) c++;
    if (!before(heap[c]!, s)) break;
    heap[k] = heap[c]!;
    k = c;
  }
  heap[k] = s;
}
