/**
 * Where ContainerFS reads file bytes: a `ContentReader` per layer. The local one is `ContentFile`, a
 * layer's `.contents` file: opened on first read, read with positional reads only, closed by close().
 * Open handles are pooled process-wide: at most MAX_OPEN_CONTENTS stay open, the least recently used
 * idle one is closed to make room, so an image of 10 000 layers reads under `ulimit -n 1024`.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { closedError } from './errors.js';

/** Most `.contents` handles held open at once (idle ones past it are closed, least recently used first). */
export const MAX_OPEN_CONTENTS = 64;

/** Files holding a handle, least recently used first (a Set keeps insertion order). */
const holding = new Set<ContentFile>();

/** Closes idle handles, least recently used first, until fewer than `keep` are open. */
function makeRoom(keep = MAX_OPEN_CONTENTS): void {
  for (const f of holding) {
    if (holding.size < keep) return;
    f.dropIfIdle();
  }
}

/** Opens for reading; on EMFILE (a low `ulimit -n`) closes every idle handle and tries once more. */
async function openReadOnly(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EMFILE') throw err;
    makeRoom(1);
    await new Promise(setImmediate); // the closes run on the thread pool
    return await open(path, 'r');
  }
}

/**
 * A layer's content, addressed like its `.contents` file (docs/FORMAT.md: each regular file's bytes
 * at its index `offset`). ContainerFS reads every file through one of these, so a remote or lazy
 * backend (range reads of the layer blob, say) plugs in by implementing it and handing it over as a
 * layer's `content` (see `LayerFiles`): nothing in the merge or the inode API changes.
 */
export interface ContentReader {
  /**
   * Fills `buffer[offset .. offset + length)` with the layer content's bytes at `position..`. Resolves
   * only when all `length` bytes are in; content that ends first is an error (ContentFile:
   * ERR_INVALID_INDEX, a truncated layer). Called concurrently; must not keep `buffer` after resolving.
   */
  readInto(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void>;
  /** Releases what the reader holds. ContainerFS calls it only for the readers it made itself. */
  close?(): Promise<void>;
}

/** The local ContentReader: a layer's `.contents` file. */
export class ContentFile implements ContentReader {
  private handle: Promise<FileHandle> | null = null;
  private busy = 0;
  private closed = false;

  constructor(readonly path: string) {}

  /** Fills `buffer[offset, +length)` from `position`; fails if the file ends first (a truncated layer). */
  async readInto(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    if (this.closed) throw closedError(`reading ${this.path}`);
    const fh = await this.acquire();
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buffer, offset + done, length - done, position + done);
        if (bytesRead === 0) {
          throw new VmimgError(ErrorCode.INVALID_INDEX, `${this.path} is shorter than its index says`, {
            hint: 'delete the layer files and pull the image again',
          });
        }
        done += bytesRead;
      }
    } finally {
      if (--this.busy === 0 && this.closed) void this.forget()?.catch(() => undefined); // close() waited for us
    }
  }

  private async acquire(): Promise<FileHandle> {
    this.busy++;
    holding.delete(this);
    holding.add(this); // now the most recently used
    if (this.handle === null) {
      makeRoom();
      this.handle = openReadOnly(this.path);
    }
    try {
      return await this.handle;
    } catch (err) {
      this.busy--;
      void this.forget()?.catch(() => undefined); // let a later read retry (e.g. the file was being renamed into place)
      throw err;
    }
  }

  /** The pool's eviction: closes the handle unless a read is using it. */
  dropIfIdle(): void {
    if (this.busy === 0) void this.forget()?.catch(() => undefined);
  }

  private forget(): Promise<void> | undefined {
    const h = this.handle;
    this.handle = null;
    holding.delete(this);
    return h?.then((fh) => fh.close());
  }

  /** Closes the file; reads already started finish first (the last one closes the handle). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.busy === 0) await this.forget()?.catch(() => undefined);
  }
}
