/**
 * serve's disk bound. A pull-through cache keeps whatever its clients ask for, so without a bound its
 * disk use is theirs to grow until the disk is full and every miss is a 507. The bound is nginx's
 * proxy_cache's (`max_size`, `min_free`): once the blobs in the cache pass `maxBytes`, or the cache's
 * file system has less than `minFreeBytes` free, the least recently served blobs are deleted until both
 * are back within the bound with EVICT_SLACK to spare (so one more store does not start another round).
 * A download whose size is known reserves its bytes and makes room before its first byte (`makeRoom`),
 * so concurrent misses do not each count the same free space; a manifest makes room before its commit.
 * The free-space floor is also checked every CHECK_EVERY_MS, for a disk that others fill.
 *
 * Never evicted, as `prune` keeps them (src/image/prune.ts): a blob a cached image needs (`vmimg pull`,
 * `load`, `--prepare`), one another running writer's lease names, one being fetched or committed, and
 * one an answer is reading from a download that just ended (`pin`). Eviction runs under the cache's GC
 * lock, as prune does: it picks what goes, takes it out of the server's lease (so a miss of it from
 * then on leases it again, and that lease write waits for the lock), then deletes the files.
 *
 * Recency is kept in memory (each store and hit); across restarts it is the blob file's atime (relatime
 * updates it on a read at most daily), or its mtime when later.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { CacheLayout } from '../image/cache.js';
import { scanLeases, withGcLock, type CacheLease } from '../image/lease.js';
import { referencedDigests } from '../image/prune.js';
import { storageErrno } from './storage.js';
import { createLimiter, settleAll } from '../util/limiter.js';

/** Eviction goes this fraction of the bound (the size bound, or the file system's size) past it. */
export const EVICT_SLACK = 0.02;
/** The default free-space floor: this fraction of the cache's file system. */
export const DEFAULT_MIN_FREE_FRACTION = 0.05;
/** How often the free-space floor is checked besides each store (ms): a disk others fill. */
const CHECK_EVERY_MS = 5_000;
/** After an eviction that could not get within the bound, the next waits this long (ms) unless a new blob is stored past the slack. */
const STUCK_RETRY_MS = 30_000;
/** Files deleted at once by one eviction (they are unlinks through the thread pool, under the GC lock). */
const DELETE_CONCURRENCY = 16;
/**
 * Bytes of the reserve file (`serve/space-reserve`) kept so that eviction can run on a disk others
 * filled to the last block: it writes before it deletes (the GC lock's owner, the lease rewritten without
 * the victims), and on ENOSPC the reserve is deleted and the eviction tried once more. Made again once
 * there is room. 1 MiB (or 1/64 of a smaller file system) holds the lock and a lease of ~14,000 digests.
 */
export const SPACE_RESERVE_BYTES = 1 << 20;
/** Evictions run back to back at most this many times for one miss whose room the first did not make (space freed only when open files close). */
const ROOM_ROUNDS = 3;

/** The bound (ServeOptions.maxCacheBytes / minFree). */
export interface BudgetLimits {
  /** Bytes of blobs the cache may hold (undefined: no size bound, only the free-space floor). */
  readonly maxBytes?: number;
  /** Bytes the cache's file system keeps free (0: no floor). */
  readonly minFreeBytes: number;
}

/** What the budget needs of the server. */
export interface BudgetHooks {
  /** The server's own lease: what goes is taken out of it. */
  readonly lease: CacheLease;
  /** A digest being fetched or committed now: never evicted. */
  readonly busy: (digest: string) => boolean;
  /** Called with the digests chosen to go, before their files are deleted (e.g. to forget them from the lease holder's memory). */
  readonly evicting?: (digests: string[]) => void;
  readonly warn: (message: string) => void;
}

/** Totals for `/metrics`. */
export interface BudgetCounts {
  /** Bytes of the blobs the budget counts (0 until the scan at start has ended). */
  bytes: number;
  evictedBlobs: number;
  evictedBytes: number;
}

interface Space {
  free: number;
  total: number;
}

