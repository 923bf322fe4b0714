/**
 * serve's disk bound. A pull-through cache keeps whatever its clients ask for, so without a bound its
 * disk use is theirs to grow until the disk is full and every miss is a 507. The bound is nginx's
 * proxy_cache's (`max_size`, `min_free`): once the blobs in the cache pass `maxBytes`, or the cache's
 * file system has less than `minFreeBytes` free, the least recently served blobs are deleted until both
 * are back within the bound with SLACK to spare (so one more commit does not start another eviction).
 * A miss whose size is known makes room for itself before its first byte (`makeRoom`).
 *
 * Never evicted, as `prune` keeps them (src/image/prune.ts): a blob a cached image needs (`vmimg pull`,
 * `load`, `--prepare`), one another running writer's lease names, and one being fetched or committed.
 * Eviction runs under the cache's GC lock, as prune does; the server's lease forgets what went, so a
 * later miss of it leases it again before its first byte.
 *
 * Recency is kept in memory (each store and hit); across restarts it is the blob file's atime (relatime
 * updates it on a read at most daily), or its mtime when later.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { CacheLayout } from '../image/cache.js';
import { scanLeases, withGcLock, type CacheLease } from '../image/lease.js';
import { referencedDigests } from '../image/prune.js';

/** Eviction goes this fraction of the bound (the size bound, or the file system's size) past it. */
export const EVICT_SLACK = 0.02;
/** The default free-space floor: this fraction of the cache's file system. */
export const DEFAULT_MIN_FREE_FRACTION = 0.05;
/** After an eviction that could not get within the bound, the next waits this long (ms) unless a new blob is stored past SLACK. */
const STUCK_RETRY_MS = 30_000;

/** The bound (ServeOptions.maxCacheBytes / minFree). */
export interface BudgetLimits {
  /** Bytes of blobs the cache may hold (undefined: no size bound, only the free-space floor). */
  readonly maxBytes?: number;
  /** Bytes the cache's file system keeps free (0: no floor). */
  readonly minFreeBytes: number;
}

/** What the budget needs of the server. */
export interface BudgetHooks {
  /** The server's own lease: what goes is forgotten from it. */
  readonly lease: CacheLease;
  /** A digest being fetched or committed now: never evicted. */
  readonly busy: (digest: string) => boolean;
  /** Called after digests were evicted (e.g. to forget them from the lease holder's memory). */
  readonly evicted?: (digests: string[]) => void;
  readonly warn: (message: string) => void;
}

/** Totals for `/metrics`. */
export interface BudgetCounts {
  /** Bytes of the blobs the budget counts. */
  bytes: number;
  evictedBlobs: number;
  evictedBytes: number;
}

interface Entry {
  size: number;
}

/** The blobs in the cache by digest, least recently used first (a Map keeps insertion order). */
export class CacheBudget {
  private entries = new Map<string, Entry>();
  readonly counts: BudgetCounts = { bytes: 0, evictedBlobs: 0, evictedBytes: 0 };
  private running: Promise<void> | undefined;
  /** Set when a run could not get within the bound: no new run before `until` unless the bytes pass `bytes`. */
  private stuck: { until: number; bytes: number } | undefined;
  private loaded: Promise<void> | undefined;
  /**
   * The free-space reading under way: every miss and store asks, and the misses of an image come at
   * once, so they share one statfs (a trip through a thread pool a cold round's fsyncs keep busy).
   * Never reused once read: a disk others fill changes between two misses.
   */
  private reading: Promise<{ free: number; total: number }> | undefined;

  constructor(
    private readonly cache: CacheLayout,
    readonly limits: BudgetLimits,
    private readonly hooks: BudgetHooks,
    private readonly signal?: AbortSignal,
    private readonly now: () => number = Date.now,
  ) {}

  /** Reads the blobs already in the cache (sizes, and atime or mtime for their order); then checks the bound. */
  load(): Promise<void> {
    this.loaded ??= (async () => {
      const found: [string, Entry, number][] = [];
      for (const name of await fs.readdir(this.cache.blobsDir).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        const st = await fs.stat(join(this.cache.blobsDir, name)).catch(() => undefined);
        if (st?.isFile()) found.push([`sha256:${name}`, { size: st.size }, Math.max(st.atimeMs, st.mtimeMs)]);
      }
      found.sort((a, b) => a[2] - b[2]);
      // stores and hits during the scan are more recent than anything it found
      const during = this.entries;
      this.entries = new Map();
      this.counts.bytes = 0;
      for (const [d, e] of found) if (!during.has(d)) this.add(d, e.size);
      for (const [d, e] of during) this.add(d, e.size);
      this.check();
    })();
    return this.loaded;
  }

  /** A blob stored in the cache (`size` bytes): the most recently used; may start an eviction. */
  stored(digest: string, size: number): void {
    this.used(digest, size);
    this.check();
  }

  /** A blob of `size` bytes served from the cache: the most recently used. */
  used(digest: string, size: number): void {
    const e = this.entries.get(digest);
    if (e !== undefined) {
      this.entries.delete(digest);
      this.entries.set(digest, e);
      return;
    }
    this.add(digest, size);
  }

  /**
   * Makes room for `bytes` about to be stored: when they would pass the bound, evicts first (waiting
   * for an eviction already running). Never fails: a blob that still does not fit meets the store's own
   * free-space check.
   */
  async makeRoom(bytes: number): Promise<void> {
    if (this.stuckNow() || !(await this.over(bytes))) return;
    await this.running;
    if (!(await this.over(bytes))) return;
    // a blob that would not fit with every blob gone is refused as it is: evicting for it frees nothing it can use
    const { free } = await this.space();
    if (bytes > free + this.counts.bytes) return;
    await this.evict(bytes);
  }

