/**
 * ContainerFS: the layers of an image merged once into one read-only tree.
 * - Inode API (root/lookup/getattr/readdir/read/readlink/xattrs) for virtio-fs, FUSE and 9p servers.
 * - Path API (lstat/stat/readdir/readFile/readlink/realpath/...) with image-confined symlink resolution.
 * - `promises`: a read-only `node:fs/promises` look-alike.
 * Metadata calls are synchronous (everything is in memory); content reads are async positional reads.
 * Errors are VfsErrors with Node's codes; any use after close() throws VmimgError ERR_CLOSED.
 */
import type { Readable } from 'node:stream';
import { closedError, VfsError } from './errors.js';
import { ContentVerifier, verifyWhole } from './verify.js';
import type { ContentReader } from './content.js';
import { VfsPromises } from './promises.js';
import { createVfsReadStream, type VfsReadStreamOptions } from './read-stream.js';
import { dirPath, Resolver } from './resolve.js';
import { loadLayers, type ContainerSource, type LoadedLayer, type MemoryLayer } from './source.js';
import { buildTable, layerReaders } from './build.js';
import { attrOf, type Attr, direntsOf, type Statfs, statfsOf, VfsStats } from './stats.js';
import type { BufferEncodingOption, DirEntry, ImagePath } from './vfs-types.js';
import { type InodeTable, ROOT_INO, S_IFDIR, S_IFMT, S_IFREG } from './tree.js';
import { encodeName, nameString } from '../util/byte-names.js';

export type { BufferEncodingOption, DirEntry, ImagePath };
export { layerReaders };

let internals: (fs: ContainerFS) => { table: InodeTable; files: readonly ContentReader[] };

/** For LayeredContainerFS (not exported from the package): a live ContainerFS's tree and layer readers. */
export function containerInternals(fs: ContainerFS): { table: InodeTable; files: readonly ContentReader[] } {
  return internals(fs);
}

export class ContainerFS {
  /** The fs/promises-shaped read-only facade. */
  readonly promises: VfsPromises;
  #t: InodeTable | null;
  #resolver: Resolver | null;
  readonly #files: ContentReader[];
  /** The readers this object made (its `.contents` files): closed by close(). */
  readonly #owned: ContentReader[];

  /** Opens an image directory, a loaded image or a list of layers (bottom first) and merges them. */
  static async open(source: ContainerSource): Promise<ContainerFS> {
    return ContainerFS.fromLoaded(await loadLayers(source, { direct: true }));
  }

  /** Merges already-decoded layers (bottom first). */
  static fromLayers(layers: readonly MemoryLayer[]): ContainerFS {
    return ContainerFS.fromLoaded(layers);
  }

  private static fromLoaded(layers: readonly LoadedLayer[]): ContainerFS {
    const { table, warnings } = buildTable(layers);
    const { readers, owned } = layerReaders(layers);
    return new ContainerFS(table, readers, owned, warnings);
  }

  /**
   * What the merge wants a user to know, one line each (e.g. a hardlink linked to a lower layer's
   * file); the image loaders report them as warning events.
   */
  readonly warnings: readonly string[];

  /** `files`: every layer's reader, bottom first; `owned`: those this object closes (not a base's, not a caller's). */
  protected constructor(table: InodeTable, files: ContentReader[], owned: ContentReader[], warnings: readonly string[] = []) {
    this.warnings = warnings;
    this.#t = table;
    this.#resolver = new Resolver(table);
    this.#files = files;
    this.#owned = owned;
    this.promises = new VfsPromises(this);
  }

  get closed(): boolean {
    return this.#t === null;
  }

  /** Number of inodes (inode numbers are 1..inodeCount). */
  get inodeCount(): number {
    return this.table('inodeCount').count;
  }

  // ---- inode API ----

  root(): number {
    this.table('root');
    return ROOT_INO;
  }

  /** Child of a directory by name ('.' and '..' too), given as a string or as bytes; throws ENOENT / ENOTDIR. */
  lookup(parent: number, nameOrBytes: ImagePath): number {
    const t = this.inode(parent, 'lookup');
    const name = nameString(nameOrBytes);
    if (!t.isDir(parent)) throw new VfsError('ENOTDIR', 'lookup', name);
    if (name === '.' || name === '') return parent;
    if (name === '..') return t.parent[parent]!;
    const ino = t.child(parent, name);
    if (ino === 0) throw new VfsError('ENOENT', 'lookup', name);
    return ino;
  }

