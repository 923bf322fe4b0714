/**
 * `refs.json`: which names point at which image (by config digest), and the most recent image
 * (what `vmimg export DIR` uses when no image is named). Rewritten atomically; a lost update between
 * two concurrent pulls only loses a name, never an image.
 */
import { mkdir, readFile } from 'node:fs/promises';
import type { CacheLayout } from './cache.js';
import { writeFileAtomic } from './image-dir.js';

export interface RefEntry {
  /** Config digest: the image id. */
  image: string;
  /** ISO time the name was last pointed here. */
  updatedAt: string;
}

export interface Refs {
  version: 1;
  refs: Record<string, RefEntry>;
  /** Config digest of the image most recently pulled or loaded. */
  last?: string;
}

export async function readRefs(cache: CacheLayout): Promise<Refs> {
  try {
    const parsed = JSON.parse(await readFile(cache.refsFile, 'utf8')) as Refs;
    if (parsed?.version === 1 && typeof parsed.refs === 'object' && parsed.refs !== null) return parsed;
  } catch {
    // Missing or unreadable: start over; images themselves are intact in images/.
  }
  return { version: 1, refs: {} };
}

export async function writeRefs(cache: CacheLayout, refs: Refs): Promise<void> {
  await mkdir(cache.root, { recursive: true });
  await writeFileAtomic(cache.refsFile, `${JSON.stringify(refs, null, 2)}\n`);
}

export async function recordImage(cache: CacheLayout, name: string, configDigest: string): Promise<void> {
  const refs = await readRefs(cache);
  refs.refs[name] = { image: configDigest, updatedAt: new Date().toISOString() };
  refs.last = configDigest;
  await writeRefs(cache, refs);
}
