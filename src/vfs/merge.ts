/**
 * Merging layers into one tree, bottom layer first (OCI layer semantics, as overlayfs applies them).
 * Each layer is applied in two passes so that order inside a tar never matters:
 *  1. its whiteouts and opaque markers act on the tree built from the LOWER layers only;
 *  2. its other entries are added (later duplicates win, directories merge, non-directories replace).
 * Hardlinks: one naming an entry of its own layer (which the flattener puts before it) shares that
 * entry's node; one naming anything else shares the node of a lower layer's file at that name, as the
 * lower layers left it (before this layer's whiteouts), with a warning; a name found nowhere is refused.
 * The result is a throw-away object tree; tree.ts packs it into compact typed arrays.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { EntryType } from '../layer/entry.js';
import type { LayerEntries } from './layer-entries.js';

/**
 * A directory's child: a node, or — for a plain leaf of a layer (most entries) — just its number in
 * the merge's LeafTable, so a million files cost no million objects. A leaf becomes a node when a
 * hardlink must share it.
 */
export type Child = MNode | number;

export class MNode {
  /** Where the metadata comes from: a layer's entries (entry `idx`), or null for an implicit directory. */
  src: LayerEntries | null = null;
  idx = 0;
  /** Index of the layer holding the content (-1: none). */
  layer = -1;
  /** Non-null exactly for directories. */
  children: Map<string, Child> | null;
  /** Assigned when packing. */
  ino = 0;
  links = 0;

  constructor(isDir: boolean) {
    this.children = isDir ? new Map() : null;
  }
}

function leaf(entries: LayerEntries, i: number, layer: number): MNode {
  const n = new MNode(false);
  n.src = entries;
  n.idx = i;
  n.layer = layer;
  return n;
}

/** Numbers for leaves: each applied layer owns the range [base, base + count). Small integers only (V8 Smis). */
export class LeafTable {
  private readonly bases: number[] = [];
  private readonly layers: { entries: LayerEntries; layer: number }[] = [];
  private next = 0;

  /** The base number of an applied layer's leaves, or -1 when numbers ran out (its leaves are nodes then). */
  add(entries: LayerEntries, layer: number): number {
    if (this.next + entries.count >= 2 ** 30) return -1;
    this.bases.push(this.next);
    this.layers.push({ entries, layer });
    this.next += entries.count;
    return this.bases[this.bases.length - 1]!;
  }

  /** The layer and entry of leaf number `n`. */
  get(n: number): { entries: LayerEntries; layer: number; i: number } {
    const k = this.indexOf(n);
    return { ...this.layers[k]!, i: n - this.bases[k]! };
  }

  /** The layer position of leaf number `n`. */
  layerOf(n: number): number {
    return this.layers[this.indexOf(n)]!.layer;
  }

  /** The entry number of leaf number `n` in its layer. */
  entryOf(n: number): number {
    return n - this.bases[this.indexOf(n)]!;
  }

  node(n: number): MNode {
    const { entries, layer, i } = this.get(n);
    return leaf(entries, i, layer);
  }

  private indexOf(n: number): number {
    let lo = 0;
    let hi = this.bases.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.bases[mid]! <= n) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/** Warnings kept per merge (one per hardlink to a lower layer); the rest are counted. */
const MAX_WARNINGS = 100;

/** The merge's warnings: one line per hardlink linked to a lower layer's file, at most ~100. */
export class LinkWarnings {
  private readonly shown: string[] = [];
  private unshown = 0;

  /** Hardlink `path` of layer position `layer` names `target`, a file of layer position `lower`. */
  add(layer: number, path: string, target: string | undefined, lower: number): void {
    if (this.shown.length < MAX_WARNINGS) this.shown.push(`${linkWhere(layer, path, target)}, a file of a lower layer (layer ${lower + 1}); linked to it`);
    else this.unshown++;
  }

  all(): string[] {
    return this.unshown === 0 ? this.shown : [...this.shown, `... and ${this.unshown} more hardlinks to lower layers`];
  }
}

function linkWhere(layer: number, path: string, target: string | undefined): string {
  return `layer ${layer + 1}: hardlink ${JSON.stringify(path)} names ${JSON.stringify(target)}`;
}

export class Merger {
  readonly root: MNode;
  readonly leaves = new LeafTable();
  private base = -1;
  private readonly warnings = new LinkWarnings();
  /** Per layer: hardlink target → the node it names now (lower layers' node, then this layer's). */
  private linkTargets: Map<string, MNode | undefined> | null = null;
  /** Per layer: targets of hardlinks flagged as links to lower layers → the lower layers' node. */
  private lowerTargets: Map<string, MNode | undefined> | null = null;
  // Parent-directory cache for pass 2: tar entries come grouped by directory.
  private cachedPath: string | null = null;
  private cachedDir: MNode | null = null;

  constructor(root?: MNode) {
    this.root = root ?? new MNode(true);
  }