/** The blobs in the cache by digest, least recently used first (a Map keeps insertion order). */
export class CacheBudget {
  /** digest → size, least recently used first. */
  private entries = new Map<string, number>();
  /**
   * Manifests stored or served this run: evicted only after every other blob, as a known tag's last
   * manifest is what serve answers when the upstream is down (stale-if-error), and they are small.
   */
  private readonly manifests = new Set<string>();
  readonly counts: BudgetCounts = { bytes: 0, evictedBlobs: 0, evictedBytes: 0 };
  /** Bytes downloads in flight reserved (makeRoom), by digest: not in the store yet, but soon. */
  private readonly reserved = new Map<string, number>();
  private reservedBytes = 0;
  /**
   * The reservations the size bound counts: not one larger than the bound itself, which could only push
   * every other blob out and then go first once stored (the free-space floor counts all of them).
   */
  private reservedSized = 0;
  /** Answers reading a blob from its (ended) download, by digest. */
  private readonly pins = new Map<string, number>();
  private running: Promise<void> | undefined;
  /** Set when a run could not get within the bound: no new run before `until` unless the bytes pass `bytes`. */
  private stuck: { until: number; bytes: number } | undefined;
  /** The size bound is passed by what no eviction may take (cached images, other writers): said once until it is not. */
  private overByKept = false;
  private loaded: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** A check came while an eviction ran (a store, an unpin, the timer): it is made when the run ends. */
  private checkAfterRun = false;
  /** The check a store scheduled, and the last check's look at the bound (idle waits for both). */
  private soon: Promise<void> = Promise.resolve();
  private checking: Promise<void> = Promise.resolve();
  /**
   * The free-space reading under way: the misses of an image come at once, so they share one statfs
   * (a trip through a thread pool a cold round's fsyncs keep busy). Never reused once read: a disk
   * others fill changes between two misses.
   */
  private reading: Promise<Space> | undefined;

  constructor(
    private readonly cache: CacheLayout,
    readonly limits: BudgetLimits,
    private readonly hooks: BudgetHooks,
    private readonly signal?: AbortSignal,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Reads the blobs already in the cache (sizes, and atime or mtime for their order), then checks the
   * bound, and from then on checks the free-space floor every CHECK_EVERY_MS until `stop`.
   */
  start(): Promise<void> {
    this.loaded ??= (async () => {
      const found: [string, number, number][] = [];
      for (const name of await fs.readdir(this.cache.blobsDir).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        const st = await fs.stat(join(this.cache.blobsDir, name)).catch(() => undefined);
        if (st?.isFile()) found.push([`sha256:${name}`, st.size, Math.max(st.atimeMs, st.mtimeMs)]);
      }
      found.sort((a, b) => a[2] - b[2]);
      // stores and hits during the scan are more recent than anything it found
      const during = this.entries;
      this.entries = new Map();
      this.counts.bytes = 0;
      for (const [d, size] of found) if (!during.has(d)) this.add(d, size);
      for (const [d, size] of during) this.add(d, size);
      await this.keepReserve();
      this.check();
      if (this.limits.minFreeBytes > 0 && !this.signal?.aborted) {
        this.timer = setInterval(() => this.check(), CHECK_EVERY_MS);
        this.timer.unref();
      }
    })();
    return this.loaded;
  }

  /** Stops the periodic check (shutdown). */
  stop(): void {
    clearInterval(this.timer);
  }

  /** A blob stored in the cache (`size` bytes): the most recently used; its reservation ends; may start an eviction. */
  stored(digest: string, size: number, kind: 'blob' | 'manifest' = 'blob'): void {
    this.release(digest);
    this.used(digest, size, kind);
    // once its download or commit has let go of it (it is busy until then, so not yet evictable)
    this.soon = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.check());
  }

  /** A blob of `size` bytes served from the cache: the most recently used. */
  used(digest: string, size: number, kind: 'blob' | 'manifest' = 'blob'): void {
    if (!Number.isSafeInteger(size) || size < 0) return;
    if (kind === 'manifest') this.manifests.add(digest);
    const known = this.entries.get(digest);
    if (known !== undefined) {
      this.entries.delete(digest);
      this.entries.set(digest, known);
      return;
    }
    this.add(digest, size);
  }

  /** A blob served from memory (small-blobs.ts): the most recently used if the cache still holds it; never counted anew (it may have been evicted). */
  touch(digest: string): void {
    const known = this.entries.get(digest);
    if (known === undefined) return;
    this.entries.delete(digest);
    this.entries.set(digest, known);
  }

  /**
   * Reserves `bytes` for `digest`'s download (until `stored` or `release`) and, when they would pass
   * the bound, evicts first (waiting for an eviction already running). Never fails: a blob that still
   * does not fit meets the store's own free-space check.
   */
  async makeRoom(digest: string, bytes: number): Promise<void> {
    this.release(digest);
    if (!Number.isSafeInteger(bytes) || bytes <= 0) return;
    this.reserved.set(digest, bytes);
    this.reservedBytes += bytes;
    if (this.fitsBound(bytes)) this.reservedSized += bytes;
    if (this.stuckNow() || !(await this.over())) return;
    await this.running;
    // space frees only once no answer has an evicted file open: a round may free less than it chose
    for (let round = 0; round < ROOM_ROUNDS && (await this.over()); round++) {
      // evicting frees nothing this blob can use when it would not fit with every blob gone, or alone
      // passes the size bound (stored, it is the next to go: the others stay)
      const { free } = await this.space();
      if (bytes > free + this.counts.bytes || !this.fitsBound(bytes) || this.stuckNow()) return;
      const before = this.counts.evictedBlobs;
      await this.evict();
      if (this.counts.evictedBlobs === before) return; // nothing could go
    }
  }