  /** Resolves once the eviction running now (if any) ended. */
  async idle(): Promise<void> {
    await this.loaded;
    await this.running;
  }

  /** True while a run that could not get within the bound is recent and little was stored since. */
  private stuckNow(): boolean {
    return this.stuck !== undefined && this.now() < this.stuck.until && this.counts.bytes <= this.stuck.bytes;
  }

  private add(digest: string, size: number): void {
    this.entries.set(digest, { size });
    this.counts.bytes += size;
  }

  /** Starts an eviction when the bound is passed and none runs. */
  private check(): void {
    if (this.running !== undefined || this.stuckNow()) return;
    void this.over(0).then((over) => {
      if (over && this.running === undefined) void this.evict(0);
    });
  }

  /** Whether `extra` more bytes would pass the size bound or the free-space floor. */
  private async over(extra: number): Promise<boolean> {
    const { maxBytes, minFreeBytes } = this.limits;
    if (maxBytes !== undefined && this.counts.bytes + extra > maxBytes) return true;
    if (minFreeBytes <= 0) return false;
    const { free } = await this.space();
    return free - extra < minFreeBytes;
  }

  /** The cache's file system's free and total bytes (the reading under way, unless `fresh`). */
  private space(fresh = false): Promise<{ free: number; total: number }> {
    if (fresh || this.reading === undefined) {
      const reading = this.statfs().finally(() => {
        if (this.reading === reading) this.reading = undefined;
      });
      this.reading = reading;
    }
    return this.reading;
  }

  private async statfs(): Promise<{ free: number; total: number }> {
    try {
      const st = await fs.statfs(this.cache.root);
      return { free: st.bavail * st.bsize, total: st.blocks * st.bsize };
    } catch {
      return { free: Number.POSITIVE_INFINITY, total: 0 }; // no file system to ask: only the size bound holds
    }
  }

  /** One eviction at a time; a failure is a warning (the cache is then over its bound until the next). */
  private evict(extra: number): Promise<void> {
    this.running ??= this.evictOnce(extra)
      .catch((err: unknown) => {
        if (this.signal?.aborted) return; // shutting down: the lock wait was cut, nothing was lost
        this.hooks.warn(`evicting blobs to keep the cache within its bound failed: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async evictOnce(extra: number): Promise<void> {
    const { maxBytes, minFreeBytes } = this.limits;
    if (![...this.entries.keys()].some((d) => !this.hooks.busy(d))) {
      // nothing it could take (a disk filled by others): no lock taken, no run until STUCK_RETRY_MS
      this.stuck = { until: this.now() + STUCK_RETRY_MS, bytes: this.counts.bytes };
      return;
    }
    await withGcLock(
      this.cache,
      async () => {
        const wanted = await referencedDigests(this.cache);
        const others = await scanLeases(this.cache, this.hooks.lease.path);
        const space = await this.space(true);
        const slack = (bound: number): number => Math.ceil(bound * EVICT_SLACK);
        let bySize = maxBytes === undefined ? 0 : this.counts.bytes + extra - (maxBytes - slack(maxBytes));
        let byFree = minFreeBytes <= 0 ? 0 : minFreeBytes + slack(space.total) - (space.free - extra);
        const gone: string[] = [];
        for (const [digest, e] of this.entries) {
          if (bySize <= 0 && byFree <= 0) break;
          if (wanted.has(digest) || others.digests.has(digest) || this.hooks.busy(digest)) continue;
          this.entries.delete(digest);
          this.counts.bytes -= e.size;
          bySize -= e.size; // counted no more, whether its file was still there or not
          gone.push(digest);
          const hex = digest.slice('sha256:'.length);
          // its gzip checkpoints (src/lazy) go with it, as prune takes them
          await fs.rm(join(this.cache.checkpointsDir, `${hex}.zran`), { force: true });
          await fs.rm(join(this.cache.checkpointsDir, `${hex}.gzpart`), { force: true });
          const st = await fs.lstat(join(this.cache.blobsDir, hex)).catch(() => undefined);
          if (st === undefined) continue; // gone already (a prune, a `vmimg rm`): nothing freed
          await fs.rm(join(this.cache.blobsDir, hex), { force: true });
          this.counts.evictedBlobs++;
          this.counts.evictedBytes += e.size;
          // the blocks go only when no other link holds them (an export's hard link)
          if (st.nlink <= 1) byFree -= st.blocks * 512;
        }
        if (gone.length > 0) {
          await this.hooks.lease.forget(gone);
          this.hooks.evicted?.(gone);
        }
        if (bySize > 0 || byFree > 0) {
          // the size bound is the operator's promise; the free-space floor is serve's courtesy to a disk others fill too
          if (this.stuck === undefined && bySize > 0) {
            this.hooks.warn(`the cache holds ${this.counts.bytes} bytes of blobs, over its bound of ${maxBytes}: the rest is needed by cached images or running pulls (vmimg rm, then vmimg prune, frees them)`);
          }
          this.stuck = { until: this.now() + STUCK_RETRY_MS, bytes: this.counts.bytes + slack(maxBytes ?? space.total) };
        } else this.stuck = undefined;
      },
      this.signal,
    );
  }
}
