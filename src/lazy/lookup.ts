/**
 * One lookup of the lazy indexes published for an image manifest, as `pull --lazy` runs it: the
 * referrers list, the candidates' manifests (discover.ts), then each layer's index blobs. The lookup is
 * optional — any failure of it is a warning and a whole pull — so it is bounded as a whole, not per
 * request (session 14's third breaker: 503s at each stage took 24 s, and twelve hanging index blobs
 * 61 s, one idle timeout per wave of six connections):
 *
 * - once a layer waits for it, the documents (list and manifests) must come within
 *   `limits.lazyLookupBudgetMs` (10 s), retries included; the time the pull spends on its own work
 *   before (the config, a prune's lock) does not count (session 15's breaker);
 * - every request of it, index blobs too, gives up after that long without a byte and retries under
 *   a budget of that length, or of the client's idle timeout and retry budget when those are shorter;
 * - at most {@link BLOB_FETCHES} index blobs are fetched at once, and all the lookup's requests share
 *   one abort: {@link LazyLookup.stop} (the registry failed one of them) stops the others at once, and
 *   so does the pull's end or its abort. A 503 storm on the index blobs of 40 layers then costs a few
 *   requests' retries, not 40 × 5 (session 15's breaker: 200 requests, 160 retry notices), and the
 *   notices of requests failing together are told once.
 *
 * The index blobs have no total deadline: on a slow link a large `.idx` that keeps coming is still far
 * less than the layer it saves. One that trickles is cut by the client's throughput rule
 * (`network.minBytesPerSecond`), as any blob.
 */
import { setMaxListeners } from 'node:events';
import { ErrorCode, VmimgError } from '../errors.js';
import { documentLimits } from '../manifest/limits.js';
import type { Reference } from '../reference/types.js';
import type { CallOptions, RegistryClient } from '../registry/client.js';
import { createLimiter } from '../util/limiter.js';
import { humanWait, type NoticeListener } from '../util/retry.js';
import { listPublishedIndexes, loadPublishedIndex, type PublishedCandidates, type PublishedIndex } from './discover.js';

/** Options of a {@link LazyLookup}. */
export interface LazyLookupOptions {
  /** The pull's: aborting it ends the lookup (and is the pull's error, not a warning). */
  signal?: AbortSignal;
  /** Retry waits and stalls of the lookup's requests (the pull's progress). */
  onNotice?: NoticeListener;
}

/**
 * `listener`, told only the notices that say something new: a retry of a later attempt than any told,
 * a stall longer than any told. The lookup's slots fail together (six index blobs answering 503 said
 * "retrying" 24 times before the one warning: session 15's second breaker).
 */
function onlyNews(listener: NoticeListener): NoticeListener {
  let attempt = 0;
  let stalled = 0;
  return (n) => {
    if (n.kind === 'retry' ? n.attempt <= attempt : n.seconds <= stalled) return;
    if (n.kind === 'retry') attempt = n.attempt;
    else stalled = n.seconds;
    listener(n);
  };
}

/** Index blobs fetched at once: the connections the client keeps per origin (undici queues the rest anyway). */
export const BLOB_FETCHES = 6;

/** Errors that say a published candidate is bad (the next is tried), not that the registry is failing (the lookup stops). */
export const CANDIDATE_ERRORS: ReadonlySet<string> = new Set([
  ErrorCode.NOT_FOUND, ErrorCode.INVALID_INDEX, ErrorCode.DIGEST_MISMATCH, ErrorCode.TOO_LARGE, ErrorCode.INVALID_DIGEST, ErrorCode.INVALID_MANIFEST,
]);

/**
 * The lookup for `manifestDigest` in `repo`. The referrers list is asked for at once (the pull starts
 * it while the config comes); the rest when {@link indexes} is first called. See the module comment for
 * its bounds.
 */
export class LazyLookup {
  /** The call options of the lookup's documents: the referrers list, the fallback tag, the candidates' manifests. */
  readonly call: CallOptions;
  /** The call options of the index blobs: the deadline of the documents does not end them. */
  readonly blobCall: CallOptions;
  /** Runs an index-blob fetch when one of the {@link BLOB_FETCHES} slots is free. */
  readonly blobSlot = createLimiter(BLOB_FETCHES);
  private readonly stopper = new AbortController();
  private readonly documents = new AbortController();
  private readonly budgetMs = documentLimits().lazyLookupBudgetMs;
  private deadline: NodeJS.Timeout | undefined;
  private expired = false;
  private readonly listing: Promise<PublishedCandidates>;
  private found: Promise<PublishedIndex[] | undefined> | undefined;

