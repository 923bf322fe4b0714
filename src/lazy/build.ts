/**
 * Builds gzip checkpoint indexes off the main thread (src/lazy/checkpoint-worker.ts) and stores them
 * as `<cache>/checkpoints/sha256/<compressedHex>.zran` (docs/FORMAT.md "`.zran`").
 */
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { ErrorCode, VmimgError, type ErrorCodeValue } from '../errors.js';
import { digestHex } from '../digest/index.js';
import { CacheLayout } from '../image/cache.js';
import { writeFileDurable } from '../util/fs.js';
import { startWorker } from '../util/worker-thread.js';
import type { CheckpointOptions } from './checkpoint-builder.js';

/** Blobs smaller than this get no checkpoints: fetching them whole is cheaper (SOCI's 10 MiB). */
export const MIN_INDEXED_BLOB = 10 * 1024 * 1024;
/** Chunks the worker has not consumed yet, at most (bytes): beyond it `push` waits. */
const MAX_QUEUED = 32 * 1024 * 1024;
const BATCH = 1024 * 1024;

/** The checkpoints directory of a cache root. */
export function checkpointsDir(cacheRoot: string): string {
  return new CacheLayout(cacheRoot).checkpointsDir;
}

/** Where the `.zran` of the blob `digest` lives. */
export function zranPath(cacheRoot: string, digest: string): string {
  return join(checkpointsDir(cacheRoot), `${digestHex(digest)}.zran`);
}

/**
 * A checkpoint builder in a worker thread. Feed the blob with {@link push} (resolves when the worker is
 * less than 32 MiB behind), then {@link finish}; {@link abort} ends the worker. Errors of the builder
 * (ERR_INVALID_LAYER, ERR_TOO_LARGE) surface from push or finish.
 */
export class CheckpointWorker {
  private readonly worker: Worker;
  private queued = 0;
  /** The batch being filled: posted when full, so the worker sees 1 MiB chunks at the same blob offsets
   * however the bytes arrived (the native inflater misses a boundary at a chunk's very end: same chunks,
   * same index). */
  private batch = Buffer.allocUnsafeSlow(BATCH);
  private batchBytes = 0;
  private error: VmimgError | undefined;
  private waiters: (() => void)[] = [];
  private settle: { resolve: (zran: Buffer) => void; reject: (err: Error) => void } | undefined;
  private exited = false;

  constructor(options: Partial<CheckpointOptions> = {}) {
    this.worker = startWorker(import.meta.url, 'checkpoint-worker', { workerData: { options } });
    this.worker.on('message', (msg: { acked?: number; zran?: Uint8Array; error?: { code: string; message: string } }) => {
      if (msg.acked !== undefined) this.queued -= msg.acked;
      if (msg.error) this.fail(new VmimgError(msg.error.code as ErrorCodeValue, `building gzip checkpoints: ${msg.error.message}`));
      if (msg.zran) this.settle?.resolve(Buffer.from(msg.zran.buffer, msg.zran.byteOffset, msg.zran.byteLength));
      this.wake();
    });
    this.worker.on('error', (err) => this.fail(new VmimgError(ErrorCode.INTERNAL, `checkpoint worker: ${err.message}`, { cause: err })));
    this.worker.on('exit', () => {
      this.exited = true;
      this.fail(new VmimgError(ErrorCode.INTERNAL, 'checkpoint worker exited'));
    });
  }

  private fail(err: VmimgError): void {
    this.error ??= err;
    this.settle?.reject(this.error);
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Bytes posted to the worker and not consumed yet. */
  get behind(): number {
    return this.queued + this.batchBytes;
  }

  /** Queues bytes of the blob without waiting (copied: the caller may reuse its buffer); false after an error. */
  offer(chunk: Uint8Array): boolean {
    if (this.error) return false;
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(BATCH - this.batchBytes, chunk.length - at);
      this.batch.set(chunk.subarray(at, at + n), this.batchBytes);
      this.batchBytes += n;
      at += n;
      if (this.batchBytes === BATCH) this.flush();
    }
    return true;
  }

  /** Queues bytes of the blob (copied), waiting while the worker is more than 32 MiB behind. */
  async push(chunk: Uint8Array): Promise<void> {
    if (!this.offer(chunk)) throw this.error!;
    while (this.queued > MAX_QUEUED && !this.error) await new Promise<void>((r) => this.waiters.push(r));
    if (this.error) throw this.error;
  }

  private flush(): void {
    if (this.batchBytes === 0) return;
    const bytes = new Uint8Array(this.batch.buffer, 0, this.batchBytes);
    this.queued += bytes.length;
    this.worker.postMessage({ chunk: bytes }, [bytes.buffer as ArrayBuffer]); // allocUnsafeSlow: its own ArrayBuffer
    this.batch = Buffer.allocUnsafeSlow(BATCH);
    this.batchBytes = 0;
  }

  /** The encoded `.zran` of everything pushed; `digest`/`diffId` as verified by the caller. */
  async finish(ids: { digest: string; diffId: string }): Promise<Buffer> {
    this.flush();
    if (this.error) throw this.error;
    const done = new Promise<Buffer>((resolve, reject) => (this.settle = { resolve, reject }));
    this.worker.postMessage({ finish: ids });
    try {
      return await done;
    } finally {
      await this.abort();
    }
  }

  /** Ends the worker (idempotent). */
  async abort(): Promise<void> {
    if (!this.exited) await this.worker.terminate();
  }
}

/** Builds the `.zran` of a gzip blob file in a worker and returns it encoded. */
export async function buildCheckpointsFromFile(path: string, ids: { digest: string; diffId: string }, options: Partial<CheckpointOptions> = {}): Promise<Buffer> {
  const w = new CheckpointWorker(options);
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: BATCH })) await w.push(chunk as Buffer);
    return await w.finish(ids);
  } finally {
    await w.abort();
  }
}

/** Writes `zran` as the checkpoint index of `digest` (temp name, fsync, rename). */
export async function storeCheckpoints(cacheRoot: string, digest: string, zran: Buffer): Promise<string> {
  const dir = checkpointsDir(cacheRoot);
  await mkdir(dir, { recursive: true });
  const final = zranPath(cacheRoot, digest);
  const tmp = join(dir, `.tmp-${process.pid}-${randomBytes(8).toString('hex')}.zran`);
  try {
    await writeFileDurable(tmp, zran);
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return final;
}
