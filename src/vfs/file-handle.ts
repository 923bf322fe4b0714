/** A read-only `fs/promises` FileHandle over one ContainerFS inode. Writes reject with EROFS. */
import type { ContainerFS } from './container-fs.js';
import { VfsError } from './errors.js';
import { VfsStats } from './stats.js';

let nextFd = 1000; // fake descriptors: unique per handle, never real host fds

interface ReadOptions {
  buffer?: Buffer;
  offset?: number;
  length?: number;
  position?: number | null;
}

export class VfsFileHandle {
  readonly fd = nextFd++;
  #open = true;
  #position = 0;

  constructor(
    private readonly fs: ContainerFS,
    private readonly ino: number,
    private readonly path: string,
  ) {}

  /** Like FileHandle.read: `position` null/undefined reads at (and advances) the handle's position. */
  async read(
    bufferOrOptions?: Buffer | ReadOptions,
    offset?: number,
    length?: number,
    position?: number | null,
  ): Promise<{ bytesRead: number; buffer: Buffer }> {
    const o: ReadOptions = Buffer.isBuffer(bufferOrOptions)
      ? { buffer: bufferOrOptions, offset, length, position }
      : bufferOrOptions ?? {};
    const buffer = o.buffer ?? Buffer.alloc(16384);
    const at = o.offset ?? 0;
    const want = o.length ?? buffer.length - at;
    const pos = typeof o.position === 'number' && o.position >= 0 ? o.position : this.#position;
    const bytesRead = await this.fs.readInto(this.check('read'), buffer, at, want, pos); // straight into the caller's buffer
    if (!(typeof o.position === 'number' && o.position >= 0)) this.#position += bytesRead;
    return { bytesRead, buffer };
  }

  async readFile(options?: BufferEncoding | null | { encoding?: BufferEncoding | null }): Promise<Buffer | string> {
    const ino = this.check('read');
    const encoding = typeof options === 'object' && options !== null ? options.encoding : options;
    const size = this.fs.getattr(ino).size;
    const buf = await this.fs.read(ino, this.#position, Math.max(0, size - this.#position));
    this.#position += buf.length;
    return encoding ? buf.toString(encoding) : buf;
  }

  async stat(): Promise<VfsStats> {
    return new VfsStats(this.fs.getattr(this.check('fstat')));
  }

  async close(): Promise<void> {
    this.#open = false;
  }

  write(..._args: unknown[]): Promise<never> { return this.rofs('write'); }
  writeFile(..._args: unknown[]): Promise<never> { return this.rofs('write'); }
  appendFile(..._args: unknown[]): Promise<never> { return this.rofs('write'); }
  truncate(..._args: unknown[]): Promise<never> { return this.rofs('ftruncate'); }
  chmod(..._args: unknown[]): Promise<never> { return this.rofs('fchmod'); }
  chown(..._args: unknown[]): Promise<never> { return this.rofs('fchown'); }
  utimes(..._args: unknown[]): Promise<never> { return this.rofs('futime'); }

  private rofs(syscall: string): Promise<never> {
    return Promise.reject(new VfsError(this.#open ? 'EROFS' : 'EBADF', syscall, this.path));
  }

  private check(syscall: string): number {
    if (!this.#open) throw new VfsError('EBADF', syscall, this.path);
    return this.ino;
  }
}
