/**
 * Builds a layer's gzip checkpoints while it is flattened. Where node:zlib's block-stopping inflate works
 * (native-block.ts), the inflate worker that gunzips the layer for the flattener builds them in the same
 * inflate ({@link CheckpointTee.flattenOptions}, ring-checkpoints.ts): one inflate per layer. Otherwise
 * the blob's bytes pass through {@link CheckpointTee.transform} and pako inflates them a second time
 * beside the flatten; it never slows the flatten down: when it falls more than `maxBehind` bytes
 * behind, the index is given up (a warning; `vmimg index build` makes it later) instead of holding the stream.
 */
import { Transform } from 'node:stream';
import { CheckpointWorker, storeCheckpoints } from './build.js';
import type { CheckpointOptions } from './checkpoint-builder.js';
import { nativeBlockAvailable } from './native-block.js';
import type { RingCheckpoints } from '../layer/inflate-pool.js';
import type { RingIndexResult } from './ring-checkpoints.js';
import { encodeZran } from './zran-format.js';

/** Where a tee stores its `.zran` and how it reports. */
export interface CheckpointTeeOptions {
  cacheRoot: string;
  /** Names the layer in warnings. */
  name: string;
  warn: (message: string) => void;
  /** Bytes the pako worker may lag behind before the index is given up (default 256 MiB). */
  maxBehind?: number;
  checkpoints?: Partial<CheckpointOptions>;
  /** Force pako beside the flattener's own gunzip (tests; the default is native when it works). */
  engine?: 'native' | 'pako';
}

/**
 * Hand the flattener {@link flattenOptions} and pass the blob through {@link transform} when there is
 * one; then {@link finish} after a successful flatten or {@link abort} after a failed one.
 */
export class CheckpointTee {
  /** The pass-through feeding pako's worker; undefined when the flatten's inflate builds the index. */
  readonly transform: Transform | undefined;
  private worker: CheckpointWorker | undefined;
  private seen = 0;
  private gaveUp: string | undefined;
  /** What the flatten's inflate built (the last whole inflate of the blob, if the flattener read it twice). */
  private built: RingIndexResult | undefined;

  constructor(private readonly opts: CheckpointTeeOptions) {
    if ((opts.engine ?? (nativeBlockAvailable() ? 'native' : 'pako')) === 'native') return;
    this.worker = new CheckpointWorker(opts.checkpoints);
    this.transform = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.offer(chunk);
        cb(null, chunk);
      },
    });
  }

  /** `flattenLayer` options: the checkpoints its gzip inflate builds, when this tee has no pako worker. */
  flattenOptions(): { checkpoints?: RingCheckpoints } {
    return this.transform ? {} : { checkpoints: { options: this.opts.checkpoints ?? {}, done: (index) => (this.built = index) } };
  }

  private offer(chunk: Buffer): void {
    if (this.worker === undefined) return;
    if (this.seen === 0 && !(chunk[0] === 0x1f && chunk[1] === 0x8b)) return this.giveUp(undefined); // not gzip: nothing to index
    this.seen += chunk.length;
    if (this.worker.behind > (this.opts.maxBehind ?? 256 * 1024 * 1024)) return this.giveUp('the checkpoint builder fell behind the download');
    this.worker.offer(chunk);
  }

  private giveUp(reason: string | undefined): void {
    this.gaveUp = reason;
    void this.worker?.abort();
    this.worker = undefined;
  }

  /** After a successful flatten of the whole blob: finishes and stores the `.zran` (failures are warnings). */
  async finish(ids: { digest: string; diffId: string; compressedSize: number }): Promise<void> {
    if (!this.transform) return this.store(ids);
    const w = this.worker;
    this.worker = undefined;
    if (this.gaveUp !== undefined) this.opts.warn(`${this.opts.name}: no gzip checkpoint index (${this.gaveUp}); run \`vmimg index build\` later`);
    if (w === undefined) return;
    if (this.seen !== ids.compressedSize) return void (await w.abort()); // the layer was cached: the stream stopped early
    try {
      const zran = await w.finish({ digest: ids.digest, diffId: ids.diffId });
      await storeCheckpoints(this.opts.cacheRoot, ids.digest, zran);
    } catch (err) {
      this.opts.warn(`${this.opts.name}: no gzip checkpoint index (${(err as Error).message})`);
    }
  }

  /** Stores what the flatten's inflate built (nothing when it did not inflate the whole blob: cached, or not gzip). */
  private async store(ids: { digest: string; diffId: string; compressedSize: number }): Promise<void> {
    const built = this.built;
    this.built = undefined;
    if (built === undefined) return;
    try {
      if ('zranError' in built) throw new Error(built.zranError.message);
      if (built.zran.compressedSize !== ids.compressedSize) return;
      await storeCheckpoints(this.opts.cacheRoot, ids.digest, encodeZran({ ...built.zran, digest: ids.digest, diffId: ids.diffId }));
    } catch (err) {
      this.opts.warn(`${this.opts.name}: no gzip checkpoint index (building gzip checkpoints: ${(err as Error).message})`);
    }
  }

  /** Ends the worker without an index (the flatten failed). */
  async abort(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.abort();
  }
}