  /** Ends `digest`'s reservation (its download failed, or was stored). */
  release(digest: string): void {
    const bytes = this.reserved.get(digest);
    if (bytes === undefined) return;
    this.reserved.delete(digest);
    this.reservedBytes -= bytes;
    if (this.fitsBound(bytes)) this.reservedSized -= bytes;
  }

  /** An answer reads `digest` from its download's files: not evicted until `unpin`. */
  pin(digest: string): void {
    this.pins.set(digest, (this.pins.get(digest) ?? 0) + 1);
  }

  unpin(digest: string): void {
    const n = (this.pins.get(digest) ?? 1) - 1;
    if (n > 0) return void this.pins.set(digest, n);
    this.pins.delete(digest);
    if (this.entries.has(digest)) this.check(); // a run may have passed it by
  }

  /** Resolves once the scan at start, the checks stores asked for and the eviction they started (if any) ended. */
  async idle(): Promise<void> {
    await this.loaded;
    await this.soon;
    await this.checking;
    await this.running;
  }

  /** Whether a blob of `bytes` fits the size bound at all. */
  private fitsBound(bytes: number): boolean {
    return this.limits.maxBytes === undefined || bytes <= this.limits.maxBytes;
  }

  /** True while a run that could not get within the bound is recent and little was stored since. */
  private stuckNow(): boolean {
    return this.stuck !== undefined && this.now() < this.stuck.until && this.counts.bytes <= this.stuck.bytes;
  }

  private add(digest: string, size: number): void {
    this.entries.set(digest, size);
    this.counts.bytes += size;
  }

  /** Starts an eviction when the bound is passed; during a run, once it ends. */
  private check(): void {
    if (this.running !== undefined) {
      this.checkAfterRun = true;
      return;
    }
    if (this.stuckNow()) return;
    this.checking = this.over().then(
      (over) => {
        if (over && this.running === undefined) void this.evict();
      },
      () => undefined,
    );
  }

  /** Whether the blobs and the reservations pass the size bound or the free-space floor. */
  private async over(): Promise<boolean> {
    const { maxBytes, minFreeBytes } = this.limits;
    if (maxBytes !== undefined && this.counts.bytes + this.reservedSized > maxBytes) return true;
    if (minFreeBytes <= 0) return false;
    const { free } = await this.space();
    return free - this.reservedBytes < minFreeBytes;
  }

  /** The cache's file system's free and total bytes (the reading under way, unless `fresh`). */
  private space(fresh = false): Promise<Space> {
    if (fresh || this.reading === undefined) {
      const reading: Promise<Space> = this.statfs().finally(() => {
        if (this.reading === reading) this.reading = undefined;
      });
      this.reading = reading;
    }
    return this.reading;
  }

  private async statfs(): Promise<Space> {
    try {
      const st = await fs.statfs(this.cache.root);
      return { free: st.bavail * st.bsize, total: st.blocks * st.bsize };
    } catch {
      return { free: Number.POSITIVE_INFINITY, total: 0 }; // no file system to ask: only the size bound holds
    }
  }

  /**
   * One eviction at a time; on a disk too full for its own writes the reserve goes and it is tried once
   * more; another failure is a warning (the cache is then over its bound until the next).
   */
  private evict(): Promise<void> {
    this.running ??= this.evictOnce()
      .catch(async (err: unknown) => {
        if (storageErrno(err) === undefined || !(await this.dropReserve())) throw err;
        await this.evictOnce();
      })
      .then(
        () => this.keepReserve(),
        (err: unknown) => {
          if (this.signal?.aborted) return; // shutting down: the lock wait was cut, nothing was lost
          this.hooks.warn(`evicting blobs to keep the cache within its bound failed: ${err instanceof Error ? err.message : String(err)}`);
        },
      )
      .finally(() => {
        this.running = undefined;
        if (this.checkAfterRun) {
          this.checkAfterRun = false;
          this.check();
        }
      });
    return this.running;
  }

  private get reservePath(): string {
    return join(this.cache.root, 'serve', 'space-reserve');
  }

