/** Loading images from `docker save` / OCI archive tars into the cache. */
import { resolve } from 'node:path';
import type { Platform } from '../platform/types.js';
import { wrapError } from '../errors.js';
import { openArchive } from './archive.js';
import { CacheLayout, resolveCacheDir } from './cache.js';
import type { Image } from './image-dir.js';
import { prepareImage } from './prepare.js';
import type { LayerLimits } from '../layer/limits.js';
import { isDigestSelector } from './select.js';
import type { ProgressListener } from './progress.js';

export interface LoadOptions {
  /** Wanted platform (the host's when absent). Naming one makes a single-platform mismatch an error. */
  platform?: Platform;
  /**
   * Which image of a multi-image archive: a repo tag or OCI ref name, a manifest or config digest, or
   * a unique prefix of at least 12 hex digits of one (src/image/select.ts).
   */
  tag?: string;
  /** Same as `tag` (the name the issue tracker's API sketch used). */
  ref?: string;
  /** Layers flattened at once (default 4). */
  concurrency?: number;
  cacheDir?: string;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** What one layer may cost (defaults: src/layer/limits.ts DEFAULT_LIMITS); a refusal is ERR_TOO_LARGE. */
  limits?: Partial<LayerLimits>;
}

export async function loadFromTar(path: string, options: LoadOptions = {}): Promise<Image> {
  const archive = resolve(path);
  const tag = options.tag ?? options.ref;
  try {
    const source = await openArchive(archive, {
      ...(options.platform ? { platform: options.platform, explicitPlatform: true } : {}),
      ...(tag ? { tag } : {}),
    });
    return await prepareImage(source, {
      cache: new CacheLayout(resolveCacheDir(options)),
      // a digest selects, it does not name: such an image is recorded under the archive's own name for it
      name: (tag !== undefined && !isDigestSelector(tag) ? tag : source.info.reference) ?? archive,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    throw wrapError(err, `loading ${path}`);
  }
}
