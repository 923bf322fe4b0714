/**
 * The lazy-read counters of an image, kept across processes: `<cache>/stats/<configHex>.json` holds the
 * sum of every process's LazyContent counters per layer (each `vmimg cat`, `ls`, `export` adds its own
 * when it ends), for `vmimg stats` and {@link readLazyStats}. Written under a temp name and renamed; two
 * processes ending at the same moment may lose one's counts (they are statistics, not state).
 */
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../digest/index.js';
import { writeFileDurable } from '../util/fs.js';
import { emptyStats, type LazyStats } from './lazy-content.js';

/** An image's persisted counters: per layer (by diff_id), summed over processes. */
export interface ImageLazyStats {
  /** The image's config digest (its id). */
  image: string;
  layers: Record<string, LazyStats>;
}

/** Where the counters of image `configDigest` are kept in the cache at `cacheRoot`. */
export function statsPath(cacheRoot: string, configDigest: string): string {
  return join(cacheRoot, 'stats', `${digestHex(configDigest)}.json`);
}

/** The persisted counters of an image (empty layers when nothing was read lazily yet). */
export async function readLazyStats(cacheRoot: string, configDigest: string): Promise<ImageLazyStats> {
  const text = await readFile(statsPath(cacheRoot, configDigest), 'utf8').catch(() => undefined);
  try {
    const doc = text === undefined ? undefined : (JSON.parse(text) as ImageLazyStats);
    if (doc && typeof doc.layers === 'object' && doc.layers !== null) return { image: configDigest, layers: doc.layers };
  } catch {
    // a damaged file only loses statistics
  }
  return { image: configDigest, layers: {} };
}

/** Adds `counters` (by diff_id) to the image's persisted ones; layers without reads or requests add nothing. */
export async function addLazyStats(cacheRoot: string, configDigest: string, counters: ReadonlyMap<string, LazyStats>): Promise<void> {
  const used = [...counters].filter(([, s]) => s.readHits + s.readMisses + s.rangeRequests + s.wholeBlobFetches > 0);
  if (used.length === 0) return;
  const doc = await readLazyStats(cacheRoot, configDigest);
  for (const [diffId, s] of used) doc.layers[diffId] = sum(doc.layers[diffId] ?? emptyStats(), s);
  const path = statsPath(cacheRoot, configDigest);
  await mkdir(join(cacheRoot, 'stats'), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFileDurable(tmp, `${JSON.stringify(doc)}\n`);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Counters added; the earlier first read and the larger maximum kept. */
export function sum(a: LazyStats, b: LazyStats): LazyStats {
  const out = { ...a };
  for (const k of ['rangeRequests', 'rangeBytes', 'spansFetched', 'spansReadAhead', 'spansVerified', 'spansWaited', 'inflateMs', 'readHits', 'readMisses', 'wholeBlobFetches', 'missMs'] as const) out[k] = (a[k] ?? 0) + (b[k] ?? 0);
  out.maxMissMs = Math.max(a.maxMissMs ?? 0, b.maxMissMs ?? 0);
  const first = [a.firstReadAt, b.firstReadAt].filter((t): t is string => t !== undefined).sort()[0];
  if (first !== undefined) out.firstReadAt = first;
  return out;
}
