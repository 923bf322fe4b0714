/**
 * The cache directory and its layout:
 *
 *   <cache>/blobs/sha256/<hex>          compressed blobs, manifests, configs (BlobStore)
 *   <cache>/layers/sha256/<hex>.idx     flattened layers keyed by diff_id (uncompressed digest)
 *   <cache>/layers/sha256/<hex>.contents
 *   <cache>/images/<configHex>/         one self-contained image directory per image:
 *       config.json                     runtime config, written last (the completion marker)
 *       <diffHex>.idx, <diffHex>.contents   hard links to the files in layers/
 *   <cache>/refs.json                   name → image id per platform, and the most recent image
 *   <cache>/partial/<hex>(.lock)        interrupted downloads (resumable) and the lock of the one writing
 *   <cache>/tmp/                        blobs being written (temp name carries the writer's pid)
 *   <cache>/locks/gc.lock, refs.lock    the garbage-collection lock and the refs.json lock
 *   <cache>/leases/<pid>-<id>.jsonl     what each running pull/load/serve needs kept (see lease.ts)
 *   <cache>/uploads/<key>/<hex>.json    push's unfinished chunked upload sessions (push/upload-journal.ts)
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

  /** Gzip checkpoint indexes, `<compressed hex>.zran` (src/lazy/build.ts, docs/FORMAT.md). */
  get checkpointsDir(): string {
    return join(this.root, 'checkpoints', 'sha256');
  }

  get blobsDir(): string {
    return join(this.root, 'blobs', 'sha256');
  }

  get partialDir(): string {
    return join(this.root, 'partial');
  }

  get locksDir(): string {
    return join(this.root, 'locks');
  }

  get leasesDir(): string {
    return join(this.root, 'leases');
  }

  /** Push's unfinished chunked upload sessions (src/push/upload-journal.ts). */
  get uploadsDir(): string {
    return join(this.root, 'uploads');
  }

  /** The image directory for an image, named by its config digest. */
  imageDir(configDigest: string): string {
    return join(this.imagesDir, digestHex(configDigest));
  }
}
