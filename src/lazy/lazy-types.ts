/** The shapes a lazy layer's reader shares with its sources and its counters' readers (lazy-content.ts, stats.ts). */
import type { Readable } from 'node:stream';

/** What a range request got: the asked bytes, or the whole blob from a server that ignored Range. */
export type RangeAnswer = { kind: 'range'; bytes: Buffer } | { kind: 'whole'; stream: Readable };

/** Ranges of one blob. `read` resolves with exactly `end - start` bytes, or the whole blob. */
export interface RangeSource {
  read(start: number, end: number): Promise<RangeAnswer>;
}

/** Counters for `vmimg stats` and tests. */
export interface LazyStats {
  rangeRequests: number;
  rangeBytes: number;
  spansFetched: number;
  /** Of those, fetched ahead of a sequential reader (src/lazy/read-ahead.ts). */
  spansReadAhead: number;
  spansVerified: number;
  /** Spans another process was fetching, waited for instead of fetched (src/lazy/span-lock.ts). */
  spansWaited: number;
  inflateMs: number;
  readHits: number;
  readMisses: number;
  wholeBlobFetches: number;
  /** Milliseconds the missing reads waited for their bytes (fetch, verify, inflate, write), in all and at most. */
  missMs: number;
  maxMissMs: number;
  /** When this layer was first read (ISO 8601), if it was. */
  firstReadAt?: string;
}

/** Counters at zero. */
export function emptyStats(): LazyStats {
  return { rangeRequests: 0, rangeBytes: 0, spansFetched: 0, spansReadAhead: 0, spansVerified: 0, spansWaited: 0, inflateMs: 0, readHits: 0, readMisses: 0, wholeBlobFetches: 0, missMs: 0, maxMissMs: 0 };
}
