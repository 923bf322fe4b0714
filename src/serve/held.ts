/**
 * serve's one lease, written as few times as it can be: each `add` of the lease appends a line under
 * the cache's GC lock and datasyncs it, and every miss adds before its first byte lands, so with a
 * manifest's blobs downloading at once those writes queued behind one another, ahead of the upstream
 * GETs. Digests already held return at once; digests asked while a write runs go in the next one, or
 * wait for the running one when it has them (an image's manifest commit and its prefetch both add the
 * image's blobs: two lease writes, one after the other, before the first upstream byte).
 */
import type { CacheLease } from '../image/lease.js';

/** The digests the server's lease holds, added in batches. */
export class LeaseHolder {
  private readonly held = new Set<string>();
  private readonly queued = new Set<string>();
  /** Digests in the write under way, and that write: asked again meanwhile, they wait for it, not for a second write. */
  private readonly writing = new Map<string, Promise<void>>();
  private tail: Promise<void> = Promise.resolve();

  constructor(readonly lease: CacheLease) {}

  /** Resolves once every digest in `digests` is in the lease file. */
  add(digests: Iterable<string>): Promise<void> {
    let fresh = false;
    const under = new Set<Promise<void>>();
    for (const d of digests) {
      if (this.held.has(d)) continue;
      const w = this.writing.get(d);
      if (w !== undefined) under.add(w);
      else {
        this.queued.add(d);
        fresh = true;
      }
    }
    if (fresh) {
      const step = this.tail.catch(() => undefined).then(() => this.flush());
      this.tail = step;
      under.add(step);
    }
    return under.size === 0 ? Promise.resolve() : Promise.all(under).then(() => undefined);
  }

  /**
   * Forgets digests the lease file no longer holds (evicted, budget.ts; the file was rewritten without
   * them): asked again, they are written again.
   */
  forget(digests: Iterable<string>): void {
    for (const d of digests) this.held.delete(d);
  }

  /** Writes what is queued (nothing when an earlier step took it; that step's caller shares its outcome). */
  private async flush(): Promise<void> {
    if (this.queued.size === 0) return;
    const batch = [...this.queued];
    this.queued.clear();
    const write = this.lease.add(batch);
    for (const d of batch) this.writing.set(d, write);
    try {
      await write;
    } catch (err) {
      for (const d of batch) this.queued.add(d); // the next add tries them again
      throw err;
    } finally {
      for (const d of batch) this.writing.delete(d);
    }
    for (const d of batch) this.held.add(d);
  }
}
