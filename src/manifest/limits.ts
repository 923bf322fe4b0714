/**
 * Bounds on the small documents an image is resolved through (manifests, indexes, configs) and on the
 * one index walk over them (src/content/walk.ts): what a hostile source can make vmimg read, parse and
 * step through before the first layer. The defaults fit real images with room to spare (containerd
 * caps manifests at 4 MiB too). They are process-wide settings because every source, reader and parser
 * shares them: `setDocumentLimits` changes them (the CLI applies the config file's `"limits"` before a
 * command runs), and a refusal is ERR_TOO_LARGE whose hint names the setting.
 */
import { ErrorCode, VmimgError } from '../errors.js';

export interface DocumentLimits {
  /** Bytes of one manifest or index, index.json and docker save's manifest.json included (default 4 MiB). */
  maxManifestBytes: number;
  /** Bytes of one image config (default 4 MiB). */
  maxConfigBytes: number;
  /** Indexes above an image manifest, the top one included (default 4; real images use one or two). */
  maxIndexDepth: number;
  /** Index entries one walk steps through, all roots together (default 100 000). */
  maxWalkEntries: number;
  /** Manifests, indexes and configs one walk reads (default 1 000; a multi-platform image needs tens). */
  maxWalkDocuments: number;
  /**
   * Lazy-index artifacts `pull --lazy` tries from a referrers list, distinct digests newest first
   * (default 8): the list is anyone-with-push-rights writable, and each candidate costs a manifest GET.
   */
  maxReferrerCandidates: number;
  /**
   * Compressed bytes a lazy layer fetches ahead of a reader walking its spans in order (default 16 MiB;
   * 0 turns read-ahead off): src/lazy/read-ahead.ts. Not a document bound, but process-wide like them.
   */
  lazyReadAheadBytes: number;
  /**
   * Milliseconds the optional lazy index lookup of `pull --lazy` may take for its documents (the
   * referrers list and the candidates' manifests, retries included) once a layer waits for it, and each
   * of its requests (index blobs too) may wait for a byte, before the pull goes whole (default 10 000):
   * src/lazy/lookup.ts.
   * The config file takes it as a time (`"10s"`) or a number of milliseconds.
   */
  lazyLookupBudgetMs: number;
}

export const DEFAULT_DOCUMENT_LIMITS: Readonly<DocumentLimits> = {
  maxManifestBytes: 4 * 1024 * 1024,
  maxConfigBytes: 4 * 1024 * 1024,
  maxIndexDepth: 4,
  maxWalkEntries: 100_000,
  maxWalkDocuments: 1_000,
  maxReferrerCandidates: 8,
  lazyReadAheadBytes: 16 << 20,
  lazyLookupBudgetMs: 10_000,
};

let current: Readonly<DocumentLimits> = DEFAULT_DOCUMENT_LIMITS;

/** The limits in force (the defaults unless `setDocumentLimits` changed them). */
export function documentLimits(): Readonly<DocumentLimits> {
  return current;
}

/**
 * Sets the limits in force: `changes` over the defaults (not over earlier changes). Each must be a
 * positive whole number, `maxIndexDepth` may be 0 (ERR_INVALID_ARGUMENT naming it); unknown keys are
 * ignored (the config file checks its own).
 */
export function setDocumentLimits(changes: Partial<DocumentLimits>): void {
  current = resolveDocumentLimits(changes);
}

/** The longest delay a Node timer keeps (setTimeout); the `…Ms` limits are timers. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** `changes` over the defaults, each checked (see setDocumentLimits); nothing is set. */
export function resolveDocumentLimits(changes: Partial<DocumentLimits>): DocumentLimits {
  const next = { ...DEFAULT_DOCUMENT_LIMITS };
  for (const key of Object.keys(DEFAULT_DOCUMENT_LIMITS) as (keyof DocumentLimits)[]) {
    const v = changes[key];
    if (v === undefined) continue;
    const least = key === 'maxIndexDepth' || key === 'lazyReadAheadBytes' ? 0 : 1; // depth 0: manifests only, no index above them
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= least)) {
      throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `limit ${key} must be a ${least === 0 ? 'whole number (0 or more)' : 'positive whole number'}, not ${String(v)}`);
    }
    // a time is a timer's delay, which Node caps at 2^31-1 ms (a longer one fires at once)
    if (key.endsWith('Ms') && v > MAX_TIMER_MS) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `limit ${key} must be at most ${MAX_TIMER_MS} ms (24 days), not ${v}`);
    next[key] = v;
  }
  return next;
}

/** ERR_TOO_LARGE for a document limit, naming the setting and how to raise it. */
export function documentTooLarge(key: keyof DocumentLimits, what: string, cause?: unknown): VmimgError {
  return new VmimgError(ErrorCode.TOO_LARGE, what, {
    hint: `raise the limit with "limits": {"${key}": …} in the config file if the source is trusted`,
    details: { limit: key },
    ...(cause !== undefined ? { cause } : {}),
  });
}
