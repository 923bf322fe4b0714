/**
 * The hash pool's rings of shared memory and the rules for reusing them. A ring is a SharedArrayBuffer:
 * a small control header (an Int32 cancel flag, padded to {@link RING_CONTROL} bytes), then the bytes.
 *
 * Why reuse at all, beyond the allocation: a SharedArrayBuffer a worker saw is freed only once that
 * worker's isolate collects its garbage, which an idle hash or inflate worker rarely does, so a new ring
 * per layer stayed (~1.5 MiB of RSS kept per gzip layer; breaker6 M1). A ring is cached only once no
 * thread can touch it any more:
 * - a stream that ended: at once (its worker answered the end);
 * - a `shared` ring (another thread writes it too): once the stream ended *and* that writer let go
 *   ({@link SharedRing});
 * - a destroyed stream's: once its worker confirms the close ({@link RingCache.closing} / `closed`),
 *   and a destroyed `shared` stream's never (its writer may still be writing).
 */

/** Bytes of a ring's control header (an Int32 cancel flag, padded). */
export const RING_CONTROL = 8;
/** Ring size of a stream unless asked otherwise (bytes): a few 1 MiB chunks in flight. */
export const DEFAULT_RING_BYTES = 8 << 20;
/** Rings kept for later streams; more are left to the garbage collector. */
const MAX_CACHED = 8;
/**
 * Milliseconds a pool with nothing queued keeps its cached rings: a pull's layers reuse them, a process
 * that stopped hashing gets them back.
 */
const IDLE_MS = 1000;

/** A ring for a stream of about `bytes` (a small blob needs no 8 MiB of shared memory): 64 KiB to 8 MiB. */
export function ringFor(bytes: number): number {
  let size = 64 << 10;
  while (size < bytes && size < DEFAULT_RING_BYTES) size *= 2;
  return size;
}

/** Rings no thread uses any more, kept for later streams of the same size (see the module comment). */
export class RingCache {
  private readonly rings: SharedArrayBuffer[] = [];
  /** Rings of destroyed streams, by stream id, reused once their worker confirms it let go of them. */
  private readonly waiting = new Map<number, SharedArrayBuffer>();
  private idle: NodeJS.Timeout | undefined;

  /** A ring with `size` bytes after its control header: a cached one if there is one, else a new one. */
  take(size: number): SharedArrayBuffer {
    this.cancelDrop();
    // a cached ring is free in every thread (a shared one's writer let go too), so any stream may take it
    const i = this.rings.findIndex((r) => r.byteLength === size + RING_CONTROL);
    return i >= 0 ? this.rings.splice(i, 1)[0]! : new SharedArrayBuffer(size + RING_CONTROL);
  }

  /** Caches a ring no thread uses any more for a later stream. */
  reuse(ring: SharedArrayBuffer): void {
    if (this.rings.length < MAX_CACHED) this.rings.push(ring);
  }

  /** Stream `id` was destroyed: its ring waits for {@link closed} (its worker may still be reading it). */
  closing(id: number, ring: SharedArrayBuffer): void {
    this.waiting.set(id, ring);
  }

  /** The worker of stream `id` confirmed it let go: a ring waiting on that is cached. */
  closed(id: number): void {
    const ring = this.waiting.get(id);
    if (ring === undefined) return;
    this.waiting.delete(id);
    this.reuse(ring);
  }

  /** Lets go of every cached ring (waiting ones stay until their worker confirms). */
  drop(): void {
    this.cancelDrop();
    this.rings.length = 0;
  }

  /** Drops the cached rings after a second unless a ring is taken first (`busy`: not now, work is queued). */
  dropWhenIdle(busy: boolean): void {
    if (this.idle !== undefined || busy || this.waiting.size > 0) return;
    this.idle = setTimeout(() => this.drop(), IDLE_MS).unref();
  }

  /** Stops a scheduled drop. */
  cancelDrop(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
  }
}

/**
 * A ring two threads use (a stream's hash worker and another writer, e.g. the inflate worker): it goes
 * back to the cache once both let go. `letGo` is called once per holder.
 */
export class SharedRing {
  private holders = 2;

  constructor(private readonly cache: RingCache, private readonly ring: SharedArrayBuffer) {}

  /** One holder is done with the ring for good; the last one caches it. */
  letGo(): void {
    if (--this.holders === 0) this.cache.reuse(this.ring);
  }
}
