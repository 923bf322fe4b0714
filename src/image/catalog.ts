/** The cache's images: listing, finding by name or id, removing (prune.ts frees what nothing uses). */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import { parseReference, formatReference } from '../reference/index.js';
import type { Platform } from '../platform/types.js';
import { CacheLayout } from './cache.js';
import { loadFromDir, type Image } from './image-dir.js';
import { readRefs, updateRefs } from './refs.js';

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
      names: Object.entries(refs.refs).filter(([, e]) => e.image === id).map(([n]) => n).sort(),
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
 * (`sha256:ab12…` or `ab12…`, at least 6 hex digits), or the most recent one when `name` is undefined.
 */
export async function findImage(cache: CacheLayout, name: string | undefined, platform?: Platform): Promise<Image> {
  const refs = await readRefs(cache);
  let id: string | undefined;
  if (name === undefined) {
    id = refs.last;
    if (!id) throw new VmimgError(ErrorCode.NOT_FOUND, 'no image pulled or loaded yet', { hint: 'run vmimg pull REF or vmimg load TAR first' });
  } else {
    id = refs.refs[name]?.image ?? refs.refs[canonical(name) ?? '']?.image ?? (await byIdPrefix(cache, name));
  }
  if (!id) {
    throw new VmimgError(ErrorCode.NOT_FOUND, `no cached image named "${name}"`, { hint: 'vmimg images lists what is cached' });
  }
  return loadFromDir(cache.imageDir(id), platform ? { platform } : {});
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

/** Removes an image's directory and every name pointing at it. Layers stay until `prune`. */
export async function removeImage(cache: CacheLayout, name: string): Promise<ImageSummary['id']> {
  const image = await findImage(cache, name);
  const id = image.config.source.configDigest;
  await updateRefs(cache, (refs) => {
    for (const [n, e] of Object.entries(refs.refs)) if (e.image === id) delete refs.refs[n];
    if (refs.last === id) delete refs.last;
  });
  await rm(image.dir, { recursive: true, force: true });
  return id;
}
