/** What the request handlers share: the store, downloads, upstream access, tables and counters. */
import type { FetchedManifest } from '../registry/index.js';
import type { BlobStore } from '../store/index.js';
import type { CacheBudget } from './budget.js';
import type { Fills } from './fill.js';
import type { LeaseHolder } from './held.js';
import type { Htpasswd } from './htpasswd.js';
import type { Prebaker } from './prepare.js';
import type { PendingCommits } from './commits.js';
import type { Prefetcher } from './prefetch.js';
import type { SmallBlobs } from './small-blobs.js';
import type { ServeMetrics } from './metrics.js';
import type { TagTable } from './tags.js';
import type { UpstreamAccess } from './upstream.js';

/** A manifest as the upstream sent it (verified against its digest), or as the store holds it. */
export type ServedManifest = Pick<FetchedManifest, 'bytes' | 'mediaType' | 'digest'>;

/** Blob sizes learnt from manifests that went through (so a miss knows the size before the upstream says it). */
export const MAX_KNOWN_SIZES = 200_000;

export interface ServeState {
  readonly store: BlobStore;
  readonly fills: Fills;
  /** The cache's disk bound: told of every blob stored and served; evicts the least recently served. */
  readonly budget: CacheBudget;
  /** Verified small blobs kept in memory: a hit on one reads no file. */
  readonly small: SmallBlobs;
  readonly upstream: UpstreamAccess;
  readonly metrics: ServeMetrics;
  readonly tags: TagTable;
  /** How long a tag's revalidation waits for the upstream before the stale digest is served (ms). */
  readonly revalidateTimeoutMs: number;
  /** Upstreams a revalidation found down, left alone for a while: their known tags are served stale at once. */
  readonly down: DownUpstreams;
  /** digest → size, from descriptors in manifests served (bounded: MAX_KNOWN_SIZES). */
  readonly sizes: Map<string, number>;
  /** manifest digest → media type, as the upstream sent it. */
  readonly mediaTypes: Map<string, string>;
  /** One lease for the server's life: what it stores is kept from `vmimg prune` while it runs. */
  readonly held: LeaseHolder;
  /** Upstream work in progress by key (tag revalidations, manifest fetches): one call however many ask. */
  readonly pending: Map<string, Promise<unknown>>;
  /** Manifests answered before their commit (lease, store) ended, served from memory meanwhile. */
  readonly commits: PendingCommits;
  /** A manifest that could not be stored (served all the same) and the like: one line each. */
  readonly warn: (message: string) => void;
  /** Largest manifest accepted from an upstream (bytes). */
  readonly maxManifestBytes: number;
  /** Client auth (`--htpasswd`); every request is refused without valid credentials when set. */
  readonly auth?: Htpasswd;
  /** `--prepare`: images that pass are flattened into the cache; their layer indexes become referrers. */
  readonly prepare?: Prebaker;
  /** Starts the blobs of image manifests sent to clients ahead of them (absent: `--prefetch 0`). */
  readonly prefetch?: Prefetcher;
}

/**
 * Upstreams found down by a tag's revalidation, each until `holdMs` later: meanwhile a tag with a known
 * digest is served stale at once instead of waiting up to the revalidate timeout again (an outage would
 * otherwise cost every request of every tag that wait). A tag never seen and a blob still ask, having
 * nothing else to answer with; a manifest digest the cache lacks is a 503 at once (manifests.ts). A tag
 * fetched or revalidated ends the hold.
 */
export class DownUpstreams {
  private readonly until = new Map<string, number>();

  constructor(readonly holdMs: number, private readonly now: () => number = Date.now) {}

  /** Whether `upstream` (its URL) failed a revalidation less than `holdMs` ago. */
  held(upstream: string): boolean {
    const until = this.until.get(upstream);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.until.delete(upstream);
    return false;
  }

  failed(upstream: string): void {
    if (this.holdMs > 0) this.until.set(upstream, this.now() + this.holdMs);
  }

  answered(upstream: string): void {
    this.until.delete(upstream);
  }
}

/** Runs `work` once per `key` at a time; concurrent callers share its promise. */
export function once<T>(s: ServeState, key: string, work: () => Promise<T>): Promise<T> {
  const running = s.pending.get(key) as Promise<T> | undefined;
  if (running !== undefined) return running;
  const p = work().finally(() => s.pending.delete(key));
  s.pending.set(key, p);
  return p;
}

/** Remembers a digest → size (dropping the oldest past the bound). */
export function learnSize(s: ServeState, digest: string, size: number): void {
  if (s.sizes.has(digest)) return;
  s.sizes.set(digest, size);
  if (s.sizes.size > MAX_KNOWN_SIZES) s.sizes.delete(s.sizes.keys().next().value as string);
}
