/**
 * Image directories: `config.json` (the runtime config) plus each layer's `<diffHex>.idx` and
 * `<diffHex>.contents`. The same shape serves the cache (`<cache>/images/<id>/`) and exports.
 * Directories are assembled under a temporary name and renamed into place, `config.json` last.
 */
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { digestHex, validateDigest } from '../digest/index.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { layerPaths } from '../layer/paths.js';
import { configPlatform } from '../manifest/index.js';
import { createMatcher, formatPlatform } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import { writeFileDurable } from '../util/fs.js';
import { createLimiter, settleAll } from '../util/limiter.js';
import { checkDirDestination, replaceInPlace } from './destination.js';
import { RUNTIME_CONFIG_VERSION, type RuntimeConfig } from './runtime-config.js';

/** Layer files linked into an image directory at once (an image has up to `maxLayers` layers, each up to four files). */
const LINKS_AT_ONCE = 16;

export interface ImageLayer {
  diffId: string;
  indexPath: string;
  contentsPath: string;
  /**
   * A layer pulled lazily (docs/FORMAT.md "`.spans`"): its presence map, and its `.zran` when the blob
   * has checkpoints. Its `.contents` fills as it is read: open the image with `openLazyImage`.
   */
  spansPath?: string;
  zranPath?: string;
}

/** A prepared image: an image directory and its runtime config. */
export interface Image {
  dir: string;
  config: RuntimeConfig;
  layers: ImageLayer[];
  /** The name the cache recorded for the image, when it was just pulled or loaded. */
  name?: string;
}

export const CONFIG_FILE = 'config.json';

/** True when any layer of `image` is still read lazily (its image directory holds the layer's `.spans`). */
export function hasLazyLayers(image: Image): boolean {
  return image.layers.some((l) => l.spansPath !== undefined);
}

/** Opens an image directory, refusing one made for another platform (ERR_PLATFORM_MISMATCH). */
export async function loadFromDir(dir: string, options: { platform?: Platform } = {}): Promise<Image> {
  let text: string;
  try {
    text = await readFile(join(dir, CONFIG_FILE), 'utf8');
  } catch (err) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `${dir}: not an image directory (no readable ${CONFIG_FILE})`, {
      cause: err,
    });
  }
  const config = parseRuntimeConfig(text, dir);
  if (options.platform) checkPlatform(config, options.platform, dir);
  const layers: ImageLayer[] = config.layers.map((diffId, i) => ({ diffId, ...layerPaths(dir, diffId), ...lazyPaths(dir, diffId, config.layerDetails?.[i]?.lazy === true, config.layerDetails?.[i]?.checkpoints === true) }));
  await Promise.all(
    layers.flatMap((l) => [l.indexPath, l.contentsPath, ...(l.spansPath ? [l.spansPath] : [])]).map(async (p) => {
      try {
        await stat(p);
      } catch (err) {
        throw new VmimgError(ErrorCode.INVALID_IMAGE, `${dir}: layer file ${basename(p)} is missing`, { cause: err });
      }
    }),
  );
  return { dir, config, layers };
}

/** A lazy layer's `.spans` and `.zran` in an image directory (`<diffHex>.spans`, `<diffHex>.zran`). */
function lazyPaths(dir: string, diffId: string, lazy: boolean, zran: boolean): Pick<ImageLayer, 'spansPath' | 'zranPath'> {
  if (!lazy) return {};
  const hex = digestHex(diffId);
  return { spansPath: join(dir, `${hex}.spans`), ...(zran ? { zranPath: join(dir, `${hex}.zran`) } : {}) };
}

function parseRuntimeConfig(text: string, dir: string): RuntimeConfig {
  let config: RuntimeConfig;
  try {
    config = JSON.parse(text) as RuntimeConfig;
  } catch (err) {
    throw new VmimgError(ErrorCode.INVALID_IMAGE, `${dir}/${CONFIG_FILE}: not JSON`, { cause: err });
  }
  if (config?.schemaVersion !== RUNTIME_CONFIG_VERSION || !Array.isArray(config.layers)) {
    throw new VmimgError(
      ErrorCode.INVALID_IMAGE,
      `${dir}/${CONFIG_FILE}: not a vmimg runtime config (schemaVersion ${String(config?.schemaVersion)}, expected ${RUNTIME_CONFIG_VERSION})`,
    );
  }
  for (const diffId of config.layers) {
    try {
      validateDigest(diffId);
    } catch (err) {
      throw new VmimgError(ErrorCode.INVALID_IMAGE, `${dir}/${CONFIG_FILE}: bad layer digest`, { cause: err });
    }
  }
  return config;
}

