/**
 * Parent paths through symlinks of the same layer. An entry below a symlink that an earlier entry of
 * its layer created (pnpm's `node_modules/x -> ../.pnpm/…/x`, then `node_modules/x/src/a.js`) is
 * written into the symlink's target, as extracting the layer in order into an empty directory does:
 * that is what Docker's and containerd's overlayfs snapshotters do (each layer is applied into its own
 * upper directory, following only that layer's symlinks, confined to it), and GNU tar and umoci agree
 * for symlinks of the same layer. Resolution is confined like ContainerFS's: absolute targets start at
 * the image root, `..` stops at the root, more than 40 symlinks is an error. Symlinks of lower layers
 * are not followed here: the merge lets an upper directory replace them, as overlayfs shows.
 * Paths are the builder's latin1 keys (one char per byte).
 */
import { ErrorCode, VmimgError } from '../errors.js';

/** Symlinks followed for one entry's parent path before it is refused (Linux's MAXSYMLINKS). */
export const MAX_PARENT_SYMLINKS = 40;

/** A trie holding only the layer's symlinks and the directories above them. */
interface Node {
  children?: Map<string, Node>;
  /** Set while the path is a symlink: its target (latin1). */
  target?: string;
}

export type EntryKind = 'symlink' | 'dir' | 'other';

export class LayerSymlinks {
  private readonly root: Node = {};
  private any = false;

  /** Records what the entry at `key` (parents already resolved) now is. */
  set(key: string, kind: EntryKind, target = ''): void {
    if (key === '' || (!this.any && kind !== 'symlink')) return;
    let node = this.root;
    for (const name of key.split('/')) {
      let next = node.children?.get(name);
      if (next === undefined) {
        if (kind !== 'symlink') return; // not below any symlink's path: nothing recorded to change
        node.children ??= new Map();
        node.children.set(name, (next = {}));
      }
      node = next;
    }
    if (kind === 'symlink') {
      this.any = true;
      node.target = target;
      delete node.children; // a directory the symlink replaced is gone, with whatever was below it
    } else {
      delete node.target;
      if (kind === 'other') delete node.children;
    }
  }

  /**
   * `key` with its parent directories resolved through the layer's symlinks (the last component is
   * kept as is: an entry replaces a symlink at its own name). Unchanged when no symlink is on the way.
   */
  resolveParent(key: string): string {
    const slash = key.lastIndexOf('/');
    if (!this.any || slash < 0) return key;
    const pending = key.slice(0, slash).split('/').reverse(); // popped from the end: next component last
    const out: string[] = [];
    const nodes: (Node | undefined)[] = [this.root];
    let hops = 0;
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (name === '' || name === '.') continue;
      if (name === '..') {
        if (out.length > 0) out.pop(), nodes.pop();
        continue;
      }
      const node = nodes[nodes.length - 1]?.children?.get(name);
      if (node?.target === undefined) {
        if (node === undefined && hops === 0) return key; // off the trie before any symlink: nothing to follow
        out.push(name);
        nodes.push(node);
        continue;
      }
      if (++hops > MAX_PARENT_SYMLINKS) {
        throw new VmimgError(ErrorCode.INVALID_LAYER, `entry ${JSON.stringify(key)}: its parent path passes through more than ${MAX_PARENT_SYMLINKS} symlinks`);
      }
      if (node.target.startsWith('/')) {
        out.length = 0;
        nodes.length = 1;
      }
      const parts = node.target.split('/');
      for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i]!);
    }
    const parent = out.join('/');
    const base = key.slice(slash + 1);
    return parent === '' ? base : `${parent}/${base}`;
  }
}
