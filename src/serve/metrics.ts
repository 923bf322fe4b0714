/**
 * Counters for `/metrics` in the Prometheus text format (version 0.0.4): requests by endpoint and
 * status, cache hits and misses, upstream requests and bytes, bytes served, stale answers, warnings,
 * the downloads in flight, and the disk bound's bytes and evictions.
 */
import type { BudgetCounts } from './budget.js';

/** The server's counters; plain numbers, read when `/metrics` is asked for. */
export class ServeMetrics {
  readonly requests = new Map<string, number>();
  readonly hits = { blob: 0, manifest: 0 };
  readonly misses = { blob: 0, manifest: 0 };
  upstreamRequests = 0;
  upstreamBytes = 0;
  bytesServed = 0;
  staleServed = 0;
  inFlightDownloads = 0;
  /** Things that went wrong without failing an answer (ServeOptions.onWarning). */
  warnings = 0;
  /** The disk bound's totals (budget.ts), once the server has one. */
  budget?: BudgetCounts;
  /** Images `--prepare` flattened, and those it failed to. */
  readonly prepared = { ok: 0, failed: 0 };

  /** Counts one answered request. */
  request(endpoint: string, status: number): void {
    const key = `endpoint="${endpoint}",code="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  /** The exposition text. */
  render(): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(`${name}${labels ? `{${labels}}` : ''} ${v}`);
    };
    metric('vmimg_serve_requests_total', 'counter', 'Requests answered, by endpoint and HTTP status.', [...this.requests]);
    metric('vmimg_serve_cache_hits_total', 'counter', 'Blob and manifest requests answered from the cache (a stale or revalidated tag included).', [
      ['kind="blob"', this.hits.blob],
      ['kind="manifest"', this.hits.manifest],
    ]);
    metric('vmimg_serve_cache_misses_total', 'counter', 'Blob and manifest requests that waited for an upstream fetch, their own or one they joined.', [
      ['kind="blob"', this.misses.blob],
      ['kind="manifest"', this.misses.manifest],
    ]);
    metric('vmimg_serve_upstream_requests_total', 'counter', 'Requests made to upstream registries.', [['', this.upstreamRequests]]);
    metric('vmimg_serve_upstream_bytes_total', 'counter', 'Blob and manifest bytes received from upstreams.', [['', this.upstreamBytes]]);
    metric('vmimg_serve_bytes_served_total', 'counter', 'Body bytes sent to clients.', [['', this.bytesServed]]);
    metric('vmimg_serve_stale_total', 'counter', 'Tags answered from a stale entry because the upstream failed.', [['', this.staleServed]]);
    metric('vmimg_serve_warnings_total', 'counter', 'Failures that did not fail an answer, e.g. a manifest served but not stored.', [['', this.warnings]]);
    metric('vmimg_serve_downloads_in_flight', 'gauge', 'Upstream blob downloads running.', [['', this.inFlightDownloads]]);
    metric('vmimg_serve_prepared_total', 'counter', 'Images flattened into the cache as they passed (--prepare), by result.', [
      ['result="ok"', this.prepared.ok],
      ['result="failed"', this.prepared.failed],
    ]);
    if (this.budget !== undefined) {
      metric('vmimg_serve_cache_bytes', 'gauge', 'Bytes of the blobs in the cache (what --max-cache-size bounds).', [['', this.budget.bytes]]);
      metric('vmimg_serve_evicted_total', 'counter', 'Blobs deleted to keep the cache within --max-cache-size and --min-free.', [['', this.budget.evictedBlobs]]);
      metric('vmimg_serve_evicted_bytes_total', 'counter', 'Bytes of the blobs evicted.', [['', this.budget.evictedBytes]]);
    }
    return `${lines.join('\n')}\n`;
  }
}