  applyLayer(entries: LayerEntries, layer: number): void {
    this.linkTargets = null;
    this.base = this.leaves.add(entries, layer);
    const n = entries.count;
    this.lowerTargets = null;
    for (let i = 0; i < n; i++) {
      const target = entries.type(i) === EntryType.Hardlink ? entries.linkTarget(i) : undefined;
      if (target === undefined) continue;
      if (entries.lowerLink(i) === true) {
        this.lowerTargets ??= new Map();
        if (!this.lowerTargets.has(target)) this.lowerTargets.set(target, this.find(target));
        continue;
      }
      this.linkTargets ??= new Map();
      if (!this.linkTargets.has(target)) this.linkTargets.set(target, this.find(target));
    }
    for (let i = 0; i < n; i++) {
      const type = entries.type(i);
      if (type === EntryType.Whiteout) this.whiteout(entries.path(i));
      else if (type === EntryType.Opaque) this.opaque(entries.path(i));
    }
    this.cachedPath = null;
    for (let i = 0; i < n; i++) this.add(entries, i, layer);
    this.cachedPath = null;
    this.linkTargets = null;
    this.lowerTargets = null;
  }

  /** Things a user should know about the merged image (hardlinks to lower layers' files), at most ~100. */
  allWarnings(): string[] {
    return this.warnings.all();
  }

  /** The node at a root-relative path, walking real directories only (no symlinks); a leaf found becomes a node. */
  find(path: string): MNode | undefined {
    if (path === '') return this.root;
    let dir = this.root;
    let start = 0;
    for (;;) {
      const slash = path.indexOf('/', start);
      const name = slash < 0 ? path.slice(start) : path.slice(start, slash);
      const child = dir.children!.get(name);
      if (child === undefined) return undefined;
      if (typeof child === 'number') {
        if (slash >= 0) return undefined;
        const node = this.leaves.node(child);
        dir.children!.set(name, node); // same position in the map: listing order is sorted later anyway
        return node;
      }
      if (slash < 0) return child;
      if (child.children === null) return undefined;
      dir = child;
      start = slash + 1;
    }
  }

  /** The directory at a root-relative path, or undefined. */
  private dirAt(path: string): MNode | undefined {
    const node = this.find(path);
    return node?.children === null ? undefined : node;
  }

  private whiteout(path: string): void {
    if (path === '') return;
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? this.root : this.dirAt(path.slice(0, slash));
    parent?.children!.delete(path.slice(slash + 1));
  }

  private opaque(path: string): void {
    this.dirAt(path)?.children!.clear();
  }

  private add(entries: LayerEntries, i: number, layer: number): void {
    const type = entries.type(i);
    if (type === EntryType.Whiteout || type < EntryType.File || type > EntryType.Opaque) return;
    const path = entries.path(i);
    if (path === '') {
      if (type === EntryType.Dir) this.setDirMeta(this.root, entries, i, layer);
      return;
    }
    if (type === EntryType.Opaque) {
      this.ensureDir(path); // the marker lives inside the directory, so the directory exists here
      return;
    }
    const slash = path.lastIndexOf('/');
    const parent = this.inCachedDir(path, slash) ? this.cachedDir! : this.ensureDir(slash < 0 ? '' : path.slice(0, slash));
    const name = path.slice(slash + 1);
    const existing = parent.children!.get(name);
    const existingDir = typeof existing === 'object' && existing.children !== null ? existing : undefined;
    const linked = this.linkTargets?.has(path) === true; // a later hardlink of this layer names it: a node
    let node: Child;
    if (type === EntryType.Dir) {
      if (existingDir) return this.setDirMeta(existingDir, entries, i, layer);
      node = new MNode(true);
      this.setDirMeta(node, entries, i, layer);
    } else if (type === EntryType.Hardlink) {
      node = this.hardlinkNode(path, entries.linkTarget(i), entries.lowerLink(i) === true, layer);
    } else {
      node = linked || this.base < 0 ? leaf(entries, i, layer) : this.base + i;
    }
    if (existingDir) this.cachedPath = null; // a directory (maybe the cached one) goes away
    parent.children!.set(name, node);
    if (linked) this.linkTargets!.set(path, node as MNode);
  }

  private hardlinkNode(path: string, linkTarget: string | undefined, lower: boolean, layer: number): MNode {
    const target = (lower ? this.lowerTargets : this.linkTargets)?.get(linkTarget ?? '');
    const where = linkWhere(layer, path, linkTarget);
    if (target === undefined) throw new VmimgError(ErrorCode.INVALID_LAYER, `${where}, which is neither an earlier entry of its layer nor a file of a lower layer`);
    if (target.children !== null) throw new VmimgError(ErrorCode.INVALID_LAYER, `${where}, a directory`);
    if (target.layer !== layer) this.warnings.add(layer, path, linkTarget, target.layer);
    return target;
  }

  private setDirMeta(dir: MNode, entries: LayerEntries, i: number, layer: number): void {
    dir.src = entries;
    dir.idx = i;
    dir.layer = layer;
  }

  /** Whether `path`'s parent (ending at `slash`) is the cached directory: no parent string made per entry. */
  private inCachedDir(path: string, slash: number): boolean {
    const cached = this.cachedPath;
    return cached !== null && slash === cached.length && slash > 0 && path.startsWith(cached);
  }

  /** The directory at `path`, creating implicit directories and replacing non-directories on the way. */
  private ensureDir(path: string): MNode {
    if (path === '') return this.root;
    if (path === this.cachedPath) return this.cachedDir!;
    let dir = this.root;
    let start = 0;
    for (;;) {
      const slash = path.indexOf('/', start);
      const name = slash < 0 ? path.slice(start) : path.slice(start, slash);
      let child = dir.children!.get(name);
      if (typeof child !== 'object' || child.children === null) {
        child = new MNode(true);
        dir.children!.set(name, child);
      }
      dir = child;
      if (slash < 0) break;
      start = slash + 1;
    }
    this.cachedPath = path;
    this.cachedDir = dir;
    return dir;
  }
}
