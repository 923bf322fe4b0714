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
import type { RegistryClient } from '../registry/client.js';
import type { NoticeListener } from '../util/retry.js';
import type { ContentReader } from '../vfs/content.js';
import type { SourceLayer } from '../image/source.js';
import { ErrorCode, VmimgError } from '../errors.js';
import type { PublishedLayer } from './discover.js';
import { CANDIDATE_ERRORS, LazyLookup } from './lookup.js';
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
  /**
   * The lookup of `manifestDigest`'s published indexes, already under way (the pull starts it while the
   * config comes); the placer's own, started when a layer first needs it, otherwise. `close` stops it.
   */
  lookup?: LazyLookup;
}

/**
 * The placer of image manifest `manifestDigest` of `repo`. The published index is looked up when the
 * first layer needs it (a pull whose layers are all cached waits for nothing), under the bounds of
 * lookup.ts. Every coded failure of the lookup is a one-line warning, never the pull's error: a
 * candidate that is gone, damaged or describes another layer is skipped for the next; a registry
 * failing on the lookup (network, 5xx, auth, its deadline) ends it, and the layers not yet placed are
 * pulled whole. An abort ends the pull.
 */
export function lazyPlacer(client: RegistryClient, repo: Reference, manifestDigest: string, options: LazyPlacerOptions): LazyPlacer {
  let lookup = options.lookup;
  const lookUp = (): LazyLookup => (lookup ??= new LazyLookup(client, repo, manifestDigest, { ...(options.signal ? { signal: options.signal } : {}), ...(options.onNotice ? { onNotice: options.onNotice } : {}) }));
  /** The registry's failure that ended the lookup: the layers not placed yet go whole, without asking again. */
  let broken: VmimgError | undefined;
  /** Ends the lookup for failure `e` (the first one only): one warning, and every request of it stops now. */
  const end = (e: VmimgError, index: number): void => {
    if (broken !== undefined) return;
    broken = e;
    options.warn(`layer ${index + 1}: the registry failed serving the lazy index (${e.message}): pulling the layers not placed yet whole`);
    lookUp().stop(); // the other layers' index blobs stop now, not after their own retries
  };
  /** Candidates a warning named for serving a layer a bad or missing blob (one warning each; the others' layers still try them). */
  const named = new Set<string>();
  /** Layers no candidate placed, and the first of them: one warning now, a count when the pull ends. */
  let unplaced = 0;
  let firstUnplaced = '';
  const limits = resolveLimits(options.limits);
  const readers = new Map<string, OnFirstRead>();
  /** Thrown by a fetch whose lookup ended while it waited for a slot. */
  const skipped = new Error('skipped');
  /**
   * One index blob of layer `index`, fetched in one of the lookup's slots. A registry failure is judged
   * before the slot passes on, so nothing queued behind it starts once the lookup ended, and it is
   * warned of even when the layer no longer waits for it (its other blob failed first).
   */
  const fetch = async (what: string, d: PublishedLayer['idx'], max: number, index: number): Promise<Buffer> => {
    if (d.size > max) throw tooLarge('maxLayerSize', `the published ${what} is ${d.size} bytes, more than the layer's tar may be (${max})`);
    const { blobSlot, blobCall } = lookUp();
    return blobSlot(async () => {
      if (broken !== undefined) throw skipped;
      try {
        return await client.fetchBlobBytes(repo, d, { ...blobCall, maxBytes: max });
      } catch (err) {
        if (err instanceof VmimgError && err.code !== ErrorCode.ABORTED && !CANDIDATE_ERRORS.has(err.code) && options.signal?.aborted !== true) end(err, index);
        throw err;
      }
    });
  };
  /** The layer placed from the newest candidate whose blobs describe it; see lazyPlacer for what a failure does. */
  const placeFromIndex = async (layer: SourceLayer, ids: LazyLayerIds, index: number): Promise<LazyLayerInfo | undefined> => {
    const found = await lookUp().indexes(options.warn);
    if (found === undefined) return undefined;
    // neither file can be larger than the layer's tar may be (the expansion limits bound both)
    const max = Math.min(limits.maxLayerSize, Math.ceil(ids.size * limits.maxLayerRatio)) + (1 << 20);
    for (const published of found) {
      const pub = published.layers.get(ids.digest);
      if (pub === undefined) continue;
      if (broken !== undefined) return undefined;
      try {
        // both at once: one round trip per layer, not two (the lazy pull's fixed cost is mostly round trips)
        const [idx, zran] = await Promise.all([fetch('.idx', pub.idx, max, index), pub.zran !== undefined ? fetch('.zran', pub.zran, max, index) : undefined]);
        if (fileTable(scanIndex(idx)).sparse) {
          // lazy reads place tar bytes by offset, which a sparse file's stored segments do not fit (lazy-content.ts)
          options.warn(`layer ${index + 1} (${layer.digest}) holds sparse files, which are not read lazily: pulling it whole`);
          return undefined;
        }
        return await placeLazyLayer(options.layersDir, options.cacheRoot, ids, idx, zran);
      } catch (err) {
        if (options.signal?.aborted === true) throw err;
        // the lookup ended (a fetch warned of why): this layer goes whole with the rest
        if (err === skipped || (broken !== undefined && err instanceof VmimgError)) return undefined;
        const e = lookUp().coded(err);
        if (!CANDIDATE_ERRORS.has(e.code)) {
          end(e, index); // placing failed (a local error)
          return undefined;
        }
        // one blob of a published index bad or gone: this layer tries the next candidate; the index still
        // serves the layers whose blobs are good (each is checked by digest and against its layer)
        const candidate = published.artifact.digest;
        if (!named.has(candidate)) options.warn(`layer ${index + 1}: the lazy index ${candidate} does not serve it (${e.message}): trying the next one for this layer`);
        named.add(candidate);
      }
    }
    if (unplaced++ === 0) {
      firstUnplaced = `layer ${index + 1} (${layer.digest})`;
      options.warn(`${firstUnplaced} is in no valid published lazy index: pulling it whole`);
    }
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
      lookup?.stop();
      if (unplaced > 1) options.warn(`${unplaced} layers in all were in no valid published lazy index and were pulled whole (the first: ${firstUnplaced})`);
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
