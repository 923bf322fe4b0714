/** The cache's images: listing, finding by name or id, removing (prune.ts frees what nothing uses). */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import { parseReference, formatReference } from '../reference/index.js';
import { configPlatform } from '../manifest/index.js';
import { formatPlatform, hostPlatform, selectBest } from '../platform/index.js';
import type { Platform } from '../platform/types.js';
import { CacheLayout } from './cache.js';
import { loadFromDir, type Image } from './image-dir.js';
import { configAsArrived, entryTargets, readRefs, updateRefs, type RefEntry, type RefTarget } from './refs.js';

export interface ImageSummary {
  /** Config digest. */
  id: string;
  names: string[];
  platform: string;
  /** Bytes of file content over all layers. */
  size: number;
  createdAt: string;
  dir: string;
}

export async function listImages(cache: CacheLayout): Promise<ImageSummary[]> {
  const refs = await readRefs(cache);
  let dirs: string[];
  try {
    dirs = (await readdir(cache.imagesDir)).filter((d) => /^[0-9a-f]{64}$/.test(d));
  } catch {
    return [];
  }
  const summaries: ImageSummary[] = [];
  for (const hex of dirs) {
    let image: Image;
    try {
      image = await loadFromDir(join(cache.imagesDir, hex));
    } catch {
      continue; // incomplete (no config.json yet) or damaged: not an image
    }
    const id = image.config.source.configDigest;
    summaries.push({
      id,
      names: Object.entries(refs.refs).filter(([, e]) => entryTargets(e).some((t) => t.image === id)).map(([n]) => n).sort(),
      platform: image.config.source.platform,
      size: image.config.layerDetails.reduce((sum, l) => sum + l.size, 0),
      createdAt: image.config.source.createdAt,
      dir: image.dir,
    });
  }
  return summaries.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/**
 * Finds a cached image by name (as pulled/loaded, or its canonical reference form), by id or id prefix
 * (`sha256:ab12…` or `ab12…`, at least 6 hex digits), or the most recent one when `name` is undefined
 * (with `platform`, the image for it under the most recent one's name).
 *
 * A name holds one image per platform. With `platform` (asked for explicitly) the name's image for it,
 * else ERR_PLATFORM_MISMATCH listing the platforms it has; without, the host's platform is preferred
 * and the name's most recent image is the fallback (check its platform to warn).
 */
export async function findImage(cache: CacheLayout, name: string | undefined, platform?: Platform): Promise<Image> {
  const refs = await readRefs(cache);
  if (name === undefined) {
    const id = refs.last;
    if (!id) throw new VmimgError(ErrorCode.NOT_FOUND, 'no image pulled or loaded yet', { hint: 'run vmimg pull REF or vmimg load TAR first' });
    // another platform asked: the most recent image's name may hold one for it
    const sibling = platform && Object.entries(refs.refs).find(([, e]) => entryTargets(e).some((t) => t.image === id));
    if (sibling) return pickPlatform(sibling[0], await entryImages(cache, sibling[1]), platform);
    return loadFromDir(cache.imageDir(id), platform ? { platform } : {});
  }
  const entry = refEntry(refs.refs, name);
  if (entry) return pickPlatform(name, await entryImages(cache, entry), platform);
  const id = await byIdPrefix(cache, name);
  if (!id) throw new VmimgError(ErrorCode.NOT_FOUND, `no cached image named "${name}"`, { hint: 'vmimg images lists what is cached' });
  return loadFromDir(cache.imageDir(id), platform ? { platform } : {});
}

/** The images a name points at that are still in the cache, most recent first, each as it arrived under the name. */
async function entryImages(cache: CacheLayout, entry: RefEntry): Promise<Image[]> {
  const images: Image[] = [];
  for (const target of entryTargets(entry)) {
    try {
      const image = await loadFromDir(cache.imageDir(target.image));
      images.push({ ...image, config: configAsArrived(image.config, target) });
    } catch {
      // removed or damaged meanwhile: not a candidate
    }
  }
  return images;
}

function pickPlatform(name: string, images: Image[], platform: Platform | undefined): Image {
  if (images.length === 0) throw new VmimgError(ErrorCode.NOT_FOUND, `no cached image named "${name}"`, { hint: 'vmimg images lists what is cached' });
  const best = selectBest(images.map((i) => ({ platform: configPlatform(i.config) })), platform ?? hostPlatform());
  if (best >= 0) return images[best]!;
  if (platform === undefined) return images[0]!;
  const available = images.map((i) => formatPlatform(configPlatform(i.config)));
  throw new VmimgError(ErrorCode.PLATFORM_MISMATCH, `"${name}" is cached for ${available.join(', ')}, not ${formatPlatform(platform)}`, {
    details: { wanted: formatPlatform(platform), available },
  });
}

/**
 * The entry a name the user typed means: the name as recorded; its canonical reference form (`alpine` →
 * `docker.io/library/alpine:latest`); and for a tar's path (`/abs/x.tar`, recorded `<path>:latest` when
 * the archive's ref name is `latest`) the path's `:latest` entry, as a reference without a tag means `:latest`.
 */
function refEntry(refs: Record<string, RefEntry>, name: string): RefEntry | undefined {
  return refs[name] ?? refs[canonical(name) ?? ''] ?? (name.startsWith('/') ? refs[`${name}:latest`] : undefined);
}

function canonical(name: string): string | undefined {
  try {
    return formatReference(parseReference(name));
  } catch {
    return undefined;
  }
}

async function byIdPrefix(cache: CacheLayout, name: string): Promise<string | undefined> {
  const hex = name.replace(/^sha256:/, '');
  if (!/^[0-9a-f]{6,64}$/.test(hex)) return undefined;
  let dirs: string[];
  try {
    dirs = await readdir(cache.imagesDir);
  } catch {
    return undefined;
  }
  const hits = dirs.filter((d) => d.startsWith(hex));
  if (hits.length > 1) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `image id prefix "${name}" is ambiguous`);
  return hits[0] ? `sha256:${hits[0]}` : undefined;
}