function checkPlatform(config: RuntimeConfig, wanted: Platform, dir: string): void {
  const have = configPlatform(config);
  if (!createMatcher(wanted).match(have)) {
    throw new VmimgError(
      ErrorCode.PLATFORM_MISMATCH,
      `${dir}: image is for ${formatPlatform(have)}, not ${formatPlatform(wanted)}`,
      { details: { wanted: formatPlatform(wanted), available: [formatPlatform(have)] } },
    );
  }
}

export interface WriteImageDirOptions {
  /** Replace an image directory vmimg wrote at the destination (nothing else: see destination.ts). */
  force?: boolean;
}

/**
 * Writes `config.json` and every layer's files into `dst`: hard links when on the same filesystem,
 * reflink-or-copy otherwise. `layers` may list a diff_id more than once; its files are stored once. Assembled in a sibling temp directory and renamed into place.
 */
export async function writeImageDir(
  config: RuntimeConfig,
  layers: ImageLayer[],
  destination: string,
  options: WriteImageDirOptions = {},
): Promise<Image> {
  const dst = resolve(destination); // `.` is its absolute path: a temp sibling and renames need a real name
  const existing = await checkDirDestination(dst, options.force ?? false);
  const tmp = join(dirname(dst), `.${basename(dst)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`); // pid: prune tells a dead writer's leftovers
  await mkdir(tmp, { recursive: true });
  try {
    const placed = layers.map((layer) => ({ diffId: layer.diffId, ...layerPaths(dst, layer.diffId), ...lazyPaths(dst, layer.diffId, layer.spansPath !== undefined, layer.zranPath !== undefined) }));
    const links: [string, string][] = [];
    const stored = new Set<string>(); // a layer listed twice (same diff_id) is stored once
    for (const layer of layers) {
      if (stored.has(layer.diffId)) continue;
      stored.add(layer.diffId);
      const staged = layerPaths(tmp, layer.diffId);
      const lazy = lazyPaths(tmp, layer.diffId, layer.spansPath !== undefined, layer.zranPath !== undefined);
      links.push([layer.contentsPath, staged.contentsPath], [layer.indexPath, staged.indexPath]);
      if (lazy.spansPath) links.push([layer.spansPath!, lazy.spansPath]);
      if (lazy.zranPath) links.push([layer.zranPath!, lazy.zranPath]);
    }
    // Links and the config at once (a lazy pull's nine layers linked one by one took 18-34 ms of its
    // ~200); all settle before a failure removes the temp dir, so nothing writes into a removed one.
    const limit = createLimiter(LINKS_AT_ONCE);
    await settleAll([
      ...links.map(([src, dst]) => limit(() => linkOrCopy(src, dst))),
      writeFileDurable(join(tmp, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`),
    ]);
    await moveIntoPlace(tmp, dst, existing);
    return { dir: dst, config, layers: placed };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Renames the finished temp dir to `dst` when it did not exist (one rename), else moves its files
 * into it (see replaceInPlace). When another writer puts its directory in place first, theirs
 * stands: in the cache both are the same image (the directory is named by its config digest).
 */
async function moveIntoPlace(tmp: string, dst: string, existing: readonly string[] | undefined): Promise<void> {
  if (existing !== undefined) return replaceInPlace(tmp, dst, existing);
  try {
    await rename(tmp, dst);
  } catch (err) {
    if (!isNotEmpty(err)) throw err;
    await rm(tmp, { recursive: true, force: true });
  }
}

function isNotEmpty(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOTEMPTY' || code === 'EEXIST';
}

/** Exports an image to `dst` (see writeImageDir). */
export async function exportToDir(image: Image, dst: string, options: WriteImageDirOptions = {}): Promise<Image> {
  return writeImageDir(image.config, image.layers, dst, options);
}

/**
 * Layer files are immutable content shared by hard link between the cache and every image dir or
 * export of the image: read-only, so an accidental write fails instead of corrupting them all.
 */
async function linkOrCopy(src: string, dst: string): Promise<void> {
  await chmod(src, 0o444);
  try {
    await link(src, dst);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
    await copyFile(src, dst, fsConstants.COPYFILE_FICLONE);
  }
}

/** Writes via temp name + rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await writeFileDurable(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
