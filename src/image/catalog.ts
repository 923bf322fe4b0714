/** The cache's images: listing, finding by name or id, removing, pruning what nothing references. */
import { lstat, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import { parseReference, formatReference } from '../reference/index.js';
import type { Platform } from '../platform/types.js';
import { CacheLayout } from './cache.js';
import { loadFromDir, type Image } from './image-dir.js';
import { readRefs, writeRefs } from './refs.js';

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
  const refs = await readRefs(cache);
  for (const [n, e] of Object.entries(refs.refs)) if (e.image === id) delete refs.refs[n];
  if (refs.last === id) delete refs.last;
  await writeRefs(cache, refs);
  await rm(image.dir, { recursive: true, force: true });
  return id;
}

export interface PruneResult {
  removedLayers: number;
  removedBlobs: number;
  bytesFreed: number;
}

/** Temp files and partial downloads younger than this may belong to a run in progress: left alone. */
const IN_PROGRESS_MS = 10 * 60 * 1000;

/**
 * Removes flattened layers no image directory links to (an image dir holds hard links to its layers,
 * so a layer file with one link is unreferenced), downloaded blobs no image lists, and leftovers of
 * interrupted runs: temp files, partial downloads and half-written image dirs — except recent ones,
 * which may belong to a pull running right now.
 */
export async function prune(cache: CacheLayout): Promise<PruneResult> {
  const result: PruneResult = { removedLayers: 0, removedBlobs: 0, bytesFreed: 0 };
  const now = Date.now();
  const stale = (mtimeMs: number): boolean => now - mtimeMs > IN_PROGRESS_MS;
  const remove = async (path: string, size: number): Promise<void> => {
    await rm(path, { recursive: true, force: true });
    result.bytesFreed += size;
  };
  // Half-written image dirs first: their hard links would keep layers alive.
  for (const name of await safeReaddir(cache.imagesDir)) {
    if (!/\.tmp-|\.old-/.test(name)) continue;
    const st = await lstat(join(cache.imagesDir, name));
    if (stale(st.mtimeMs)) await remove(join(cache.imagesDir, name), 0);
  }
  const wanted = await referencedDigests(cache);
  for (const file of await safeReaddir(cache.layersDir)) {
    const m = /^([0-9a-f]{64})\.(idx|contents)$/.exec(file);
    const path = join(cache.layersDir, file);
    const st = await lstat(path);
    if (m ? wanted.has(`sha256:${m[1]}`) || st.nlink > 1 : !stale(st.mtimeMs)) continue;
    await remove(path, st.size);
    if (m?.[2] === 'idx') result.removedLayers++;
  }
  const blobsDir = join(cache.root, 'blobs', 'sha256');
  for (const file of await safeReaddir(blobsDir)) {
    if (wanted.has(`sha256:${file}`)) continue;
    await remove(join(blobsDir, file), (await stat(join(blobsDir, file))).size);
    result.removedBlobs++;
  }
  for (const dir of [cache.tmpDir, join(cache.root, 'partial')]) {
    for (const file of await safeReaddir(dir)) {
      const st = await lstat(join(dir, file));
      const lock = await lstat(join(dir, `${file}.lock`)).catch(() => undefined);
      if (stale(st.mtimeMs) && !(lock && !stale(lock.mtimeMs))) await remove(join(dir, file), st.size);
    }
  }
  return result;
}

async function referencedDigests(cache: CacheLayout): Promise<Set<string>> {
  const wanted = new Set<string>();
  for (const summary of await listImages(cache)) {
    const image = await loadFromDir(summary.dir);
    for (const l of image.config.layerDetails) {
      wanted.add(l.diffId);
      if (l.digest) wanted.add(l.digest);
    }
  }
  return wanted;
}

async function safeReaddir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
