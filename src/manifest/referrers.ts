/**
 * Referrers lists as the OCI distribution spec (v1.1) has them: the referrers API answers an image index,
 * and a registry without the API keeps that index under the fallback tag `<alg>-<hex>` of the subject.
 * Shared by the lazy index's discovery and publishing (src/lazy) and serve's referrers endpoint.
 */
import type { Descriptor } from './types.js';

/** The referrers tag of the spec's fallback: `sha256-<hex>`. */
export function fallbackTag(digest: string): string {
  return digest.replace(':', '-');
}

/**
 * The `manifests` of an image index (a referrers answer or the fallback tag) that are descriptors: an
 * object with a string digest, a safe-integer size. Not JSON, not an index, or other entries count as
 * nothing listed: anyone with push rights can write the tag (breaker, session 14: `{not json` and
 * `[null, 5]` crashed `pull --lazy` and `index push` with ERR_INTERNAL).
 */
export function descriptorsOf(bytes: Buffer): Descriptor[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return [];
  }
  const list = (doc as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(list)) return [];
  return list.filter((d): d is Descriptor => typeof d === 'object' && d !== null && typeof d.digest === 'string' && Number.isSafeInteger(d.size));
}
