/**
 * Where ContainerFS gets its layers: an image directory (config.json listing diff_ids, bottom first,
 * next to `<hex>.idx` / `<hex>.contents`), a loaded image (`{ layers: [{ indexPath, contentsPath }] }`),
 * a list of `.idx`/`.contents` pairs, or in-memory entries.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, validateDigest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import type { IndexEntry } from '../layer/entry.js';
import { scanIndexFile } from '../layer/index-format.js';
import { RecordEntries, type LayerEntries } from './layer-entries.js';
import { LayerScan } from './direct-scan.js';
import { mapLimit } from '../util/limiter.js';
import { ContentFile, type ContentReader } from './content.js';

/**
 * A layer's file bytes: its `.contents` file (`contentsPath`), or any `ContentReader` (`content`, e.g. a
 * remote or lazy backend), which wins when both are given. ContainerFS closes the `.contents` files it
 * opens, never a reader it was handed.
 */
export interface LayerContent {
  contentsPath?: string;
  content?: ContentReader;
}

/** A flattened layer on disk: its `.idx` and its content. */
export interface LayerFiles extends LayerContent {
  indexPath: string;
  /**
   * Set on a layer pulled lazily (its `.contents` fills as it is read): such a layer needs a `content`
   * reader that fetches what is missing (`openLazyImage` of `vmimg`); without one, opening fails.
   */
  spansPath?: string;
}

/** A layer whose entries are already decoded (tests, tools building a tree in memory). */
export interface MemoryLayer extends LayerContent {
  entries: readonly IndexEntry[];
}

export type LayerSource = LayerFiles | MemoryLayer;

/** A layer ready to merge: its entries read in place from its `.idx` (or wrapped objects) and its content. */
export interface LoadedLayer extends LayerContent {
  entries: LayerEntries | readonly IndexEntry[];
  /** The direct pack's scan of the records, made while checking them (an image of one `.idx` layer). */
  scan?: LayerScan;
}

/** A loaded image (src/image's Image has this shape): its layers' files, bottom first. */
export interface LayeredImage {
  readonly layers: readonly LayerFiles[];
}

/** An image directory path, a loaded image, or layers bottom first. */
export type ContainerSource = string | LayeredImage | readonly LayerSource[];

/**
 * Reads every layer's `.idx` (checked whole, entries left in place as records), bottom first.
 * `direct`: each `.idx` is scanned for the direct pack in the same pass as its checks.
 */
export async function loadLayers(source: ContainerSource, { direct = false } = {}): Promise<LoadedLayer[]> {
  const layers = await sourceLayers(source);
  const decoded = new Map<string, Promise<{ entries: RecordEntries; scan?: LayerScan }>>(); // a layer listed twice is read once
  const entriesOf = (indexPath: string): Promise<{ entries: RecordEntries; scan?: LayerScan }> => {
    let p = decoded.get(indexPath);
    if (p === undefined) {
      const scan = direct ? new LayerScan() : undefined;
      decoded.set(indexPath, (p = scanIndexFile(indexPath, scan?.records).then((r) => ({ entries: new RecordEntries(r), ...(scan && { scan }) }))));
    }
    return p;
  };
  // A few index files at a time: an image of 10 000 layers must not hold 10 000 descriptors at once.
  return mapLimit(layers, 8, async (l): Promise<LoadedLayer> => {
    if ('entries' in l) return l;
    return { ...contentOf(l), ...(await entriesOf(l.indexPath)) };
  });
}

async function sourceLayers(source: ContainerSource): Promise<readonly LayerSource[]> {
  const layers = await givenLayers(source);
  const lazy = layers.findIndex((l) => 'spansPath' in l && l.spansPath !== undefined && l.content === undefined);
  if (lazy >= 0) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `layer ${lazy + 1} of the image was pulled lazily: its files are fetched as they are read`, {
      hint: "open it with openLazyImage() of 'vmimg' (the CLI does), or complete it with vmimg pull --fill",
    });
  }
  return layers;
}

async function givenLayers(source: ContainerSource): Promise<readonly LayerSource[]> {
  if (typeof source === 'string') return imageDirLayers(source);
  if (Array.isArray(source)) return source as readonly LayerSource[];
  const layers = (source as Partial<LayeredImage> | null)?.layers;
  if (!Array.isArray(layers)) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'ContainerFS.open takes an image directory, a loaded image or a list of layers');
  }
  // only the file names: an Image's layers carry more (diffId, sizes) that the VFS has no use for
  return layers.map((l: LayerFiles) => ({ indexPath: l.indexPath, ...contentOf(l), ...(l.spansPath !== undefined ? { spansPath: l.spansPath } : {}) }));
}

/** Only the content fields (a loaded Image's layers carry more). */
function contentOf(l: LayerContent): LayerContent {
  return l.content !== undefined ? { content: l.content } : { contentsPath: l.contentsPath };
}

/** The reader for a layer's content, and whether ContainerFS made it (and so must close it). */
export function contentReader(l: LayerContent): { reader: ContentReader; owned: boolean } {
  if (l.content !== undefined) return { reader: l.content, owned: false };
  if (typeof l.contentsPath !== 'string') throw new VmimgError(ErrorCode.INVALID_ARGUMENT, 'a layer needs a contentsPath or a content reader');
  return { reader: new ContentFile(l.contentsPath), owned: true };
}

async function imageDirLayers(dir: string): Promise<LayerFiles[]> {
  const configPath = join(dir, 'config.json');
  let config: unknown;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (err) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `${dir}: not an image directory (no readable config.json)`, {
      cause: err,
    });
  }
  const layers = (config as { layers?: unknown } | null)?.layers;
  const details = (config as { layerDetails?: { lazy?: unknown }[] }).layerDetails;
  if (!Array.isArray(layers)) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `${configPath}: no "layers" list`);
  }
  return layers.map((diffId: unknown, i) => {
    if (typeof diffId !== 'string') throw new VmimgError(ErrorCode.INVALID_IMAGE, `${configPath}: bad layer entry`);
    let hex: string;
    try {
      hex = digestHex(validateDigest(diffId));
    } catch (err) {
      throw new VmimgError(ErrorCode.INVALID_IMAGE, `${configPath}: bad layer diff_id ${diffId}`, { cause: err });
    }
    const lazy = Array.isArray(details) && details[i]?.lazy === true ? { spansPath: join(dir, `${hex}.spans`) } : {};
    return { indexPath: join(dir, `${hex}.idx`), contentsPath: join(dir, `${hex}.contents`), ...lazy };
  });
}