  getattr(ino: number): Attr {
    return attrOf(this.inode(ino, 'getattr'), ino);
  }

  /** A directory's entries in bytewise name order (no '.' / '..'), from `cookie`, at most `limit`. */
  readdir(ino: number, cookie?: number, limit?: number): DirEntry[];
  /** Names in a directory (symlinks followed), bytewise order; as Buffers with `{ encoding: 'buffer' }`. */
  readdir(path: ImagePath): string[];
  readdir(path: ImagePath, options: BufferEncodingOption): Buffer[];
  readdir(x: number | ImagePath, cookie: number | BufferEncodingOption = 0, limit = Infinity): DirEntry[] | string[] | Buffer[] {
    if (typeof x !== 'number') {
      const t = this.table('scandir');
      const ino = this.resolver.resolve(x, true, 'scandir');
      if (!t.isDir(ino)) throw new VfsError('ENOTDIR', 'scandir', nameString(x));
      const names = t.dirNames(ino);
      return typeof cookie === 'object' ? names.map(encodeName) : names;
    }
    if (typeof cookie !== 'number') throw new VfsError('EINVAL', 'readdir');
    const t = this.inode(x, 'readdir');
    if (!t.isDir(x)) throw new VfsError('ENOTDIR', 'readdir');
    return direntsOf(t, x, cookie, limit);
  }

  /** Up to `length` bytes of a regular file from `offset` (fewer at the end of the file), in a new Buffer. */
  async read(ino: number, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(this.readable(ino, offset, length, 'read'));
    await this.readInto(ino, buf, 0, buf.length, offset);
    return buf;
  }

  /**
   * Like `fs.read(fd, buffer, offset, length, position)`: up to `length` bytes of regular file `ino`
   * from byte `position` into `buffer` at `offset`; resolves to the bytes read (fewer at the end of the
   * file, 0 past it). Allocates nothing per call: for servers and exporters reading in a loop.
   * EISDIR / EINVAL like `read`; a range outside `buffer` is EINVAL.
   */
  async readInto(ino: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    if (!(offset >= 0) || !(length >= 0) || offset + length > buffer.length) throw new VfsError('EINVAL', 'read');
    const n = this.readable(ino, position, length, 'read');
    const t = this.table('read');
    if (n > 0) await this.#files[t.layer[ino]!]!.readInto(buffer, offset, n, t.offset(ino) + position);
    return n;
  }

  /** Bytes a read of `length` at `position` of regular file `ino` gets; throws the read's VfsErrors. */
  private readable(ino: number, position: number, length: number, syscall: string): number {
    const t = this.inode(ino, syscall);
    const type = t.mode[ino]! & S_IFMT;
    if (type !== S_IFREG) throw new VfsError(type === S_IFDIR ? 'EISDIR' : 'EINVAL', syscall);
    if (!(position >= 0) || !(length >= 0)) throw new VfsError('EINVAL', syscall);
    return Math.max(0, Math.min(length, t.size(ino) - position));
  }

  /** The target of a symlink, exactly as stored (its bytes with `{ encoding: 'buffer' }`); EINVAL for anything else. */
  readlink(x: number | ImagePath): string;
  readlink(x: number | ImagePath, options: BufferEncodingOption): Buffer;
  readlink(x: number | ImagePath, options?: BufferEncodingOption): string | Buffer {
    const t = this.inode(typeof x === 'number' ? x : ROOT_INO, 'readlink');
    const ino = typeof x !== 'number' ? this.resolver.resolve(x, false, 'readlink') : x;
    const target = t.linkTarget(ino);
    if (target === undefined) {
      throw new VfsError('EINVAL', 'readlink', typeof x !== 'number' ? nameString(x) : undefined);
    }
    return options?.encoding === 'buffer' ? encodeName(target) : target;
  }

  /** Extended attribute names (as Buffers with `{ encoding: 'buffer' }`). */
  listxattr(ino: number): string[];
  listxattr(ino: number, options: BufferEncodingOption): Buffer[];
  listxattr(ino: number, options?: BufferEncodingOption): string[] | Buffer[] {
    const x = this.inode(ino, 'listxattr').xattrs(ino);
    const names = x === undefined ? [] : Object.keys(x);
    return options?.encoding === 'buffer' ? names.map(encodeName) : names;
  }

  /** An extended attribute's value, named by a string or bytes; ENODATA when the inode does not have it. */
  getxattr(ino: number, nameOrBytes: ImagePath): Buffer {
    const name = nameString(nameOrBytes);
    const value = this.inode(ino, 'getxattr').xattrs(ino)?.[name];
    if (value === undefined) throw new VfsError('ENODATA', 'getxattr', name);
    return value;
  }

