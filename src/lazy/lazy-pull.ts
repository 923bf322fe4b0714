/**
 * `pull --lazy`: instead of downloading and flattening a layer, place it from the lazy index published
 * next to the image (src/lazy/discover.ts): its `.idx` and `.zran`, verified by digest and checked
 * against the layer, an empty sparse `.contents` and a `.spans` (src/lazy/place.ts). The prepare
 * pipeline (src/image/prepare.ts) asks {@link LazyPlacer.place} for each layer and reads the image's
 * `/etc/passwd` through {@link LazyPlacer.content}; layers the index does not cover are pulled whole.
 */
import type { LayerInfo } from '../layer/flatten.js';
import { hasLayer } from '../layer/flatten.js';
import { resolveLimits, tooLarge, type LayerLimits } from '../layer/limits.js';
import type { Reference } from '../reference/types.js';
import type { CallOptions, RegistryClient } from '../registry/client.js';
import type { Descriptor } from '../manifest/types.js';
import type { NoticeListener } from '../util/retry.js';
import type { ContentReader } from '../vfs/content.js';
import type { SourceLayer } from '../image/source.js';
import { ErrorCode, isVmimgError } from '../errors.js';
import { listPublishedIndexes, loadPublishedIndex, type PublishedCandidates, type PublishedIndex, type PublishedLayer } from './discover.js';
import type { LazyContent } from './lazy-content.js';
import { openLazyLayer } from './open-image.js';
import { addLazyStats } from './stats.js';
import { findLazyLayer, placeLazyLayer, type LazyLayerIds, type LazyLayerInfo } from './place.js';
import { fileTable } from './placed-files.js';
import { scanIndex } from '../layer/index-format.js';

/** What the prepare pipeline asks of a lazy pull. */
export interface LazyPlacer {
  /** Places layer `index` lazily, or resolves undefined to flatten it as usual (cached whole, or not in the index). */
  place(layer: SourceLayer, index: number): Promise<LazyLayerInfo | undefined>;
  /** The reader of a layer `place` placed. */
  content(diffId: string): ContentReader | undefined;
  close(): Promise<void>;
}

/** Options of {@link lazyPlacer}. */
export interface LazyPlacerOptions {
  cacheRoot: string;
  layersDir: string;
  limits?: Partial<LayerLimits>;
  signal?: AbortSignal;
  /** Retry waits and stalls of the lookup and the index blobs (the pull's progress). */
  onNotice?: NoticeListener;
  warn: (message: string) => void;
  /** The image's config digest: `close` adds the pull's own reads (the config's /etc/passwd) to its kept counters. */
  image?: string;
  /** `listPublishedIndexes` for `manifestDigest`, already under way (the pull starts it while the config comes). */
  listing?: Promise<PublishedCandidates>;
}

/** The published candidates of a lazy pull, each loaded once when first needed. */
interface Lookup {
  list: Descriptor[];
  /** The first candidate that loaded as a lazy index of this image. */
  first: number;
  candidate(i: number): Promise<PublishedIndex | undefined>;
}

/**
 * The call options of the lazy index lookup: one attempt each (`once`). The lookup is optional, so a
 * registry that fails or hangs on it costs one try (a hang: one idle timeout, 30 s by default, with the
 * stall notices on the way), then a warning and a whole pull (breaker, session 14: 5 attempts × 30 s
 * held `pull --lazy` 158 s and then failed it).
 */
export function lookupCall(signal: AbortSignal | undefined, onNotice: NoticeListener | undefined): CallOptions {
  return { once: true, ...(signal ? { signal } : {}), ...(onNotice ? { onNotice } : {}) };
}

/**
 * The placer of image manifest `manifestDigest` of `repo`. The published index is looked up when the
 * first layer needs it (a pull whose layers are all cached waits for nothing); when none is published,
 * or the lookup or a candidate fails (any error but an abort), a warning says so and the layers are
 * pulled whole.
 */
