/**
 * Downloads started ahead of the clients: an image manifest sent to a client (a GET, not a HEAD) starts
 * the one download of each of its blobs not in the store — config first, then layers in order — at most
 * `limit` at once beside what clients ask for themselves. A client pulling an image asks for the blobs
 * one after another (skopeo, `vmimg pull` and containerd a few at a time), so without this each small
 * blob's upstream round trip waited for the blob before it; with it they come while the big layer
 * streams. A client asking for a blob joins its download, started or not (singleflight), so the upstream
 * still sends each blob once. `--prefetch 0` leaves fetching to the clients (e.g. a fleet that only reads
 * parts of layers with `pull --lazy`).
 */
import { parseManifestDocument } from '../manifest/index.js';
import { createLimiter, type Limiter } from '../util/limiter.js';
import { joinFill } from './blobs.js';
import type { RouteTarget } from './routes.js';
import type { ServeState } from './state.js';

/** Downloads started ahead of clients at once, by default. */
export const DEFAULT_PREFETCH = 3;

/** Starts the blobs of manifests that pass ahead of their clients. */
export class Prefetcher {
  private readonly limit: Limiter;
  private readonly pending = new Set<Promise<void>>();
  /** Manifests whose blobs are being fetched ahead now (one job per manifest however often it is sent). */
  private readonly running = new Set<string>();

  constructor(limit: number) {
    this.limit = createLimiter(limit);
  }

  /** An image manifest's body went (or is going) to a client: its blobs not stored yet start downloading (background). */
  served(s: ServeState, t: RouteTarget, digest: string, bytes: Buffer): void {
    if (this.running.has(digest)) return;
    let doc;
    try {
      doc = parseManifestDocument(bytes);
    } catch {
      return; // not a manifest vmimg reads: nothing to fetch ahead
    }
    if (doc.kind !== 'manifest') return; // an index: its child manifest, once asked, says what to fetch
    const blobs = [doc.manifest.config, ...doc.manifest.layers];
    const job = (async () => {
      await s.held.add(blobs.map((d) => d.digest)); // one lease write for the image, not one per download
      await Promise.all(blobs.map((d) => this.limit(async () => {
        if (await s.store.has(d.digest, d.size)) return;
        await joinFill(s, t, d.digest, d.size).finished();
      }).catch(() => undefined))); // a failed download is the next client's answer, not ours
    })().catch(() => undefined);
    this.pending.add(job);
    this.running.add(digest);
    void job.finally(() => {
      this.pending.delete(job);
      this.running.delete(digest);
    });
  }

  /** Resolves once the downloads started or queued so far have ended. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}
