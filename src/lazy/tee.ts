/**
 * Builds a layer's gzip checkpoints while it is flattened: the blob's bytes pass through
 * {@link CheckpointTee.transform} on their way to the flattener and are copied to a worker thread.
 * It never slows the flatten down: when the worker falls more than `maxBehind` bytes behind, the
 * index is given up (a warning; `vmimg index build` makes it later) instead of holding the stream.
 */
import { Transform } from 'node:stream';
import { CheckpointWorker, storeCheckpoints } from './build.js';
import type { CheckpointOptions } from './checkpoint-builder.js';

/** Where a tee stores its `.zran` and how it reports. */
export interface CheckpointTeeOptions {
  cacheRoot: string;
  /** Names the layer in warnings. */
  name: string;
  warn: (message: string) => void;
  /** Bytes the worker may lag behind before the index is given up (default 256 MiB). */
  maxBehind?: number;
  checkpoints?: Partial<CheckpointOptions>;
}

/** Pass the blob through `transform`, then `finish` after a successful flatten or `abort` after a failed one. */
export class CheckpointTee {
  readonly transform: Transform;
  private worker: CheckpointWorker | undefined;
  private seen = 0;
  private gaveUp: string | undefined;

  constructor(private readonly opts: CheckpointTeeOptions) {
    this.worker = new CheckpointWorker(opts.checkpoints);
    this.transform = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.offer(chunk);
        cb(null, chunk);
      },
    });
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

  /** Ends the worker without an index (the flatten failed). */
  async abort(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.abort();
  }
}
