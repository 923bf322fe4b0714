/** An incremental digest computed off the main thread when it can be (sha256, by the hash pool). */
import { createHash } from 'node:crypto';
import { ringFor, sharedHashPool, type HashPool } from './hash-pool.js';

export interface PoolDigest {
  /** Adds bytes (copied at once: the caller may reuse its buffer when this returns or resolves). */
  update(chunk: Uint8Array): Promise<void> | void;
  /** The hex digest of everything added; the digest is then finished. */
  digest(): Promise<string>;
  /** Drops the digest unfinished (idempotent). */
  destroy(): void;
}

/**
 * A digest of `algorithm` ('sha256', 'sha512'): sha256 is hashed by a pool worker (the copy into its
 * ring is all this thread does), anything else by node:crypto here. `expectedBytes` sizes the ring.
 */
export function poolDigest(algorithm: string, expectedBytes = Infinity, pool: HashPool = sharedHashPool()): PoolDigest {
  if (algorithm !== 'sha256') return localDigest(algorithm);
  const stream = pool.stream({ whole: true, ranges: false, ringBytes: ringFor(expectedBytes) });
  return { update: (chunk) => stream.push(chunk), digest: () => stream.end(), destroy: () => stream.destroy() };
}

/**
 * A digest of `algorithm` hashed by node:crypto on this thread, with no copy of the bytes: cheaper in
 * all than the pool (its copy into shared memory and its messages) when this thread has time to spare.
 */
export function localDigest(algorithm: string): PoolDigest {
  const hash = createHash(algorithm);
  return { update: (chunk) => void hash.update(chunk), digest: async () => hash.digest('hex'), destroy: () => undefined };
}
