/**
 * Listing entries of a ContainerFS for `vmimg ls`. The VFS merges hard links into shared inodes; the
 * first name of a multi-link inode in sorted whole-tree walk order is reported as the file, later
 * names as `hardlink` entries pointing at it (the way a tar of the tree would record them).
 */
import type { ContainerFS } from '../index.js';
import { walkTree } from '../export/walk.js';
import { encodeName, isRawName } from '../util/byte-names.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../layer/entry.js';

export type EntryKind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface ListedEntry {
  path: string;
  type: EntryKind;
  /** Permission bits with setuid/setgid/sticky, octal (`4755`). */
  mode: string;
  uid: number;
  gid: number;
  size: number;
  /** ISO 8601. */
  mtime: string;
  sha256?: string;
  target?: string;
  rdev?: number;
  /** Base64 of the path's bytes, present only when they are not UTF-8 (`path` then holds U+DC80..U+DCFF for each invalid byte). */
  pathBytes?: string;
  /** Base64 of `target`'s bytes, present only when they are not UTF-8. */
  targetBytes?: string;
}

const KIND: Record<number, EntryKind> = {
  [S_IFREG]: 'file',
  [S_IFDIR]: 'dir',
  [S_IFLNK]: 'symlink',
  [S_IFCHR]: 'char',
  [S_IFBLK]: 'block',
  [S_IFIFO]: 'fifo',
  [S_IFSOCK]: 'socket',
};

export class Lister {
  private firstNames: Map<number, string> | undefined;

  constructor(private readonly fs: ContainerFS) {}

  /** One entry for `ino` named `path`. */
  entry(ino: number, path: string): ListedEntry {
    const a = this.fs.getattr(ino);
    let type = KIND[a.mode & S_IFMT] ?? 'file';
    const e: ListedEntry = {
      path,
      type,
      mode: (a.mode & 0o7777).toString(8).padStart(4, '0'),
      uid: a.uid,
      gid: a.gid,
      size: a.size,
      mtime: new Date(a.mtimeSec * 1000 + Math.floor(a.mtimeNsec / 1e6)).toISOString(),
    };
    if (type === 'file' && a.nlink > 1) {
      const first = this.firstName(ino);
      if (first !== undefined && first !== path) {
        e.type = type = 'hardlink';
        e.target = first;
      }
    }
    if (type === 'file') {
      const sha = this.fs.contentSha256(ino);
      if (sha !== undefined) e.sha256 = sha;
    }
    if (type === 'symlink') e.target = this.fs.readlink(ino);
    if (type === 'char' || type === 'block') e.rdev = a.rdev;
    if (isRawName(path)) e.pathBytes = encodeName(path).toString('base64');
    if (e.target !== undefined && isRawName(e.target)) e.targetBytes = encodeName(e.target).toString('base64');
    return e;
  }

  /**
   * Entries under directory `ino` (named `path`), in bytewise name order; depth-first (pre-order)
   * with `recursive`. An explicit stack, not recursion: an image's depth is the attacker's choice.
   */
  *children(ino: number, path: string, recursive: boolean): Generator<ListedEntry> {
    const stack: { ino: number; path: string }[] = [];
    const pushChildren = (dir: number, dirPath: string): void => {
      const list = this.fs.readdir(dir);
      // pushed in reverse so they pop in name order
      for (let i = list.length - 1; i >= 0; i--) {
        const d = list[i]!;
        stack.push({ ino: d.ino, path: dirPath === '/' ? `/${d.name}` : `${dirPath}/${d.name}` });
      }
    };
    pushChildren(ino, path);
    while (stack.length > 0) {
      const next = stack.pop()!;
      const e = this.entry(next.ino, next.path);
      yield e;
      if (recursive && e.type === 'dir') pushChildren(next.ino, next.path);
    }
  }

  /** The same first-name rule the tar and initramfs exports use (walkTree's `linkTo`). */
  private firstName(ino: number): string | undefined {
    if (this.firstNames === undefined) {
      this.firstNames = new Map();
      for (const e of walkTree(this.fs)) {
        if (e.linkTo === undefined && (e.attr.mode & S_IFMT) === S_IFREG && e.attr.nlink > 1) this.firstNames.set(e.ino, `/${e.path}`);
      }
    }
    return this.firstNames.get(ino);
  }
}

/** `drwxr-xr-x`-style mode string. */
export function modeString(e: ListedEntry): string {
  const letter: Record<EntryKind, string> = { file: '-', hardlink: '-', dir: 'd', symlink: 'l', char: 'c', block: 'b', fifo: 'p', socket: 's' };
  const m = parseInt(e.mode, 8);
  const rwx = (bits: number, special: boolean, ch: string): string =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-'}`;
  return (
    letter[e.type] +
    rwx((m >> 6) & 7, (m & 0o4000) !== 0, 's') +
    rwx((m >> 3) & 7, (m & 0o2000) !== 0, 's') +
    rwx(m & 7, (m & 0o1000) !== 0, 't')
  );
}
