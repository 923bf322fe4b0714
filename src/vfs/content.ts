/**
 * A layer's `.contents` file: opened on first read (one FileHandle per layer, shared by all reads),
 * read with positional reads only, closed by close().
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { closedError } from './errors.js';

export class ContentFile {
  private handle: Promise<FileHandle> | null = null;
  private closed = false;

  constructor(readonly path: string) {}

  /** Fills `buf` from `position`; fails if the file ends first (a truncated layer). */
  async readExactly(buf: Buffer, position: number): Promise<void> {
    if (this.closed) throw closedError(`reading ${this.path}`);
    this.handle ??= open(this.path, 'r');
    let fh: FileHandle;
    try {
      fh = await this.handle;
    } catch (err) {
      this.handle = null; // let a later read retry (e.g. the file was being renamed into place)
      throw err;
    }
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
      if (bytesRead === 0) {
        throw new VmimgError(ErrorCode.INVALID_INDEX, `${this.path} is shorter than its index says`, {
          hint: 'delete the layer files and pull the image again',
        });
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const h = this.handle;
    this.handle = null;
    if (h !== null) await h.then((fh) => fh.close()).catch(() => undefined);
  }
}
