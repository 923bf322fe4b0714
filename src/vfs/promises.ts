/**
 * A read-only `node:fs/promises` look-alike over ContainerFS, so code written for fs or memfs
 * reads an image unchanged. Every write rejects with EROFS. Paths are image paths.
 */
import { constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ContainerFS } from './container-fs.js';
import { S_IFDIR, S_IFMT } from '../layer/entry.js';
import { VfsError } from './errors.js';
import { VfsFileHandle } from './file-handle.js';
import { DT, VfsDirent, type VfsStats } from './stats.js';
import { decodeName, encodeName } from '../util/byte-names.js';

export type VfsPath = string | Buffer | URL;
type EncodingOption = BufferEncoding | null | { encoding?: BufferEncoding | null; flag?: string | number };
interface ReaddirOptions {
  withFileTypes?: boolean;
  recursive?: boolean;
  encoding?: BufferEncoding | 'buffer' | null;
}

function toPath(p: VfsPath): string {
  if (typeof p === 'string') return p;
  if (Buffer.isBuffer(p)) return decodeName(p); // raw bytes: names need not be UTF-8
  return fileURLToPath(p);
}

/** Flags that would write: refused with EROFS (a read-only image, like a read-only mount). */
function isWriteFlag(flags: string | number | undefined): boolean {
  if (flags === undefined) return false;
  if (typeof flags === 'number') {
    return (flags & (constants.O_WRONLY | constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND)) !== 0;
  }
  return flags !== 'r' && flags !== 'rs' && flags !== 'sr';
}

function rofs(syscall: string, path?: VfsPath): Promise<never> {
  return Promise.reject(new VfsError('EROFS', syscall, path === undefined ? undefined : toPath(path)));
}

export class VfsPromises {
  readonly constants = constants;

  constructor(private readonly fs: ContainerFS) {}

  async readFile(path: VfsPath | VfsFileHandle, options?: EncodingOption): Promise<Buffer | string> {
    const encoding = typeof options === 'string' ? options : options?.encoding ?? null;
    const flag = typeof options === 'object' && options !== null ? options.flag : undefined;
    if (path instanceof VfsFileHandle) return path.readFile(encoding);
    if (isWriteFlag(flag)) return rofs('open', path);
    const buf = await this.fs.readFile(toPath(path));
    return encoding === null ? buf : buf.toString(encoding);
  }

  async stat(path: VfsPath, _options?: object): Promise<VfsStats> {
    return this.fs.stat(toPath(path));
  }

  async lstat(path: VfsPath, _options?: object): Promise<VfsStats> {
    return this.fs.lstat(toPath(path));
  }

  readdir(path: VfsPath, options: ReaddirOptions & { withFileTypes: true }): Promise<VfsDirent[]>;
  readdir(path: VfsPath, options: 'buffer' | (ReaddirOptions & { withFileTypes?: false; encoding: 'buffer' })): Promise<Buffer[]>;
  readdir(path: VfsPath, options?: BufferEncoding | null | (ReaddirOptions & { withFileTypes?: false })): Promise<string[]>;
  async readdir(path: VfsPath, options?: BufferEncoding | 'buffer' | null | ReaddirOptions): Promise<string[] | Buffer[] | VfsDirent[]> {
    const o: ReaddirOptions = typeof options === 'object' && options !== null ? options : { encoding: options ?? null };
    const root = toPath(path);
    const out: (string | VfsDirent)[] = [];
    const queue: [string, number][] = [['', this.fs.resolvePath(root, 'scandir')]];
    for (let q = 0; q < queue.length; q++) {
      const [rel, ino] = queue[q]!;
      if ((this.fs.getattr(ino).mode & S_IFMT) !== S_IFDIR) throw new VfsError('ENOTDIR', 'scandir', root);
      const dir = rel === '' ? root : `${root}/${rel}`;
      for (const e of this.fs.readdir(ino)) {
        const relName = rel === '' ? e.name : `${rel}/${e.name}`;
        out.push(o.withFileTypes ? new VfsDirent(e.name, dir, e.type) : relName);
        if (o.recursive && e.type === DT.DIR) queue.push([relName, e.ino]);
      }
      if (!o.recursive) break;
    }
    if (o.encoding === 'buffer' && !o.withFileTypes) return (out as string[]).map(encodeName);
    return out as string[] | VfsDirent[];
  }

  /** The link's target; its raw bytes with `'buffer'` / `{ encoding: 'buffer' }`, as node:fs gives them. */
  readlink(path: VfsPath, options: 'buffer' | { encoding: 'buffer' }): Promise<Buffer>;
  readlink(path: VfsPath, options?: unknown): Promise<string>;
  async readlink(path: VfsPath, options?: unknown): Promise<string | Buffer> {
    const wantBuffer = options === 'buffer' || (typeof options === 'object' && options !== null && (options as { encoding?: unknown }).encoding === 'buffer');
    return wantBuffer ? this.fs.readlink(toPath(path), { encoding: 'buffer' }) : this.fs.readlink(toPath(path));
  }

  async realpath(path: VfsPath, _options?: unknown): Promise<string> {
    return this.fs.realpath(toPath(path));
  }

  /** Existence (symlinks followed); W_OK rejects with EROFS. Permission bits are not checked. */
  async access(path: VfsPath, mode: number = constants.F_OK): Promise<void> {
    this.fs.stat(toPath(path));
    if ((mode & constants.W_OK) !== 0) throw new VfsError('EROFS', 'access', toPath(path));
  }

  async open(path: VfsPath, flags: string | number = 'r', _mode?: number): Promise<VfsFileHandle> {
    if (isWriteFlag(flags)) return rofs('open', path);
    const p = toPath(path);
    return new VfsFileHandle(this.fs, this.fs.resolvePath(p), p);
  }

  writeFile(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('open', path); }
  appendFile(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('open', path); }
  truncate(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('open', path); }
  mkdir(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('mkdir', path); }
  mkdtemp(prefix: string, ..._args: unknown[]): Promise<never> { return rofs('mkdtemp', prefix); }
  rmdir(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('rmdir', path); }
  rm(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('rm', path); }
  unlink(path: VfsPath): Promise<never> { return rofs('unlink', path); }
  rename(from: VfsPath, _to: VfsPath): Promise<never> { return rofs('rename', from); }
  copyFile(_from: VfsPath, to: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('copyfile', to); }
  cp(_from: VfsPath, to: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('cp', to); }
  symlink(_target: VfsPath, path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('symlink', path); }
  link(_existing: VfsPath, path: VfsPath): Promise<never> { return rofs('link', path); }
  chmod(path: VfsPath, _mode: unknown): Promise<never> { return rofs('chmod', path); }
  lchmod(path: VfsPath, _mode: unknown): Promise<never> { return rofs('lchmod', path); }
  chown(path: VfsPath, _uid: number, _gid: number): Promise<never> { return rofs('chown', path); }
  lchown(path: VfsPath, _uid: number, _gid: number): Promise<never> { return rofs('lchown', path); }
  utimes(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('utime', path); }
  lutimes(path: VfsPath, ..._args: unknown[]): Promise<never> { return rofs('lutime', path); }
}
