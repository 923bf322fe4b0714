/** Loading images from `docker save` / OCI archive tars and OCI image layout directories into the cache. */
import { resolve } from 'node:path';
import type { Platform } from '../platform/types.js';
import { wrapError } from '../errors.js';
import { openArchive, openLayoutDir } from './archive.js';
import type { ImageSource } from './source.js';
import { CacheLayout, resolveCacheDir } from './cache.js';
import type { Image } from './image-dir.js';
import { prepareImage } from './prepare.js';
import type { LayerLimits } from '../layer/limits.js';
import { isDigestSelector } from '../content/select.js';
import type { ProgressListener } from './progress.js';

export interface LoadOptions {
  /** Wanted platform (the host's when absent). Naming one makes a single-platform mismatch an error. */
  platform?: Platform;
  /**
   * Which image of a multi-image archive: a repo tag or OCI ref name, a manifest or config digest, or
   * a unique prefix of at least 12 hex digits of one (src/content/select.ts).
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

/**
 * Loads one image of a `docker save` tar (classic or Docker 25+) or an OCI archive into the cache and
 * returns it. `tag` picks among several images; the platform among several platforms. Errors are
 * VmimgErrors prefixed `loading PATH: ` (ERR_INVALID_ARCHIVE, ERR_AMBIGUOUS_IMAGE, ERR_PLATFORM_MISMATCH…).
 */
export async function loadFromTar(path: string, options: LoadOptions = {}): Promise<Image> {
  return loadWith(path, options, openArchive);
}

/**
 * Loads one image of an OCI image layout directory (`oci-layout` + `index.json`, as `skopeo copy …
 * oci:DIR:TAG`, umoci and buildah write) into the cache. `tag` picks an
 * `org.opencontainers.image.ref.name` (or a digest); without it the only image, or
 * ERR_AMBIGUOUS_IMAGE listing the names. Errors are prefixed `loading DIR: `.
 */
export async function loadFromLayout(dir: string, options: LoadOptions = {}): Promise<Image> {
  return loadWith(dir, options, openLayoutDir);
}

async function loadWith(path: string, options: LoadOptions, open: (path: string, o: { platform?: Platform; explicitPlatform?: boolean; tag?: string }) => Promise<ImageSource>): Promise<Image> {
  const where = resolve(path);
  const tag = options.tag ?? options.ref;
  try {
    const source = await open(where, {
      ...(options.platform ? { platform: options.platform, explicitPlatform: true } : {}),
      ...(tag ? { tag } : {}),
    });
    return await prepareImage(source, {
      cache: new CacheLayout(resolveCacheDir(options)),
      // a digest selects, it does not name: such an image is recorded under the source's own name for it
      name: (tag !== undefined && !isDigestSelector(tag) ? tag : source.info.reference) ?? where,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    throw wrapError(err, `loading ${path}`);
  }
}
