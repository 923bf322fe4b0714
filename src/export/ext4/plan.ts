/**
 * The first pass of the ext4 writer: every node of the merged tree gets its ext4 inode number (root 2,
 * then 11, 12, ... in a depth-first walk, each directory's children numbered together in name order),
 * hardlinked files one inode with the right link count, and /lost+found added as mke2fs would.
 * Metadata only: no file content is read here. Extra entries (the guest init) replace image paths.
 */
import { ErrorCode, VmimgError } from '../../errors.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../../layer/entry.js';
import type { ContainerFS } from '../../vfs/index.js';
import { FIRST_INO, ROOT_INO } from './format.js';
import { encodeName } from '../../util/byte-names.js';

export interface ExtraEntry {
  /** Image path without a leading slash, e.g. '.vmimg/init'; its parent must exist or be an earlier extra. */
  path: string;
  mode: number;
  data?: Buffer;
  /** Device number (makedev) of a char/block device. */
  rdev?: number;
}

export interface Child {
  name: Buffer;
  ino: number;
  type: number;
}

export interface PlanNode {
  ino: number;
  /** ContainerFS inode, or undefined for lost+found and extras. */
  src?: number;
  path: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  sec: number;
  nsec: number;
  rdev: number;
  links: number;
  children?: Child[];
  parent?: number;
  /** Content of an extra file, or a symlink target. */
  data?: Buffer;
  xattrs: Map<string, Buffer>;
}

export interface Plan {
  /** Nodes by ext4 inode number (index 0 and the reserved 1, 3..10 empty). */
  nodes: (PlanNode | undefined)[];
  lastIno: number;
}

const DIRENT_TYPE: Record<number, number> = { [S_IFREG]: 1, [S_IFDIR]: 2, [S_IFCHR]: 3, [S_IFBLK]: 4, [S_IFIFO]: 5, [S_IFSOCK]: 6, [S_IFLNK]: 7 };

/** ext4 dirent file_type of an st_mode. */
export function direntType(mode: number): number {
  return DIRENT_TYPE[mode & S_IFMT] ?? 0;
}

/** A name's bytes: ContainerFS strings decode them losslessly (util/byte-names.ts), UTF-8 or not. */
function nameBytes(name: string): Buffer {
  return encodeName(name);
}

function nodeFromFs(fs: ContainerFS, src: number, ino: number, path: string): PlanNode {
  const a = fs.getattr(src);
  const xattrs = new Map<string, Buffer>();
  for (const name of fs.listxattr(src)) xattrs.set(name, fs.getxattr(src, name));
  const node: PlanNode = { ino, src, path, mode: a.mode, uid: a.uid, gid: a.gid, size: a.size, sec: a.mtimeSec, nsec: a.mtimeNsec, rdev: a.rdev, links: 0, xattrs };
  if ((a.mode & S_IFMT) === S_IFLNK) {
    node.data = nameBytes(fs.readlink(src));
    node.size = node.data.length;
  }
  return node;
}

function syntheticNode(ino: number, path: string, mode: number, data?: Buffer, rdev = 0): PlanNode {
  const node: PlanNode = { ino, path, mode, uid: 0, gid: 0, size: data?.length ?? 0, sec: 0, nsec: 0, rdev, links: 0, xattrs: new Map() };
  if (data) node.data = data;
  return node;
}

/** A name that can be one path component: not empty, `.` or `..`, no `/` or NUL (others are left out). */
function isComponent(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

/** Walks `fs` (depth first, no recursion) and numbers every node. */
export function planTree(fs: ContainerFS, extras: readonly ExtraEntry[] = []): Plan {
  const nodes: (PlanNode | undefined)[] = [];
  const byPath = new Map<string, ExtraEntry[]>();
  for (const x of extras) {
    const slash = x.path.lastIndexOf('/');
    const parent = slash < 0 ? '' : x.path.slice(0, slash);
    byPath.set(parent, [...(byPath.get(parent) ?? []), x]);
  }
  const srcToIno = new Map<number, number>();
  let next = FIRST_INO;
  const root = nodeFromFs(fs, fs.root(), ROOT_INO, '');
  root.links = 2;
  nodes[ROOT_INO] = root;
  const stack: PlanNode[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const children: Child[] = [];
    const extraHere = byPath.get(dir.path) ?? [];
    const replaced = new Set(extraHere.map((x) => x.path.slice(x.path.lastIndexOf('/') + 1)));
    const listing: { name: string; make: (ino: number, path: string) => PlanNode; src?: number }[] = [];
    if (dir.src !== undefined) {
      for (const e of fs.readdir(dir.src)) if (!replaced.has(e.name) && isComponent(e.name)) listing.push({ name: e.name, src: e.ino, make: (ino, p) => nodeFromFs(fs, e.ino, ino, p) });
    }
    for (const x of extraHere) listing.push({ name: x.path.slice(x.path.lastIndexOf('/') + 1), make: (ino, p) => syntheticNode(ino, p, x.mode, x.data, x.rdev) });
    if (dir.ino === ROOT_INO && !listing.some((l) => l.name === 'lost+found')) {
      listing.push({ name: 'lost+found', make: (ino, p) => syntheticNode(ino, p, S_IFDIR | 0o700) });
    }
    listing.sort((a, b) => Buffer.compare(nameBytes(a.name), nameBytes(b.name)));
    const subdirs: PlanNode[] = [];
    for (const l of listing) {
      const name = nameBytes(l.name);
      if (name.length > 255) throw new VmimgError(ErrorCode.TOO_LARGE, `/${dir.path}/${l.name}: a name longer than ext4's 255 bytes`);
      const path = dir.path === '' ? l.name : `${dir.path}/${l.name}`;
      let ino = l.src !== undefined ? srcToIno.get(l.src) : undefined;
      if (ino === undefined) {
        ino = next++;
        const node = l.make(ino, path);
        node.parent = dir.ino;
        nodes[ino] = node;
        if (l.src !== undefined && (node.mode & S_IFMT) !== S_IFDIR) srcToIno.set(l.src, ino);
        if ((node.mode & S_IFMT) === S_IFDIR) {
          node.links = 2;
          dir.links++;
          subdirs.push(node);
        }
      }
      const node = nodes[ino]!;
      if ((node.mode & S_IFMT) !== S_IFDIR) node.links++;
      children.push({ name, ino, type: direntType(node.mode) });
    }
    dir.children = children;
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
  return { nodes, lastIno: next - 1 };
}
