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
import { EntryType, type IndexEntry } from '../layer/entry.js';
import type { InodeTable } from './tree.js';

/** The metadata fields ContainerFS needs from an index entry. */
export type NodeMeta = Pick<
  IndexEntry,
  'type' | 'mode' | 'uid' | 'gid' | 'mtimeSec' | 'mtimeNsec' | 'size' | 'offset' | 'sha256' | 'devMajor' | 'devMinor' | 'linkTarget' | 'xattrs'
>;

export class MNode {
  /** Entry metadata; null for an implicit directory or a node copied from a base table. */
  meta: NodeMeta | null = null;
  /** When copied from a base ContainerFS: its table and inode. */
  src: InodeTable | null = null;
  srcIno = 0;
  /** Index of the layer holding the content (-1: none). */
  layer = -1;
  /** Non-null exactly for directories. */
  children: Map<string, MNode> | null;
  /** Assigned when packing. */
  ino = 0;
  links = 0;

  constructor(isDir: boolean) {
    this.children = isDir ? new Map() : null;
  }
}

function leaf(meta: NodeMeta, layer: number): MNode {
  const n = new MNode(false);
  n.meta = meta;
  n.layer = layer;
  return n;
}

/** Warnings kept per merge (one per hardlink to a lower layer); the rest are counted. */
const MAX_WARNINGS = 100;

export class Merger {
  readonly root: MNode;
  private readonly warnings: string[] = [];
  private unshownWarnings = 0;
  /** Per layer: hardlink target → the node it names now (lower layers' node, then this layer's). */
  private linkTargets: Map<string, MNode | undefined> | null = null;
  // Parent-directory cache for pass 2: tar entries come grouped by directory.
  private cachedPath: string | null = null;
  private cachedDir: MNode | null = null;

  constructor(root?: MNode) {
    this.root = root ?? new MNode(true);
  }

  applyLayer(entries: readonly IndexEntry[], layer: number): void {
    this.linkTargets = null;
    for (const e of entries) {
      if (e.type !== EntryType.Hardlink || e.linkTarget === undefined) continue;
      this.linkTargets ??= new Map();
      if (!this.linkTargets.has(e.linkTarget)) this.linkTargets.set(e.linkTarget, this.find(e.linkTarget));
    }
    for (const e of entries) {
      if (e.type === EntryType.Whiteout) this.whiteout(e.path);
      else if (e.type === EntryType.Opaque) this.opaque(e.path);
    }
    this.cachedPath = null;
    for (const e of entries) this.add(e, layer);
    this.cachedPath = null;
    this.linkTargets = null;
  }

  /** Things a user should know about the merged image (hardlinks to lower layers' files), at most ~100. */
  allWarnings(): string[] {
    return this.unshownWarnings === 0 ? this.warnings : [...this.warnings, `... and ${this.unshownWarnings} more hardlinks to lower layers`];
  }

  /** The node at a root-relative path, walking real directories only (no symlinks). */
  find(path: string): MNode | undefined {
    if (path === '') return this.root;
    let dir = this.root;
    let start = 0;
    for (;;) {
      const slash = path.indexOf('/', start);
      const name = slash < 0 ? path.slice(start) : path.slice(start, slash);
      const child = dir.children!.get(name);
      if (slash < 0 || child === undefined) return child;
      if (child.children === null) return undefined;
      dir = child;
      start = slash + 1;
    }
  }

  private whiteout(path: string): void {
    if (path === '') return;
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? this.root : this.find(path.slice(0, slash));
    parent?.children?.delete(path.slice(slash + 1));
  }

  private opaque(path: string): void {
    this.find(path)?.children?.clear();
  }

  private add(e: IndexEntry, layer: number): void {
    if (e.path === '') {
      if (e.type === EntryType.Dir) this.setDirMeta(this.root, e, layer);
      return;
    }
    if (e.type === EntryType.Opaque) {
      this.ensureDir(e.path); // the marker lives inside the directory, so the directory exists here
      return;
    }
    if (e.type === EntryType.Whiteout || e.type < EntryType.File || e.type > EntryType.Opaque) return;
    const slash = e.path.lastIndexOf('/');
    const parent = this.ensureDir(slash < 0 ? '' : e.path.slice(0, slash));
    const name = e.path.slice(slash + 1);
    const existing = parent.children!.get(name);
    let node: MNode;
    if (e.type === EntryType.Dir) {
      if (existing?.children) return this.setDirMeta(existing, e, layer);
      node = new MNode(true);
      this.setDirMeta(node, e, layer);
    } else if (e.type === EntryType.Hardlink) {
      node = this.hardlinkNode(e, layer);
    } else {
      node = leaf(e, layer);
    }
    if (existing?.children) this.cachedPath = null; // a directory (maybe the cached one) goes away
    parent.children!.set(name, node);
    if (this.linkTargets?.has(e.path)) this.linkTargets.set(e.path, node);
  }

  private hardlinkNode(e: IndexEntry, layer: number): MNode {
    const target = this.linkTargets?.get(e.linkTarget ?? '');
    const where = `layer ${layer + 1}: hardlink ${JSON.stringify(e.path)} names ${JSON.stringify(e.linkTarget)}`;
    if (target === undefined) throw new VmimgError(ErrorCode.INVALID_LAYER, `${where}, which is neither an earlier entry of its layer nor a file of a lower layer`);
    if (target.children !== null) throw new VmimgError(ErrorCode.INVALID_LAYER, `${where}, a directory`);
    if (target.layer !== layer) {
      if (this.warnings.length < MAX_WARNINGS) this.warnings.push(`${where}, a file of a lower layer (layer ${target.layer + 1}); linked to it`);
      else this.unshownWarnings++;
    }
    return target;
  }

  private setDirMeta(dir: MNode, e: IndexEntry, layer: number): void {
    dir.meta = e;
    dir.src = null;
    dir.layer = layer;
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
      if (child === undefined || child.children === null) {
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