export function lazyPlacer(client: RegistryClient, repo: Reference, manifestDigest: string, options: LazyPlacerOptions): LazyPlacer {
  const call = lookupCall(options.signal, options.onNotice);
  /** A coded failure of the optional lookup is a warning; an abort ends the pull, and anything uncoded is a bug. */
  const optional = (err: unknown, what: string): void => {
    if (!isVmimgError(err) || isVmimgError(err, ErrorCode.ABORTED) || options.signal?.aborted) throw err;
    options.warn(`${what} (${err.message})`);
  };
  let lookup: Promise<Lookup | undefined> | undefined;
  const lookUp = async (): Promise<Lookup | undefined> => {
    let listed: PublishedCandidates;
    try {
      listed = await (options.listing ?? listPublishedIndexes(client, repo, manifestDigest, call));
    } catch (err) {
      optional(err, `the lazy index of ${manifestDigest} could not be looked up: pulling the image whole`);
      return undefined;
    }
    const { list, via } = listed;
    const loaded = new Map<number, Promise<PublishedIndex | undefined>>(); // each candidate fetched once, when needed
    const candidate = (i: number): Promise<PublishedIndex | undefined> => {
      if (!loaded.has(i)) {
        loaded.set(i, loadPublishedIndex(client, repo, manifestDigest, list[i]!, via, call).catch((err: unknown) => {
          optional(err, `the lazy index ${list[i]!.digest} could not be read: trying the next one`);
          return undefined;
        }));
      }
      return loaded.get(i)!;
    };
    let first = 0;
    while (first < list.length && (await candidate(first)) === undefined) first++;
    if (first === list.length) {
      options.warn(`no lazy index is published for ${manifestDigest} (vmimg index push publishes one): pulling the image whole`);
      return undefined;
    }
    return { list, first, candidate };
  };
  const limits = resolveLimits(options.limits);
  const readers = new Map<string, OnFirstRead>();
  const fetch = async (what: string, d: PublishedLayer['idx'], max: number): Promise<Buffer> => {
    if (d.size > max) throw tooLarge('maxLayerSize', `the published ${what} is ${d.size} bytes, more than the layer's tar may be (${max})`);
    // retried as usual: a transient failure here would cost a whole layer's download
    return client.fetchBlobBytes(repo, d, { ...call, once: false, maxBytes: max });
  };
  /** The layer placed from the newest candidate whose blobs describe it; an invalid or unreadable one is a warning (anyone with push rights can publish one). */
  const placeFromIndex = async (layer: SourceLayer, ids: LazyLayerIds, index: number): Promise<LazyLayerInfo | undefined> => {
    const found = await (lookup ??= lookUp());
    if (found === undefined) return undefined;
    const { list, first, candidate } = found;
    // neither file can be larger than the layer's tar may be (the expansion limits bound both)
    const max = Math.min(limits.maxLayerSize, Math.ceil(ids.size * limits.maxLayerRatio)) + (1 << 20);
    for (let i = first; i < list.length; i++) {
      const pub = (await candidate(i))?.layers.get(ids.digest);
      if (pub === undefined) continue;
      try {
        // both at once: one round trip per layer, not two (the lazy pull's fixed cost is mostly round trips)
        const [idx, zran] = await Promise.all([fetch('.idx', pub.idx, max), pub.zran !== undefined ? fetch('.zran', pub.zran, max) : undefined]);
        if (fileTable(scanIndex(idx)).sparse) {
          // lazy reads place tar bytes by offset, which a sparse file's stored segments do not fit (lazy-content.ts)
          options.warn(`layer ${index + 1} (${layer.digest}) holds sparse files, which are not read lazily: pulling it whole`);
          return undefined;
        }
        return await placeLazyLayer(options.layersDir, options.cacheRoot, ids, idx, zran);
      } catch (err) {
        // a blob gone, too large, damaged or describing another layer: the next candidate, then the whole layer
        optional(err, `layer ${index + 1}: the lazy index ${list[i]!.digest} does not serve it: trying the next one`);
      }
    }
    options.warn(`layer ${index + 1} (${layer.digest}) is in no valid published lazy index: pulling it whole`);
    return undefined;
  };
  return {
    async place(layer, index) {
      if (layer.digest === undefined || layer.size === undefined) return undefined;
      if (await hasLayer(options.layersDir, layer.diffId)) return undefined; // cached whole: nothing to fetch
      const ids = { digest: layer.digest, diffId: layer.diffId, size: layer.size };
      const info = (await findLazyLayer(options.layersDir, options.cacheRoot, ids)) ?? (await placeFromIndex(layer, ids, index)); // an earlier lazy pull's spans are kept
      if (info === undefined) return undefined;
      if (!readers.has(layer.diffId)) readers.set(layer.diffId, new OnFirstRead(() => openLazyLayer(info, ids, client, repo, { ...options, cacheDir: options.cacheRoot })));
      return info;
    },
    content: (diffId) => readers.get(diffId),
    async close() {
      const opened = new Map<string, LazyContent>();
      for (const [diffId, r] of readers) {
        const reader = await r.opened?.catch(() => undefined); // a failed open failed its read
        if (reader !== undefined) opened.set(diffId, reader);
      }
      for (const r of opened.values()) await r.close();
      if (options.image !== undefined && opened.size > 0) await addLazyStats(options.cacheRoot, options.image, new Map([...opened].map(([d, r]) => [d, r.stats])));
    },
  };
}

/**
 * A lazy layer's reader opened on its first read: the pull reads layers only to resolve the config's
 * User (/etc/passwd, /etc/group), and most images name none. Opening all nine of a lazy pull's layers
 * (each `.zran` read and decoded, each `.spans` loaded) cost ~10 ms that `openLazyImage` spends again
 * (session 13, a trace of `pull --lazy` through undici's diagnostics channels).
 */
class OnFirstRead implements ContentReader {
  /** The reader, once a read asked for it. */
  opened: Promise<LazyContent> | undefined;
  constructor(private readonly open: () => Promise<LazyContent>) {}

  async readInto(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    this.opened ??= this.open();
    return (await this.opened).readInto(buffer, offset, length, position);
  }
}

export { lazyFields } from './place.js';
