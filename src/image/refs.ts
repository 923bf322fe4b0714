/**
 * `refs.json`: which names point at which image (by config digest), and the most recent image
 * (what `vmimg export DIR` uses when no image is named). Every change is a read-modify-write under
 * `locks/refs.lock` and an atomic replace, so concurrent pulls and loads never lose each other's names.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitLock } from '../store/lock.js';
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

/** Held for one read-modify-write (milliseconds); a holder that died is detected by its pid. */
const REFS_LOCK_STALE_MS = 10_000;

/**
 * Applies `change` to refs.json under the refs lock: read, change, write to a temp file, rename.
 * Returns what `change` returned.
 */
export async function updateRefs<T>(cache: CacheLayout, change: (refs: Refs) => T): Promise<T> {
  await mkdir(cache.locksDir, { recursive: true });
  const lock = await waitLock(join(cache.locksDir, 'refs.lock'), { staleMs: REFS_LOCK_STALE_MS, what: 'the refs.json lock' });
  try {
    const refs = await readRefs(cache);
    const result = change(refs);
    await writeFileAtomic(cache.refsFile, `${JSON.stringify(refs, null, 2)}\n`);
    return result;
  } finally {
    await lock.release();
  }
}

export async function recordImage(cache: CacheLayout, name: string, configDigest: string): Promise<void> {
  await updateRefs(cache, (refs) => {
    refs.refs[name] = { image: configDigest, updatedAt: new Date().toISOString() };
    refs.last = configDigest;
  });
}