/**
 * Removes cached images and every name pointing at them; returns their ids. A name without `platform`
 * removes its images for every platform; with one, only that platform's. Layers stay until `prune`.
 */
export async function removeImage(cache: CacheLayout, name: string, platform?: Platform): Promise<string[]> {
  const refs = await readRefs(cache);
  const entry = refEntry(refs.refs, name);
  const images = entry && !platform ? await entryImages(cache, entry) : [await findImage(cache, name, platform)];
  if (images.length === 0) throw new VmimgError(ErrorCode.NOT_FOUND, `no cached image named "${name}"`, { hint: 'vmimg images lists what is cached' });
  const ids = new Set(images.map((i) => i.config.source.configDigest));
  const remaining = (await listImages(cache)).filter((i) => !ids.has(i.id));
  await updateRefs(cache, (now) => {
    for (const [n, e] of Object.entries(now.refs)) {
      const left = entryTargets(e).filter((t) => !ids.has(t.image));
      if (left.length === 0) delete now.refs[n];
      else if (left.length < entryTargets(e).length) now.refs[n] = withoutImages(e, ids, left[0]!);
    }
    // the most recent image is the default of `export DIR`: fall back to the newest one left
    if (now.last !== undefined && ids.has(now.last)) {
      if (remaining[0]) now.last = remaining[0].id;
      else delete now.last;
    }
  });
  for (const image of images) await rm(image.dir, { recursive: true, force: true });
  return [...ids];
}

function withoutImages(entry: RefEntry, ids: Set<string>, newest: RefTarget): RefEntry {
  const platforms = Object.fromEntries(Object.entries(entry.platforms ?? {}).filter(([, t]) => !ids.has(t.image)));
  return { ...newest, ...(Object.keys(platforms).length > 0 ? { platforms } : {}) };
}
