/**
 * serve's one lease, written as few times as it can be: each `add` of the lease appends a line under
 * the cache's GC lock and datasyncs it, and every miss adds before its first byte lands, so with a
 * manifest's blobs downloading at once those writes queued behind one another, ahead of the upstream
 * GETs. Digests already held return at once; digests asked while a write runs go in the next one.
 */
import type { CacheLease } from '../image/lease.js';

/** The digests the server's lease holds, added in batches. */
export class LeaseHolder {
  private readonly held = new Set<string>();
  private readonly queued = new Set<string>();
  private tail: Promise<void> = Promise.resolve();

  constructor(readonly lease: CacheLease) {}

  /** Resolves once every digest in `digests` is in the lease file. */
  add(digests: Iterable<string>): Promise<void> {
    let fresh = false;
    for (const d of digests) {
      if (this.held.has(d)) continue;
      this.queued.add(d);
      fresh = true;
    }
    if (!fresh) return Promise.resolve();
    const step = this.tail.catch(() => undefined).then(() => this.flush());
    this.tail = step;
    return step;
  }

  /** Writes what is queued (nothing when an earlier step took it; that step's caller shares its outcome). */
  private async flush(): Promise<void> {
    if (this.queued.size === 0) return;
    const batch = [...this.queued];
    this.queued.clear();
    try {
      await this.lease.add(batch);
    } catch (err) {
      for (const d of batch) this.queued.add(d); // the next add tries them again
      throw err;
    }
    for (const d of batch) this.held.add(d);
  }
}
