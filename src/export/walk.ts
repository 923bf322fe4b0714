/**
 * The flattened tree in archive order: each directory before its children (pre-order, bytewise
 * name order), with hardlink groups marked so writers can emit the first name as the file and
 * later names as links. Reads only the ContainerFS inode API.
 */
import { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import type { Attr, ContainerFS } from '../vfs/index.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../layer/entry.js';

export { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG };


/** How far an export is: entries written and file bytes read so far (for a progress line). */
export interface ExportProgress {
  entries: number;
  bytes: number;
}

export interface TreeEntry {
  /** Image-relative path without a leading slash; '' for the root. */
  path: string;
  ino: number;
  attr: Attr;
  /** For the second and later names of a shared regular file: the first name's path. */
  linkTo?: string;
}

/**
 * Yields every node of the merged tree, root first, with an explicit stack (no recursion: the depth
 * is the image's choice). Only directories are descended into, so no entry ever sits below a symlink
 * or file of the walk; a name that could not be one path component of an archive (empty, `.`, `..`,
 * holding `/`) or that a directory lists twice is left out, and `warn` is told.
 */
export function* walkTree(
  fs: ContainerFS,
  skip: (path: string) => boolean = () => false,
  warn: (message: string) => void = () => {},
): Generator<TreeEntry> {
  const firstName = new Map<number, string>();
  const stack: { ino: number; path: string }[] = [{ ino: fs.root(), path: '' }];
  while (stack.length > 0) {
    const { ino, path } = stack.pop()!;
    const attr = fs.getattr(ino);
    const entry: TreeEntry = { path, ino, attr };
    if ((attr.mode & S_IFMT) === S_IFREG && attr.nlink > 1) {
      const first = firstName.get(ino);
      if (first === undefined) firstName.set(ino, path);
      else entry.linkTo = first;
    }
    yield entry;
    if ((attr.mode & S_IFMT) !== S_IFDIR) continue;
    const children = fs.readdir(ino);
    const names = new Set<string>();
    const next: { ino: number; path: string }[] = [];
    for (const child of children) {
      const childPath = path === '' ? child.name : `${path}/${child.name}`;
      if (names.has(child.name) || !isComponent(child.name)) {
        warn(`left out ${JSON.stringify(childPath)}: ${names.has(child.name) ? 'its directory lists the name twice' : 'not a valid path component'}`);
      } else if (!skip(childPath)) next.push({ ino: child.ino, path: childPath });
      names.add(child.name);
    }
    // pushed in reverse so they pop in name order
    for (let i = next.length - 1; i >= 0; i--) stack.push(next[i]!);
  }
}

function isComponent(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

/** Linux `major()` / `minor()` of an rdev built by makedev (glibc encoding). */
export function splitDev(rdev: number): { major: number; minor: number } {
  const lo = rdev % 2 ** 32;
  const hi = Math.floor(rdev / 2 ** 32);
  const major = ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
  const minor = (lo & 0xff) | ((lo >>> 12) & 0xfff00) | ((hi & 0xfff) * 0x100000);
  return { major, minor };
}

const CHUNK = 1 << 20;

/**
 * A file's content by inode, read in 1 MiB positional reads (never the whole file at once). With
 * `verify` (the default) the bytes are checked against the index sha256 as they pass, and the stream
 * fails with ERR_DIGEST_MISMATCH naming `name` before its last chunk.
 */
export function inodeStream(fs: ContainerFS, ino: number, size: number, name = `inode ${ino}`, verify = true): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    const v = verify ? fs.verifier(ino, name) : undefined;
    for (let pos = 0; pos < size; ) {
      const buf = await fs.read(ino, pos, Math.min(CHUNK, size - pos));
      if (buf.length === 0) throw shortRead(`inode ${ino}: ${pos} of ${size} bytes`);
      pos += buf.length;
      v?.update(buf);
      if (pos === size) v?.check();
      yield buf;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

/** The layer's .contents holds less than its index promises: a damaged image (exit 6 in the CLI). */
export function shortRead(what: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_INDEX, `short read of ${what}: the layer's .contents is truncated or damaged`);
}
