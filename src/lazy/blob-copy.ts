/**
 * The compressed bytes a lazy layer's reads fetched, kept in `<cache>/checkpoints/sha256/<hex>.gzpart`
 * (a sparse file of the blob's size), so completing the layer (`pull --lazy --fill`, `fillBlob`) fetches
 * only the spans no read fetched: the blob is then assembled, checked against its digest and stored like
 * a download. Invariant: every span whose `.spans` bit is set has its compressed bytes here — the bytes
 * are written and synced before the bits; a copy is only started while no bit is set yet.
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { digestHex } from '../digest/index.js';
import type { BlobStore } from '../store/blob-store.js';
import { checkpointsDir } from './build.js';

/** Where the compressed copy of blob `digest` lives in the cache at `cacheRoot`. */
export function blobCopyPath(cacheRoot: string, digest: string): string {
  return join(checkpointsDir(cacheRoot), `${digestHex(digest)}.gzpart`);
}

/** An open compressed copy: write fetched ranges, then store it once every span is present. */
export class BlobCopy {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  /**
   * Opens the copy at `path`, or creates it (sparse, `size` bytes) when `nothingPresent`; undefined when
   * it is missing while some span is present already (their bytes are not in it: a fill fetches the blob whole).
   */
  static async open(path: string, size: number, nothingPresent: boolean): Promise<BlobCopy | undefined> {
    try {
      return new BlobCopy(path, await open(path, 'r+'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !nothingPresent) return undefined;
    }
    const fh = await open(path, 'w+');
    await fh.truncate(size);
    return new BlobCopy(path, fh);
  }

  /** Writes blob bytes `[at, at + bytes.length)` and syncs them (before the caller sets their bits). */
  async write(at: number, bytes: Uint8Array, sync = true): Promise<void> {
    await this.fh.write(bytes, 0, bytes.length, at);
    if (sync) await this.fh.datasync();
  }

  /** Stores the complete copy in `store` (verified against `digest` there) and removes it. */
  async commit(store: BlobStore, digest: string, size: number): Promise<void> {
    await this.fh.close();
    await store.put(createReadStream(this.path, { highWaterMark: 1 << 20 }), { digest, size });
    await rm(this.path, { force: true });
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
