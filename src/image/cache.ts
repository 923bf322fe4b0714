/**
 * The cache directory and its layout:
 *
 *   <cache>/blobs/sha256/<hex>          compressed blobs, manifests, configs (BlobStore)
 *   <cache>/layers/sha256/<hex>.idx     flattened layers keyed by diff_id (uncompressed digest)
 *   <cache>/layers/sha256/<hex>.contents
 *   <cache>/images/<configHex>/         one self-contained image directory per image:
 *       config.json                     runtime config, written last (the completion marker)
 *       <diffHex>.idx, <diffHex>.contents   hard links to the files in layers/
 *   <cache>/refs.json                   reference → image id, and the most recent image
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { digestHex } from '../digest/index.js';

export interface CacheOptions {
  /** Explicit cache directory (`--cache-dir`). */
  cacheDir?: string;
}

/** `--cache-dir`, else `VMIMG_CACHE_DIR`, else `$XDG_CACHE_HOME/vmimg`, else `~/.cache/vmimg`. */
export function resolveCacheDir(options: CacheOptions = {}, env: NodeJS.ProcessEnv = process.env): string {
  if (options.cacheDir) return resolve(options.cacheDir);
  if (env.VMIMG_CACHE_DIR) return resolve(env.VMIMG_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return resolve(env.XDG_CACHE_HOME, 'vmimg');
  return join(homedir(), '.cache', 'vmimg');
}

export class CacheLayout {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  get layersDir(): string {
    return join(this.root, 'layers', 'sha256');
  }

  get imagesDir(): string {
    return join(this.root, 'images');
  }

  get refsFile(): string {
    return join(this.root, 'refs.json');
  }

  get tmpDir(): string {
    return join(this.root, 'tmp');
  }

  /** The image directory for an image, named by its config digest. */
  imageDir(configDigest: string): string {
    return join(this.imagesDir, digestHex(configDigest));
  }
}