  /** Makes the reserve file when missing and there is room for it above the floor (best effort). */
  private async keepReserve(): Promise<void> {
    try {
      if ((await fs.stat(this.reservePath).catch(() => undefined)) !== undefined) return;
      const { free, total } = await this.space();
      const bytes = Math.min(SPACE_RESERVE_BYTES, Math.floor(total / 64));
      if (bytes <= 0 || free - bytes < this.limits.minFreeBytes) return;
      await fs.mkdir(join(this.cache.root, 'serve'), { recursive: true });
      await fs.writeFile(this.reservePath, Buffer.alloc(bytes));
    } catch {
      await fs.rm(this.reservePath, { force: true }).catch(() => undefined); // a short one holds nothing anyone can count on
    }
  }

  /** Deletes the reserve file; false when there was none. */
  private async dropReserve(): Promise<boolean> {
    try {
      await fs.unlink(this.reservePath);
      return true;
    } catch {
      return false;
    }
  }

  private async evictOnce(): Promise<void> {
    const { maxBytes, minFreeBytes } = this.limits;
    const { busy } = this.hooks;
    const movable = (d: string): boolean => !busy(d) && !this.pins.has(d) && !this.reserved.has(d);
    if (!someKey(this.entries, movable)) {
      // nothing it could take now: no lock taken, and the next store or check tries again
      return;
    }
    await withGcLock(
      this.cache,
      async () => {
        const wanted = await referencedDigests(this.cache);
        const others = await scanLeases(this.cache, this.hooks.lease.path);
        const space = await this.space(true);
        const slack = (bound: number): number => Math.ceil(bound * EVICT_SLACK);
        let bySize = maxBytes === undefined ? 0 : this.counts.bytes + this.reservedSized - (maxBytes - slack(maxBytes));
        let byFree = minFreeBytes <= 0 ? 0 : minFreeBytes + slack(space.total) - (space.free - this.reservedBytes);
        // chosen with no await between the checks and the lease: a miss from then on leases the blob
        // again, and that write waits for this lock, so it lands after the files are gone
        const gone: [string, number][] = [];
        let kept = 0;
        let skipped = false;
        // layers and configs first, least recently used first; manifests only if that was not enough
        // with nothing left in flight (a blob busy now may go at the next check, before any manifest)
        for (const manifests of [false, true]) {
          if (manifests && skipped) break;
          for (const [digest, size] of this.entries) {
            if (bySize <= 0 && byFree <= 0) break;
            if (this.manifests.has(digest) !== manifests) continue;
            if (wanted.has(digest) || others.digests.has(digest)) {
              kept += size;
              continue;
            }
            if (!movable(digest)) {
              skipped = true;
              continue;
            }
            gone.push([digest, size]);
            bySize -= size;
            byFree -= size;
          }
        }
        if (gone.length > 0) {
          const digests = gone.map(([d]) => d);
          this.hooks.evicting?.(digests);
          // a failed rewrite leaves the lease naming them (it takes them back), and their files stay
          await this.hooks.lease.forget(digests);
          for (const [d, size] of gone) {
            if (this.entries.delete(d)) this.counts.bytes -= size;
            this.manifests.delete(d);
          }
          const limit = createLimiter(DELETE_CONCURRENCY);
          // every delete ends before the lock goes (settleAll), a failed one too
          await settleAll(gone.map(([digest, size]) => limit(async () => {
            const hex = digest.slice('sha256:'.length);
            // its gzip checkpoints (src/lazy) go with it, as prune takes them
            await fs.rm(join(this.cache.checkpointsDir, `${hex}.zran`), { force: true });
            await fs.rm(join(this.cache.checkpointsDir, `${hex}.gzpart`), { force: true });
            try {
              await fs.unlink(join(this.cache.blobsDir, hex));
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // gone already (a prune, a `vmimg rm`): nothing freed
              throw err;
            }
            this.counts.evictedBlobs++;
            this.counts.evictedBytes += size;
          })));
        }
        // what was left over: blocked for good by images and other writers' leases (said once), or for
        // now by downloads and answers in flight (the next store or check tries again)
        const blockedByKept = maxBytes !== undefined && kept > maxBytes - slack(maxBytes);
        if (blockedByKept && !this.overByKept) {
          this.hooks.warn(`blobs that cached images or running pulls need take ${kept} bytes, over the cache's bound of ${maxBytes} (vmimg rm, then vmimg prune, frees them)`);
        }
        this.overByKept = blockedByKept;
        // short because of downloads in flight (skipped, or their reservations counted) is for now only
        const short = bySize > 0 || byFree > 0;
        this.stuck = short && !skipped && this.reservedBytes === 0 ? { until: this.now() + STUCK_RETRY_MS, bytes: this.counts.bytes + slack(maxBytes ?? space.total) } : undefined;
      },
      this.signal,
    );
  }
}

/** Whether some key of `map` passes `test` (without copying the keys). */
function someKey<K>(map: Map<K, unknown>, test: (key: K) => boolean): boolean {
  for (const key of map.keys()) if (test(key)) return true;
  return false;
}