  constructor(
    private readonly client: RegistryClient,
    private readonly repo: Reference,
    readonly manifestDigest: string,
    private readonly options: LazyLookupOptions = {},
  ) {
    const own = options.signal !== undefined ? [options.signal, this.stopper.signal] : [this.stopper.signal];
    const lookup = AbortSignal.any(own);
    const documents = AbortSignal.any([...own, this.documents.signal]);
    // every index blob of a many-layer image listens on it (two per layer)
    setMaxListeners(0, lookup);
    setMaxListeners(0, documents);
    const retry = { budgetMs: Math.min(this.budgetMs, client.retryPolicy.budgetMs) };
    const idleTimeoutMs = Math.min(this.budgetMs, client.idleTimeoutMs);
    const notices = (): { onNotice?: NoticeListener } => (options.onNotice ? { onNotice: onlyNews(options.onNotice) } : {});
    this.call = { signal: documents, retry, idleTimeoutMs, ...notices() };
    this.blobCall = { signal: lookup, retry, idleTimeoutMs, ...notices() };
    this.listing = listPublishedIndexes(client, repo, manifestDigest, this.call);
    this.listing.catch(() => undefined); // awaited by indexes(); a lookup nobody needs must not be unhandled
  }

  /**
   * The published lazy indexes that load, newest first, or undefined (after one `warn`) when none does;
   * the same promise on every call. The first call starts the documents' deadline. Never rejects with a
   * coded error of the lookup: only with the pull's abort, or an uncoded error (a bug).
   */
  indexes(warn: (message: string) => void): Promise<PublishedIndex[] | undefined> {
    if (this.found === undefined) {
      this.deadline = setTimeout(() => {
        this.expired = true;
        this.documents.abort();
      }, this.budgetMs).unref();
      this.found = this.load(warn).finally(() => clearTimeout(this.deadline));
    }
    return this.found;
  }

  /**
   * Ends the lookup: every request of it stops now. When the registry failed one of them (the placer
   * then pulls the layers not placed yet whole), when the pull is over, or chose another manifest.
   */
  stop(): void {
    clearTimeout(this.deadline);
    this.stopper.abort();
  }

  /**
   * `err`, a failure of one of the lookup's requests, as the coded error to warn with. Rethrown: the
   * pull's abort, and anything uncoded (a bug). A document cut by the deadline is
   * ERR_REGISTRY_UNAVAILABLE naming the limit.
   */
  coded(err: unknown): VmimgError {
    if (this.options.signal?.aborted === true || !(err instanceof VmimgError)) throw err;
    if (this.expired && err.code === ErrorCode.ABORTED && !this.stopper.signal.aborted) {
      return new VmimgError(ErrorCode.REGISTRY_UNAVAILABLE, `no answer within the lookup's ${humanWait(this.budgetMs)} (limits.lazyLookupBudgetMs)`, { cause: err });
    }
    if (err.code === ErrorCode.ABORTED) throw err;
    return err;
  }

  private async load(warn: (message: string) => void): Promise<PublishedIndex[] | undefined> {
    const { manifestDigest } = this;
    let listed: PublishedCandidates;
    try {
      listed = await this.listing;
    } catch (err) {
      warn(`the lazy index of ${manifestDigest} could not be looked up (${this.coded(err).message}): pulling the image whole`);
      return undefined;
    }
    // all candidates at once: a registry hanging on each costs one wait, not one per candidate
    // (breaker, session 14: eight hanging candidates took 245 s one after another); usually there is one
    const results = await Promise.all(listed.list.map((artifact) =>
      loadPublishedIndex(this.client, this.repo, manifestDigest, artifact, listed.via, this.call).then((index) => ({ index }), (err: unknown) => ({ err: this.coded(err) }))));
    const loaded = results.flatMap((r) => ('index' in r && r.index !== undefined ? [r.index] : []));
    const failed = results.flatMap((r) => ('err' in r ? [r.err] : []));
    const why = failed.length > 0 ? `${failed[0]!.message}${failed.length > 1 ? `; and ${failed.length - 1} more` : ''}` : '';
    if (loaded.length === 0) {
      warn(failed.length > 0
        ? `the lazy index of ${manifestDigest} could not be read (${why}): pulling the image whole`
        : `no lazy index is published for ${manifestDigest} (vmimg index push publishes one): pulling the image whole`);
      return undefined;
    }
    if (failed.length > 0) warn(`${failed.length} of the lazy indexes listed for ${manifestDigest} could not be read (${why}): using the others`);
    return loaded;
  }
}
