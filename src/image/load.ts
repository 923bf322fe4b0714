/** Loading images from `docker save` / OCI archive tars into the cache. */
import { resolve } from 'node:path';
import type { Platform } from '../platform/types.js';
import { wrapError } from '../errors.js';
import { openArchive } from './archive.js';
import { CacheLayout, resolveCacheDir } from './cache.js';
import type { Image } from './image-dir.js';
import { prepareImage } from './prepare.js';
import type { ProgressListener } from './progress.js';

export interface LoadOptions {
  /** Wanted platform (the host's when absent). Naming one makes a single-platform mismatch an error. */
  platform?: Platform;
  /** Which image of a multi-image archive, by repo tag or OCI ref name. */
  tag?: string;
  cacheDir?: string;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export async function loadFromTar(path: string, options: LoadOptions = {}): Promise<Image> {
  const archive = resolve(path);
  try {
    const source = await openArchive(archive, {
      ...(options.platform ? { platform: options.platform, explicitPlatform: true } : {}),
      ...(options.tag ? { tag: options.tag } : {}),
    });
    return await prepareImage(source, {
      cache: new CacheLayout(resolveCacheDir(options)),
      name: options.tag ?? source.info.reference ?? archive,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    throw wrapError(err, `loading ${path}`);
  }
}
