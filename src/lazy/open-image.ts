/**
 * Opening the lazy layers of an image (one pulled with `pull --lazy`): each layer whose `.spans` the
 * image directory holds gets a LazyContent reading ranges of its blob from the image's registry.
 * ContainerFS, the exporters and boot then read the image as usual (vfs never touches the network:
 * the reader is handed to it as the layer's `content`).
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { hasLazyLayers, type Image, type ImageLayer } from '../image/image-dir.js';
import { scanIndexFile } from '../layer/index-format.js';
import type { LayerLimits } from '../layer/limits.js';
import { parseReference } from '../reference/index.js';
import type { Reference } from '../reference/types.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/client.js';
import type { ContentReader } from '../vfs/content.js';
import { LazyContent, type LazyStats } from './lazy-content.js';
import { fileTable } from './placed-files.js';
import { registryRangeSource } from './registry-source.js';
import { blobCopyPath } from './blob-copy.js';
import type { BlobStore } from '../store/blob-store.js';
import { decodeZran } from './zran-format.js';
import { addLazyStats } from './stats.js';

/** Options of {@link openLazyImage}: how to reach the image's registry. */
export interface LazyOpenOptions extends RegistryClientOptions {
  signal?: AbortSignal;
  /** Reuse a client (it is then the caller's to close). */
  client?: RegistryClient;
  /** Warnings while reading (a registry ignoring Range). */
  warn?: (message: string) => void;
  /** The cache the image is in: `close` then adds this process's counters to the image's kept ones (`vmimg stats`). */
  cacheDir?: string;
  /** Expansion limits for a layer filled from its whole blob (an eager pull's; defaults if unset). */
  limits?: Partial<LayerLimits>;
}

/** An image whose lazy layers carry their reader as `content`; `close` releases readers and connections. */
export interface LazyImage extends Image {
  /** True when at least one layer is read lazily. */
  readonly lazy: boolean;
  /** The counters of each lazy layer, by diff_id. */
  stats(): Map<string, LazyStats>;
  close(): Promise<void>;
}

/** The files of a lazy layer: `.idx` v2, the sparse `.contents`, `.spans` and the `.zran` if any. */
export interface LazyLayerFiles {
  indexPath: string;
  contentsPath: string;
  spansPath: string;
  zranPath?: string;
}

/** A LazyContent over one lazy layer, reading ranges of blob `blob` of `repo` through `client`. */
export async function openLazyLayer(
  files: LazyLayerFiles,
  blob: { digest: string; size: number },
  client: RegistryClient,
  repo: Reference,
  options: Pick<LazyOpenOptions, 'signal' | 'warn' | 'cacheDir' | 'onNotice' | 'limits'> = {},
): Promise<LazyContent> {
  const desc = { mediaType: 'application/octet-stream', digest: blob.digest, size: blob.size };
  return LazyContent.open({
    ...(files.zranPath !== undefined ? { zran: decodeZran(await readFile(files.zranPath)) } : {}),
    files: async () => fileTable(await scanIndexFile(files.indexPath)), // on the first read
    digest: blob.digest,
    blobSize: blob.size,
    ...(options.limits !== undefined ? { limits: options.limits } : {}),
    contentsPath: files.contentsPath,
    spansPath: files.spansPath,
    source: registryRangeSource(client, repo, desc, { signal: options.signal, onNotice: options.onNotice }),
    ...(options.warn ? { warn: options.warn } : {}),
    ...(options.cacheDir !== undefined ? { blobCopyPath: blobCopyPath(options.cacheDir, blob.digest) } : {}),
  });
}

/**
 * Puts each lazy layer's blob of `image` (opened with a `cacheDir`) into `store`, fetching only the
 * spans no read fetched yet (LazyContent.fillBlob); returns how many were done so. The others (no kept
 * copy: layers read before one was kept, or under 10 MiB) are left to a whole download.
 */
export async function fillLazyBlobs(image: LazyImage, store: BlobStore, signal?: AbortSignal): Promise<number> {
  let done = 0;
  const seen = new Set<ContentReader>();
  for (const layer of image.layers as (ImageLayer & { content?: ContentReader })[]) {
    if (!(layer.content instanceof LazyContent) || seen.has(layer.content)) continue;
    seen.add(layer.content);
    if (await layer.content.fillBlob(store, signal)) done++;
  }
  return done;
}

export { hasLazyLayers };

/**
 * `image` with a LazyContent on each lazy layer (an image without one is returned as is, `lazy` false).
 * Errors: ERR_INVALID_IMAGE when the image does not name the registry its blobs come from;
 * ERR_INVALID_INDEX for a damaged `.idx`/`.zran`. Reads later fail with the registry's coded errors.
 */
export async function openLazyImage(image: Image, options: LazyOpenOptions = {}): Promise<LazyImage> {
  const readers = new Map<string, LazyContent>();
  const plain = { ...image, lazy: false, stats: () => new Map<string, LazyStats>(), close: async () => undefined };
  if (!hasLazyLayers(image)) return plain;
  const reference = image.config.source.reference;
  if (image.config.source.kind !== 'registry' || reference === undefined) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `${image.dir}: lazy layers but no registry reference to read them from`);
  }
  const repo = parseReference(reference);
  const client = options.client ?? new RegistryClient(options);
  const stats = (): Map<string, LazyStats> => new Map([...readers].map(([d, r]) => [d, { ...r.stats }]));
  const close = async (): Promise<void> => {
    for (const r of readers.values()) await r.close();
    if (!options.client) await client.close();
    if (options.cacheDir !== undefined) await addLazyStats(options.cacheDir, image.config.source.configDigest, stats());
  };
  try {
    const layers: (ImageLayer & { content?: ContentReader })[] = [];
    for (const [i, layer] of image.layers.entries()) {
      if (layer.spansPath === undefined) {
        layers.push(layer);
        continue;
      }
      let reader = readers.get(layer.diffId);
      if (reader === undefined) {
        const detail = image.config.layerDetails[i];
        if (detail?.digest === undefined || detail.compressedSize === undefined) throw new VmimgError(ErrorCode.INVALID_IMAGE, `${image.dir}: lazy layer ${i + 1} has no blob digest`);
        reader = await openLazyLayer({ ...layer, spansPath: layer.spansPath }, { digest: detail.digest, size: detail.compressedSize }, client, repo, options);
        readers.set(layer.diffId, reader);
      }
      layers.push({ ...layer, content: reader });
    }
    return { ...image, layers, lazy: true, stats, close };
  } catch (err) {
    await close();
    throw err;
  }
}
