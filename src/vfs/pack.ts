/**
 * Packing a merge tree (merge.ts) into an InodeTable, and back (for stacking layers on a ContainerFS).
 * Inode numbers are breadth-first in sorted name order, so equal trees get equal numbers.
 */
import { MNode, type Child, type LeafTable } from './merge.js';
import { compareNames, IMPLICIT_DIR_MODE, InodeTable, StringNames } from './tree.js';
import type { LayerEntries } from './layer-entries.js';

const SURROGATE = /[\ud800-\udfff]/;

/** Bytewise order; the built-in (UTF-16) sort agrees unless a name has surrogates. */
function sortNames(names: string[]): string[] {
  return names.some((n) => SURROGATE.test(n)) ? names.sort(compareNames) : names.sort();
}

/** Stands in for a directory's children once packed: the tree is thrown away after packing, its maps first. */
const PACKED = new Map<string, Child>();

/**
 * Packs a merged tree. `leaves` resolves the leaf numbers the merge left in place of nodes; `sources`
 * are the entries of every layer position the nodes name. Consumes the tree.
 */
export function packTree(root: MNode, leaves: LeafTable | undefined, sources: readonly LayerEntries[]): InodeTable {
  const dirents = countDirents(root);
  const order: Child[] = [root];
  const names: string[] = [];
  // Typed, sized once: number[]s grown by push held ~1.5x their size in copies at 1 M entries.
  const kidIno = new Uint32Array(dirents);
  const starts = new Uint32Array(dirents + 2); // by position in `order` (at most dirents + 1): first dirent
  root.ino = 1;
  for (let q = 0; q < order.length; q++) {
    const node = order[q]!;
    starts[q] = names.length;
    if (typeof node === 'number' || node.children === null) continue;
    for (const name of sortNames([...node.children.keys()])) {
      const child = node.children.get(name)!;
      const d = names.push(name) - 1;
      if (typeof child === 'number') {
        order.push(child); // a leaf has one name
        kidIno[d] = order.length;
        continue;
      }
      child.links++;
      if (child.ino === 0) {
        order.push(child);
        child.ino = order.length;
      }
      kidIno[d] = child.ino;
    }
    node.children = PACKED; // still a directory; its map can go
  }
  starts[order.length] = names.length;
  const t = new InodeTable(order.length, new StringNames(names), sources);
  for (let q = 0; q < order.length; q++) {
    const node = order[q]!;
    const ino = q + 1;
    if (typeof node === 'number') {
      setInode(t, ino, leaves!.layerOf(node), leaves!.entryOf(node), 1);
      continue;
    }
    setInode(t, ino, node.src === null ? -1 : node.layer, node.idx, node.links);
    if (node.children === null) continue;
    const end = starts[q + 1]!;
    let subdirs = 0;
    t.dirStart[ino] = starts[q]!;
    t.dirCount[ino] = end - starts[q]!;
    for (let d = starts[q]!; d < end; d++) {
      const child = kidIno[d]!;
      t.direntIno[d] = child;
      const c = order[child - 1]!;
      if (typeof c === 'object' && c.children !== null) {
        subdirs++;
        t.parent[child] = ino;
        t.selfDirent[child] = d;
      }
    }
    t.nlink[ino] = 2 + subdirs;
  }
  t.parent[1] = 1;
  return t;
}

/** The number of names in all directories of the tree (directories are never hardlinked: each is reached once). */
function countDirents(root: MNode): number {
  let total = 0;
  const stack: MNode[] = [root];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    total += dir.children!.size;
    for (const child of dir.children!.values()) if (typeof child === 'object' && child.children !== null) stack.push(child);
  }
  return total;
}

function setInode(t: InodeTable, ino: number, layer: number, entry: number, links: number): void {
  t.layer[ino] = layer;
  t.entry[ino] = entry;
  t.nlink[ino] = links;
  t.mode[ino] = layer < 0 ? IMPLICIT_DIR_MODE : t.sources[layer]!.mode(entry);
}

/** Rebuilds a merge tree from a packed one (for stacking more layers on a ContainerFS). */
export function unpackTree(t: InodeTable): MNode {
  const nodes = new Array<MNode | undefined>(t.count + 1);
  const make = (ino: number): MNode => {
    let n = nodes[ino];
    if (n !== undefined) return n;
    n = new MNode(t.isDir(ino));
    const layer = t.layer[ino]!;
    if (layer >= 0) {
      n.src = t.sources[layer]!;
      n.idx = t.entry[ino]!;
      n.layer = layer;
    }
    nodes[ino] = n;
    return n;
  };
  for (let ino = 1; ino <= t.count; ino++) {
    if (!t.isDir(ino)) continue;
    const dir = make(ino);
    const end = t.dirStart[ino]! + t.dirCount[ino]!;
    for (let i = t.dirStart[ino]!; i < end; i++) dir.children!.set(t.name(i), make(t.direntIno[i]!));
  }
  return make(1);
}
