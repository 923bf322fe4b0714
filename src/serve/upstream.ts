/**
 * Everything serve asks of upstream registries, in one small module (the seam to swap for a blob
 * reader): tag resolution (HEAD), manifests, blob ranges, and small API answers (tags/list,
 * referrers). Counts upstream requests and bytes for /metrics.
 */
import type { Readable } from 'node:stream';
import { RegistryClient, type ApiAnswer, type FetchedManifest, type RegistryClientOptions } from '../registry/index.js';
import type { Descriptor } from '../manifest/types.js';
import { DIRECT_MIN_BYTES } from '../registry/direct-get.js';
import type { ServeMetrics } from './metrics.js';
import type { RouteTarget } from './routes.js';

/** A blob body from some offset on, and the blob's size when known. */
export interface UpstreamBlob {
  readonly stream: Readable;
  readonly offset: number;
  readonly from: string;
  /** offset + the answer's Content-Length, when it sent one. */
  readonly total?: number;
}

/** The upstream side of serve; one instance per server. */
export class UpstreamAccess {
  private readonly client: RegistryClient;

  constructor(
    options: RegistryClientOptions,
    private readonly metrics: ServeMetrics,
    /** Blobs (of known size) of at least this many bytes are read directly (DIRECT_MIN_BYTES; 0: every blob). */
    private readonly directFrom = DIRECT_MIN_BYTES,
  ) {
    this.client = new RegistryClient(options);
  }

  /**
   * Tag → manifest descriptor, by one HEAD (a GET when the HEAD lacks the digest). `withinMs`: the
   * upstream's answer is waited for at most this long, retries included (a revalidation that has a
   * stale answer to give instead).
   */
  resolveTag(t: RouteTarget, tag: string, signal?: AbortSignal, withinMs?: number): Promise<Descriptor> {
    this.metrics.upstreamRequests++;
    return this.client.resolve(ref(t, { tag }), { signal, ...(withinMs !== undefined ? { idleTimeoutMs: withinMs, retry: { budgetMs: withinMs } } : {}) });
  }

  /** A manifest by tag or digest: capped (4 MiB), verified when by digest. */
  async manifest(t: RouteTarget, target: { tag: string } | { digest: string }, signal?: AbortSignal): Promise<FetchedManifest> {
    this.metrics.upstreamRequests++;
    const m = await this.client.fetchManifest(ref(t, target), { signal });
    this.metrics.upstreamBytes += m.size;
    return m;
  }

  /**
   * One GET of a blob from `offset` on (no retry: the store's fetch retries and resumes). Its bytes
   * are counted as the fill stores them (Fills' `received`), not by a stream stage here.
   */
  async openBlob(t: RouteTarget, digest: string, size: number | undefined, offset: number, signal?: AbortSignal): Promise<UpstreamBlob> {
    this.metrics.upstreamRequests++;
    const desc = { mediaType: 'application/octet-stream', digest, size: size ?? Number.MAX_SAFE_INTEGER };
    const direct = this.directFrom === 0 || (size !== undefined && size - offset >= this.directFrom);
    const opened = await this.client.openBlob({ registry: t.upstream.registry, repository: t.repository }, desc, { offset, direct, ...(signal ? { signal } : {}) });
    const total = opened.length !== undefined ? opened.offset + opened.length : undefined;
    return { stream: opened.stream, offset: opened.offset, from: opened.from, ...(total !== undefined ? { total } : {}) };
  }

  /** A small API answer (`tags/list?...`, `referrers/<digest>`), passed through. */
  async api(t: RouteTarget, pathAndQuery: string, accept?: string, signal?: AbortSignal): Promise<ApiAnswer> {
    this.metrics.upstreamRequests++;
    const a = await this.client.fetchApi({ registry: t.upstream.registry, repository: t.repository }, pathAndQuery, {
      ...(accept !== undefined ? { accept } : {}),
      ...(signal ? { signal } : {}),
    });
    this.metrics.upstreamBytes += a.bytes.length;
    return a;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

function ref(t: RouteTarget, target: { tag: string } | { digest: string }) {
  return { registry: t.upstream.registry, repository: t.repository, ...target };
}
