/**
 * Garbage collection and the cache's writers coordinate the way containerd's content store does:
 * every pull or load holds a *lease* naming the digests it needs (layer blobs, diff_ids, the config),
 * and `prune` deletes nothing a live lease names. Leases change and prune marks-and-sweeps under one
 * cache-wide GC lock, so a writer either registers a digest before prune looks (and it is kept) or
 * after prune is done (and then finds it gone and writes it again) — never in between.
 *
 * A lease is a file `leases/<pid>-<id>.json` holding its owner (pid, start time, host) and the digests.
 * A lease whose owner died is dead: prune removes it, and what only it kept becomes reclaimable.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { currentOwner, isOwnerAlive, type Owner } from '../store/owner.js';
import { waitLock } from '../store/lock.js';
import { writeFileDurable } from '../util/fs.js';
import type { CacheLayout } from './cache.js';

/** A GC lock untouched this long belongs to a process that hung or died (holders touch it every 1/4). */
const GC_LOCK_STALE_MS = 30_000;

interface LeaseFile extends Owner {
  created: number;
  digests: string[];
}

/** What a running writer keeps from `prune`. Release it when the image is in place (or the run failed). */
export interface CacheLease {
  /** Adds digests (blobs by digest, layers by diff_id, image dirs by config digest) to the lease. */
  add(digests: Iterable<string>): Promise<void>;
  release(): Promise<void>;
}

/** Runs `fn` holding the cache's GC lock (waits while another process holds it). */
export async function withGcLock<T>(cache: CacheLayout, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  await mkdir(cache.locksDir, { recursive: true });
  const lock = await waitLock(join(cache.locksDir, 'gc.lock'), { staleMs: GC_LOCK_STALE_MS, signal, what: 'the cache GC lock (a prune is running)' });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Takes a lease on `digests` (under the GC lock, so a running prune finishes first). */
export async function openLease(cache: CacheLayout, digests: Iterable<string>, signal?: AbortSignal): Promise<CacheLease> {
  const path = join(cache.leasesDir, `${process.pid}-${randomBytes(6).toString('hex')}.json`);
  const record: LeaseFile = { ...currentOwner(), created: Date.now(), digests: [] };
  const write = async (more: Iterable<string>): Promise<void> => {
    await withGcLock(
      cache,
      async () => {
        record.digests = [...new Set([...record.digests, ...more])];
        await mkdir(cache.leasesDir, { recursive: true });
        const tmp = `${path}.tmp`;
        await writeFileDurable(tmp, JSON.stringify(record));
        await rename(tmp, path);
      },
      signal,
    );
  };
  await write(digests);
  let released = false;
  return {
    add: (more) => write(more),
    release: async () => {
      if (released) return;
      released = true;
      await rm(path, { force: true });
    },
  };
}

/** The leases of running writers: what they keep and who they are. */
export interface LeaseScan {
  digests: Set<string>;
  /** Pids of live lease holders. */
  owners: number[];
}

/** Reads every lease, removing those whose owner is gone. Call it holding the GC lock. */
export async function scanLeases(cache: CacheLayout): Promise<LeaseScan> {
  const scan: LeaseScan = { digests: new Set(), owners: [] };
  let names: string[];
  try {
    names = await readdir(cache.leasesDir);
  } catch {
    return scan;
  }
  for (const name of names) {
    const path = join(cache.leasesDir, name);
    if (!name.endsWith('.json')) {
      // a lease's temp file, left by a writer killed while writing it (only written under the GC lock we hold)
      if (name.endsWith('.json.tmp')) await rm(path, { force: true });
      continue;
    }
    const lease = await readLease(path);
    if (lease === undefined) continue; // vanished: its owner released it
    if (!isOwnerAlive(lease)) {
      await rm(path, { force: true });
      continue;
    }
    for (const d of lease.digests) scan.digests.add(d);
    if (!scan.owners.includes(lease.pid)) scan.owners.push(lease.pid);
  }
  return scan;
}

async function readLease(path: string): Promise<LeaseFile | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as LeaseFile;
    return Array.isArray(parsed?.digests) ? parsed : { pid: Number.NaN, host: '', created: 0, digests: [] };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { pid: Number.NaN, host: '', created: 0, digests: [] }; // unreadable: no live owner can be shown
  }
}
