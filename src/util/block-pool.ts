/**
 * Reference-counted 1 MiB blocks, reused instead of collected. A block that lives a few hundred
 * milliseconds (in a download's hot window, a batch on its way to the disk, a client's pending socket
 * write) is promoted to V8's old generation; fresh blocks at download speed then grew the old
 * generation by the blob's size and started a full collection every ~9 MB of a tiny (~10 MB) heap:
 * 10-15 mark-compacts per cold round of serve's bench, ~0.3 CPU-s of marking on V8's helper threads
 * (`--trace-gc`, perf; the same round under `--initial-old-space-size=128` had 1). A pooled block is
 * allocated once and stays live, so the heap's size stays put.
 *
 * Every holder of a view of a block counts once: `take` gives a block with the taker's reference,
 * `hold` adds one for a view handed to another holder, `release` drops one, and the block goes back
 * to the free list when none is left. A view never released only keeps its block from being reused
 * (the GC takes it, as any buffer); a release without its hold would hand the block out while its bytes
 * are still read, so each holder releases exactly what it held. Views of other buffers are ignored.
 */

/** Bytes per block. */
export const POOL_BLOCK_BYTES = 1 << 20;
/** Blocks kept on the free list; blocks released beyond it are left to the GC. */
export const POOL_MAX_FREE = 32;

/** A free list of equal blocks and the reference counts of those handed out. */
export class BlockPool {
  private readonly free: Buffer[] = [];
  /** References per block handed out, by its ArrayBuffer (a view's `.buffer`). */
  private readonly refs = new WeakMap<ArrayBufferLike, number>();

  /**
   * `scrub` overwrites every block returned to the free list (0xdd), so a view read after its block was
   * given back shows as wrong bytes at once (tests: a missing `hold` turns into a digest mismatch).
   */
  constructor(
    readonly blockBytes = POOL_BLOCK_BYTES,
    private readonly maxFree = POOL_MAX_FREE,
    private readonly options: { readonly scrub?: boolean } = {},
  ) {}

  /** A block of `blockBytes` (contents undefined) holding one reference: the caller's. */
  take(): Buffer {
    const block = this.free.pop() ?? Buffer.allocUnsafeSlow(this.blockBytes); // its own ArrayBuffer: the key
    this.refs.set(block.buffer, 1);
    return block;
  }

  /** One more reference to the block under `view` (a no-op for buffers not from this pool). */
  hold(view: Uint8Array): void {
    const n = this.refs.get(view.buffer);
    if (n !== undefined) this.refs.set(view.buffer, n + 1);
  }

  /** Drops one reference to the block under `view`; the last one returns the block to the free list. */
  release(view: Uint8Array): void {
    const n = this.refs.get(view.buffer);
    if (n === undefined) return;
    if (n > 1) return void this.refs.set(view.buffer, n - 1);
    this.refs.delete(view.buffer);
    const block = Buffer.from(view.buffer as ArrayBuffer, 0, this.blockBytes);
    if (this.options.scrub === true) block.fill(0xdd);
    if (this.free.length < this.maxFree) this.free.push(block);
  }

  /** Blocks on the free list (for tests and metrics). */
  get freeBlocks(): number {
    return this.free.length;
  }
}

let shared: BlockPool | undefined;

/** The process's pool of 1 MiB blocks (serve's file reads and upstream bodies share it). */
export function sharedBlockPool(): BlockPool {
  return (shared ??= new BlockPool());
}

/** Replaces the process's pool (tests: a scrubbing one); blocks of the old one are left to the GC. */
export function setSharedBlockPool(pool: BlockPool): void {
  if (pool.blockBytes !== POOL_BLOCK_BYTES) throw new RangeError(`the shared pool's blocks are ${POOL_BLOCK_BYTES} bytes`);
  shared = pool;
}
