/**
 * Garbage collection and the cache's writers coordinate the way containerd's content store does:
 * every pull or load holds a *lease* naming the digests it needs (layer blobs, diff_ids, the config),
 * and `prune` deletes nothing a live lease names. Leases change and prune marks-and-sweeps under one
 * cache-wide GC lock, so a writer either registers a digest before prune looks (and it is kept) or
 * after prune is done (and then finds it gone and writes it again) — never in between.
 *
 * A lease is a file `leases/<pid>-<id>.jsonl` of JSON lines: its owner first (pid, start time, host,
 * created), then one array of digests per `add`, appended (a long-lived holder such as serve adds
 * thousands of digests: rewriting the whole record per add grew with it). Older versions wrote one
 * `<pid>-<id>.json` record; those are still read. A lease whose owner died is dead: prune removes it,
 * and what only it kept becomes reclaimable.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { currentOwner, isOwnerAlive, type Owner } from '../store/owner.js';
import { waitLock } from '../store/lock.js';
import { writevAll } from '../util/fs.js';
import type { CacheLayout } from './cache.js';

/** A GC lock untouched this long belongs to a process that hung or died (holders touch it every 1/4). */
const GC_LOCK_STALE_MS = 30_000;

interface LeaseFile extends Owner {
  created: number;
  digests: string[];
}

/** What a running writer keeps from `prune`. Release it when the image is in place (or the run failed). */
export interface CacheLease {
  /** The lease's file (`leases/<pid>-<id>.jsonl`). */
  readonly path: string;
  /** Adds digests (blobs by digest, layers by diff_id, image dirs by config digest) to the lease. */
  add(digests: Iterable<string>): Promise<void>;
  /**
   * Takes digests out of the lease (serve's eviction, src/serve/budget.ts): the file is written anew
   * (a temp file renamed over it), with the owner line and one line of what is left. Call it holding
   * the GC lock (withGcLock), as every change of a lease is made.
   */
  forget(digests: Iterable<string>): Promise<void>;
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

/**
 * Takes a lease on `digests` (under the GC lock, so a running prune finishes first). Each `add` appends
 * the digests it has not added before as one line, under the GC lock, and datasyncs it (a cache on a
 * shared disk: another host's prune reads it); a failed append is cut off before the next one.
 */
export async function openLease(cache: CacheLayout, digests: Iterable<string>, signal?: AbortSignal): Promise<CacheLease> {
  const path = join(cache.leasesDir, `${process.pid}-${randomBytes(6).toString('hex')}.jsonl`);
  const held = new Set<string>();
  let fh: FileHandle | undefined;
  /** Bytes of whole lines in the file; past it, what a failed append may have left. */
  let size = 0;
  let torn = false;
  /** The owner line, as first written (kept by `forget`'s rewrite). */
  let ownerLine = '';
  const append = async (more: Iterable<string>): Promise<void> => {
    const fresh = [...new Set(more)].filter((d) => !held.has(d));
    if (fresh.length === 0 && fh !== undefined) return;
    await withGcLock(
      cache,
      async () => {
        let text = fresh.length > 0 ? `${JSON.stringify(fresh)}\n` : '';
        if (fh === undefined) {
          await mkdir(cache.leasesDir, { recursive: true });
          fh = await open(path, 'wx');
          ownerLine = `${JSON.stringify({ ...currentOwner(), created: Date.now() })}\n`;
          text = `${ownerLine}${text}`;
        }
        if (torn) await fh.truncate(size);
        torn = true;
        const bytes = Buffer.from(text);
        await writevAll(fh, [bytes], bytes.length, size);
        await fh.datasync();
        size += bytes.length;
        torn = false;
        for (const d of fresh) held.add(d);
      },
      signal,
    );
  };
  try {
    await append(digests);
  } catch (err) {
    await fh?.close();
    await rm(path, { force: true });
    throw err;
  }
  const forget = async (gone: Iterable<string>): Promise<void> => {
    // out of `held` at once: an `add` of one of them from now on writes it again (after this rewrite,
    // as both take the GC lock); if the rewrite fails they are back, as the file still names them
    const dropped = [...gone].filter((d) => held.delete(d));
    if (dropped.length === 0 || fh === undefined) return;
    const tmp = `${path}.tmp`;
    let next: FileHandle | undefined;
    try {
      const bytes = Buffer.from(`${ownerLine}${held.size > 0 ? `${JSON.stringify([...held])}\n` : ''}`);
      const out = await open(tmp, 'w');
      try {
        await writevAll(out, [bytes], bytes.length, 0);
        await out.datasync();
      } finally {
        await out.close();
      }
      // the old file stays whole until the rename: a prune reads the one or the other
      next = await open(tmp, 'r+');
      await rename(tmp, path);
      await fh.close();
      fh = next;
      size = bytes.length;
      torn = false;
    } catch (err) {
      await next?.close();
      await rm(tmp, { force: true });
      for (const d of dropped) held.add(d);
      throw err;
    }
  };
  let released = false;
  return {
    path,
    add: (more) => append(more),
    forget,
    release: async () => {
      if (released) return;
      released = true;
      await fh?.close();
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

/** Reads every lease but the one at `except` (its holder's own), removing those whose owner is gone. Call it holding the GC lock. */
export async function scanLeases(cache: CacheLayout, except?: string): Promise<LeaseScan> {
  const scan: LeaseScan = { digests: new Set(), owners: [] };
  let names: string[];
  try {
    names = await readdir(cache.leasesDir);
  } catch {
    return scan;
  }
  for (const name of names) {
    const path = join(cache.leasesDir, name);
    if (!name.endsWith('.jsonl') && !name.endsWith('.json')) {
      // a lease's temp file, left by a writer killed while writing it (only written under the GC lock we hold)
      if (name.endsWith('.json.tmp') || name.endsWith('.jsonl.tmp')) await rm(path, { force: true });
      continue;
    }
    if (path === except) continue;
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

/** A lease file: JSON lines (owner, then digest arrays), or an older version's single JSON record. */
async function readLease(path: string): Promise<LeaseFile | undefined> {
  const unreadable = { pid: Number.NaN, host: '', created: 0, digests: [] }; // no live owner can be shown
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : unreadable;
  }
  try {
    if (path.endsWith('.json')) {
      const parsed = JSON.parse(text) as LeaseFile;
      return Array.isArray(parsed?.digests) ? parsed : unreadable;
    }
    const lines = text.split('\n');
    const owner = JSON.parse(lines[0]!) as Owner & { created: number };
    const digests: string[] = [];
    // whole lines only: the last element is '' or what an append cut short left (its add failed)
    for (const line of lines.slice(1, -1)) for (const d of digestsOf(line)) digests.push(d);
    return { ...owner, digests };
  } catch {
    return unreadable;
  }
}

/** The digests of one appended line (none when it is not an array of strings: never the whole lease lost). */
function digestsOf(line: string): string[] {
  try {
    const added = JSON.parse(line) as unknown;
    return Array.isArray(added) ? added.filter((d): d is string => typeof d === 'string') : [];
  } catch {
    return [];
  }
}
