/**
 * Hardlink identity inside one layer. A tar hardlink is the inode its target name held when the
 * hardlink appeared, whatever later entries do to that name (what extracting the tar in order gives).
 * Entries are keyed by name, so when a name holding an inode is replaced, the inode must move: its
 * first hardlink takes it over and the others follow. Keys are the builder's latin1 paths.
 */
interface Group {
  /** The key holding the inode (a file, symlink, device or fifo entry). */
  key: string;
  /** Keys of the hardlinks to it, in tar order. */
  members: Set<string>;
}

export class HardlinkGroups {
  /** By the key holding the inode. */
  private readonly byInode = new Map<string, Group>();
  /** By hardlink key. */
  private readonly byLink = new Map<string, Group>();

  /** Records that hardlink `key` names the inode held by `inodeKey` (not itself a hardlink). */
  add(key: string, inodeKey: string): void {
    let group = this.byInode.get(inodeKey);
    if (group === undefined) this.byInode.set(inodeKey, (group = { key: inodeKey, members: new Set() }));
    group.members.add(key);
    this.byLink.set(key, group);
  }

  /** The key now holding the inode hardlink `key` names; undefined when `key` is not an in-layer hardlink. */
  inodeOf(key: string): string | undefined {
    return this.byLink.get(key)?.key;
  }

  /**
   * `key` is about to name something else. Returns the hardlink key that must take over the inode
   * `key` held (the first hardlink to it), or undefined when nothing links to it.
   */
  release(key: string): string | undefined {
    const mine = this.byLink.get(key);
    if (mine !== undefined) {
      mine.members.delete(key);
      this.byLink.delete(key);
    }
    const group = this.byInode.get(key);
    if (group === undefined) return undefined;
    this.byInode.delete(key);
    const heir = group.members.values().next().value as string | undefined;
    if (heir === undefined) return undefined;
    group.members.delete(heir);
    this.byLink.delete(heir);
    if (group.members.size > 0) {
      group.key = heir;
      this.byInode.set(heir, group);
    }
    return heir;
  }

  /** Keys holding an inode that hardlinks name. */
  holders(): string[] {
    return [...this.byInode.keys()];
  }

  /** Every in-layer hardlink: [its key, the key holding its inode]. */
  *links(): IterableIterator<[string, string]> {
    for (const [key, group] of this.byLink) yield [key, group.key];
  }
}