  /** Totals for a statfs reply: a full, read-only filesystem (no free blocks or inodes). */
  statfs(): Statfs {
    return statfsOf(this.table('statfs'));
  }

  /** Lowercase hex sha256 of a regular file's content, when the index recorded it. */
  contentSha256(ino: number): string | undefined {
    return this.inode(ino, 'sha256').sha256Hex(ino);
  }

  // ---- path API (paths are image paths: absolute or relative to the image root) ----

  /** Inode of `path`, following symlinks in every component including the last. */
  resolvePath(path: ImagePath, syscall = 'stat'): number {
    return this.resolver.resolve(path, true, syscall);
  }

  /** Inode of `path`, not following a final symlink. */
  lookupPath(path: ImagePath): number {
    return this.resolver.resolve(path, false, 'lstat');
  }

  lstat(path: ImagePath): VfsStats {
    return new VfsStats(attrOf(this.table('lstat'), this.resolver.resolve(path, false, 'lstat')));
  }

  stat(path: ImagePath): VfsStats {
    return new VfsStats(attrOf(this.table('stat'), this.resolver.resolve(path, true, 'stat')));
  }

  exists(path: ImagePath): boolean {
    const r = this.resolver;
    try {
      r.resolve(path, true, 'access');
      return true;
    } catch (err) {
      if (err instanceof VfsError) return false;
      throw err;
    }
  }

  /** The canonical absolute image path of `path` (all symlinks resolved). */
  realpath(path: ImagePath): string {
    const t = this.table('realpath');
    const r = this.resolver;
    const ino = r.walk(path, true, 'realpath');
    if (t.isDir(ino)) return dirPath(t, ino);
    const dir = dirPath(t, r.lastParent);
    return dir === '/' ? `/${r.lastName}` : `${dir}/${r.lastName}`;
  }

  /** The whole file; with `verify`, checked against its index sha256 first (ERR_DIGEST_MISMATCH). */
  async readFile(path: ImagePath, options: { verify?: boolean } = {}): Promise<Buffer> {
    const t = this.table('open');
    const ino = this.resolver.resolve(path, true, 'open');
    if (t.isDir(ino)) throw new VfsError('EISDIR', 'read', nameString(path));
    const buf = await this.read(ino, 0, t.size(ino));
    if (options.verify) {
      const v = this.verifier(ino, nameString(path));
      v.update(buf);
      v.check();
    }
    return buf;
  }

  /**
   * A checker of inode `ino`'s content against the sha256 its layer's index recorded: feed it every
   * byte in order (`update`), then `check()` throws ERR_DIGEST_MISMATCH naming `name` on a mismatch.
   */
  verifier(ino: number, name = `inode ${ino}`): ContentVerifier {
    const t = this.inode(ino, 'verify');
    return new ContentVerifier(t.sha256Hex(ino), t.size(ino), name);
  }

  /** Reads a regular file whole, in 1 MiB reads, and checks its content (see `verifier`). */
  async verify(ino: number, name?: string): Promise<void> {
    await verifyWhole(this, ino, name);
  }

  /**
   * Like fs.createReadStream: `end` is inclusive; errors (ENOENT, ...) arrive as 'error' events.
   * `verify: true` (whole-file reads only) fails the stream with ERR_DIGEST_MISMATCH before its last chunk.
   */
  createReadStream(path: ImagePath, options: VfsReadStreamOptions = {}): Readable {
    return createVfsReadStream(this, path, options);
  }

  /** Releases the tree and closes the layer files this object opened. Idempotent. */
  async close(): Promise<void> {
    if (this.#t === null) return;
    this.#t = null;
    this.#resolver = null;
    await Promise.all(this.#owned.map((f) => f.close?.()));
  }

  static {
    internals = (fs) => ({ table: fs.table('stacking'), files: fs.#files });
  }

  private get resolver(): Resolver {
    if (this.#resolver === null) throw closedError('ContainerFS');
    return this.#resolver;
  }

  private table(what: string): InodeTable {
    if (this.#t === null) throw closedError(`ContainerFS.${what}`);
    return this.#t;
  }

  private inode(ino: number, syscall: string): InodeTable {
    const t = this.table(syscall);
    if (!Number.isInteger(ino) || ino < 1 || ino > t.count) throw new VfsError('ENOENT', syscall);
    return t;
  }
}
