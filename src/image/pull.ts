/** `pull(ref)`: resolve, download (verified, resumable) and flatten an image from a registry. */
import { wrapError } from '../errors.js';
import type { Platform } from '../platform/types.js';
import { formatReference, parseReference } from '../reference/index.js';
import type { Reference } from '../reference/types.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/index.js';
import { BlobStore } from '../store/index.js';
import { RegistryBlobReader } from '../content/registry.js';
import { CacheLayout, resolveCacheDir } from './cache.js';
import type { Image } from './image-dir.js';
import { prepareImage } from './prepare.js';
import type { LayerLimits } from '../layer/limits.js';
import { noticeEvent, type ProgressListener } from './progress.js';
import type { NetworkNotice } from '../util/retry.js';
import { openReaderSource } from './reader-source.js';
import { lazyPlacer } from '../lazy/lazy-pull.js';
import { LazyLookup } from '../lazy/lookup.js';
import type { Descriptor } from '../manifest/index.js';

export interface PullOptions extends RegistryClientOptions {
  /** Wanted platform (the host's when absent). Naming one makes a single-platform mismatch an error. */
  platform?: Platform;
  cacheDir?: string;
  /** Layers downloaded and converted at once (default 4). */
  concurrency?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** What one layer may cost (defaults: src/layer/limits.ts DEFAULT_LIMITS); a refusal is ERR_TOO_LARGE. */
  limits?: Partial<LayerLimits>;
  /** Reuse a client (connections, token cache) across pulls; otherwise one is made and closed. */
  client?: RegistryClient;
  /** Build gzip checkpoint indexes while flattening (PrepareOptions.checkpoints). */
  checkpoints?: boolean;
  /**
   * Place layers from the lazy index published next to the image (`vmimg index push`) instead of
   * downloading them: nothing but the manifest, config and index comes now, files are fetched as they are
   * read (open the image with `openLazyImage`). Without a published index, or when the registry fails
   * the lookup (within `limits.lazyLookupBudgetMs`; src/lazy/lookup.ts): a warning, then a whole pull.
   */
  lazy?: boolean;
}

/**
 * Pulls `reference` (`alpine`, `ghcr.io/o/app:1.2`, `…@sha256:…`) into the cache for `platform`
 * (the host's by default) and returns the prepared image. The reference's index is walked by the one
 * index walk (src/content/walk.ts); layers download into the store while they convert; the manifest,
 * indexes and config are kept in the store too. Errors are VmimgErrors prefixed `pulling REF: `.
 */
export async function pull(reference: string | Reference, options: PullOptions = {}): Promise<Image> {
  const ref = typeof reference === 'string' ? parseReference(reference) : reference;
  const cache = new CacheLayout(resolveCacheDir(options));
  const client = options.client ?? new RegistryClient(options);
  // A lazy pull looks for the published index while the config comes (it needs the manifest digest
  // only). The walk tells of a tag's manifest before reading its config, and of the manifest it
  // chose; a lookup for any other is stopped once the choice is made, and all when the pull ends (a
  // lookup left running held `client.close()` until its request timed out: breaker, session 13).
  const lookups = new Map<string, LazyLookup>();
  const onNotice = options.onProgress ? (n: NetworkNotice): void => options.onProgress?.(noticeEvent(n)) : undefined;
  const onManifest = (manifest: Descriptor): void => {
    if (lookups.size >= 2 || lookups.has(manifest.digest)) return;
    lookups.set(manifest.digest, new LazyLookup(client, ref, manifest.digest, { ...(options.signal ? { signal: options.signal } : {}), ...(onNotice ? { onNotice } : {}) }));
  };
  try {
    options.onProgress?.({ type: 'image', state: 'resolving', layersDone: 0, layerCount: 0, bytesDone: 0 });
    const source = await openReaderSource(new RegistryBlobReader(client, ref), {
      store: new BlobStore(cache.root),
      ...(options.lazy ? { onManifest } : {}),
      ...(options.platform ? { platform: options.platform, explicitPlatform: true } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(onNotice ? { onNotice } : {}),
    });
    const warn = (message: string): void => options.onProgress?.({ type: 'warning', message });
    const manifestDigest = source.info.manifestDigest;
    for (const [digest, lookup] of lookups) if (digest !== manifestDigest) lookup.stop();
    const lazy = options.lazy && manifestDigest !== undefined
      ? lazyPlacer(client, ref, manifestDigest, { ...(lookups.has(manifestDigest) ? { lookup: lookups.get(manifestDigest)! } : {}), cacheRoot: cache.root, layersDir: cache.layersDir, image: source.info.configDigest, ...(options.limits ? { limits: options.limits } : {}), ...(options.signal ? { signal: options.signal } : {}), ...(onNotice ? { onNotice } : {}), warn })
      : undefined;
    try {
      return await prepareImage(source, {
        cache,
        name: formatReference(ref),
        ...(options.concurrency ? { concurrency: options.concurrency } : {}),
        ...(options.limits ? { limits: options.limits } : {}),
        ...(options.checkpoints ? { checkpoints: true } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(lazy ? { lazy } : {}),
      });
    } finally {
      await lazy?.close();
    }
  } catch (err) {
    throw wrapError(err, `pulling ${typeof reference === 'string' ? reference : formatReference(ref)}`);
  } finally {
    for (const lookup of lookups.values()) lookup.stop(); // settled ones: nothing happens
    if (!options.client) await client.close();
  }
}
