/**
 * `prune`: deletes what no cached image needs, and says what it kept and why. It runs holding the
 * cache's GC lock and keeps everything a live lease names (a pull or load in progress, see lease.ts).
 * Leftovers of interrupted runs (temp files, half-written image dirs) are deleted once the process that
 * wrote them is gone — their names carry its pid. Partial downloads of a dead pull are what a rerun
 * resumes from: kept unless `partials: true`. Files vanishing underneath (another prune, a writer
 * renaming its temp file) are skipped, never an error.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readLock, tryLock } from '../store/lock.js';
import { isOwnerAlive, isPidAlive } from '../store/owner.js';
import type { CacheLayout } from './cache.js';
import { scanLeases, withGcLock } from './lease.js';
import { arrivalDigests, entryTargets, readRefs } from './refs.js';

export interface PruneOptions {
  /** Also delete partial downloads of interrupted pulls (which a rerun would resume). */
  partials?: boolean;
  signal?: AbortSignal;
}

/** Files and bytes. */
export interface SpaceCount {
  files: number;
  bytes: number;
}

export interface PruneResult {
  /** Flattened layers deleted (an `.idx` + `.contents` pair counts once). */
  removedLayers: number;
  removedBlobs: number;
  /** Temp files, half-written image dirs and (with `partials`) partial downloads of runs that are over. */
  removedLeftovers: number;
  bytesFreed: number;
  kept: {
    /** Layer files no cached image uses but that are hard-linked from outside the cache (exports). */
    linked: SpaceCount;
    /** Files a running pull or load needs; `owners` are their pids. */
    inUse: SpaceCount & { owners: number[] };
    /** Partial downloads of interrupted pulls, kept so a rerun resumes them. */
    partials: SpaceCount;
  };
}

/** An upload session older than this is forgotten by the registry (distribution purges after 168 h). */
const UPLOAD_SESSION_MS = 7 * 24 * 3600 * 1000;

/** A partial's lock untouched this long is stale (fetch.ts's default). */
const PARTIAL_LOCK_STALE_MS = 60_000;

export async function prune(cache: CacheLayout, options: PruneOptions = {}): Promise<PruneResult> {
  const result: PruneResult = {
    removedLayers: 0,
    removedBlobs: 0,
    removedLeftovers: 0,
    bytesFreed: 0,
    kept: { linked: { files: 0, bytes: 0 }, inUse: { files: 0, bytes: 0, owners: [] }, partials: { files: 0, bytes: 0 } },
  };
  return withGcLock(
    cache,
    async () => {
      const leases = await scanLeases(cache);
      result.kept.inUse.owners = leases.owners;
      const sweep = new Sweep(result, leases.owners.length > 0);
      // Half-written image dirs first: their hard links would keep layers alive.
      await sweep.leftovers(cache.imagesDir, (name) => /\.tmp-|\.old-/.test(name));
      await sweep.leftovers(cache.root, (name) => name.startsWith('refs.json.tmp-'));
      await sweep.leftovers(cache.tmpDir, () => true);
      const wanted = await referencedDigests(cache);
      await sweep.layers(cache.layersDir, wanted, leases.digests);
      await sweep.blobs(cache.blobsDir, wanted, leases.digests);
      await sweep.checkpoints(cache.checkpointsDir, wanted, leases.digests);
      await sweep.partials(cache.partialDir, leases.digests, options.partials === true);
      await sweep.uploads(cache.uploadsDir, options.partials === true);
      await sweep.stats(join(cache.root, 'stats'), new Set(await names(cache.imagesDir)));
      return result;
    },
    options.signal,
  );
}

class Sweep {
  constructor(
    private readonly result: PruneResult,
    /** Some writer holds a live lease: a leftover whose owner is unknown may be its. */
    private readonly anyWriter: boolean,
  ) {}

  /** Deletes leftovers (matching `select`) whose writer is gone; counts the others as in use. */
  async leftovers(dir: string, select: (name: string) => boolean): Promise<void> {
    for (const name of await names(dir)) {
      if (!select(name)) continue;
      const path = join(dir, name);
      const st = await lstatOrUndefined(path);
      if (st === undefined) continue;
      const size = st.isDirectory() ? await treeSize(path) : st.size;
      const pid = writerPid(name);
      if (pid === undefined ? this.anyWriter : isPidAlive(pid)) this.count(this.result.kept.inUse, size);
      else await this.remove(path, size, 'leftover');
    }
  }

  async layers(dir: string, wanted: Set<string>, leased: Set<string>): Promise<void> {
    await this.leftovers(dir, (name) => name.startsWith('.tmp-'));
    for (const name of await names(dir)) {
      const m = /^([0-9a-f]{64})\.(idx|contents)$/.exec(name);
      if (!m) continue;
      const digest = `sha256:${m[1]}`;
      if (wanted.has(digest)) continue;
      const st = await lstatOrUndefined(join(dir, name));
      if (st === undefined) continue;
      if (leased.has(digest)) this.count(this.result.kept.inUse, st.size);
      else if (st.nlink > 1) this.count(this.result.kept.linked, st.size);
      else await this.remove(join(dir, name), st.size, m[2] === 'idx' ? 'layer' : 'none');
    }
    // A removed layer's stamp (src/layer/verified-stamp.ts) and a lazy one's `.spans` go with it; a few bytes, not counted.
    const left = new Set(await names(dir));
    for (const name of left) {
      const m = /^([0-9a-f]{64})\.(verified|spans)$/.exec(name);
      if (m && !left.has(`${m[1]}.idx`)) await rm(join(dir, name), { force: true });
    }
  }

  /** A removed image's lazy-read counters (src/lazy/stats.ts: `stats/<configHex>.json`); a few bytes, not counted. */
  async stats(dir: string, images: Set<string>): Promise<void> {
    for (const name of await names(dir)) {
      const m = /^([0-9a-f]{64})\.json$/.exec(name);
      if (m && !images.has(m[1]!)) await rm(join(dir, name), { force: true });
    }
  }

  async blobs(dir: string, wanted: Set<string>, leased: Set<string>): Promise<void> {
    for (const name of await names(dir)) {
      const digest = `sha256:${name}`;
      if (!/^[0-9a-f]{64}$/.test(name) || wanted.has(digest)) continue;
      const st = await lstatOrUndefined(join(dir, name));
      if (st === undefined) continue;
      if (leased.has(digest)) this.count(this.result.kept.inUse, st.size);
      else await this.remove(join(dir, name), st.size, 'blob');
    }
  }

  /** Gzip checkpoint indexes (`<hex>.zran`, src/lazy/build.ts) go with the compressed blob they index. */
  async checkpoints(dir: string, wanted: Set<string>, leased: Set<string>): Promise<void> {
    await this.leftovers(dir, (name) => name.startsWith('.tmp-'));
    for (const name of await names(dir)) {
      const m = /^([0-9a-f]{64})\.(?:zran|gzpart)$/.exec(name); // .gzpart: a lazy layer's kept compressed bytes (src/lazy/blob-copy.ts)
      if (!m || wanted.has(`sha256:${m[1]}`)) continue;
      const st = await lstatOrUndefined(join(dir, name));
      if (st === undefined) continue;
      if (leased.has(`sha256:${m[1]}`)) this.count(this.result.kept.inUse, st.size);
      else await this.remove(join(dir, name), st.size, 'none');
    }
  }

  /** Partial downloads: in use while their lock's holder lives; else resumable, deleted only when asked. */
  async partials(dir: string, leased: Set<string>, drop: boolean): Promise<void> {
    for (const name of await names(dir)) {
      const path = join(dir, name);
      if (name.endsWith('.lock.break')) {
        // a lock's break guard (store/lock.ts) left by a process that exited holding it: held for milliseconds
        const st = await lstatOrUndefined(path);
        if (st !== undefined && Date.now() - st.mtimeMs > PARTIAL_LOCK_STALE_MS) await rm(path, { force: true });
        continue;
      }
      if (name.endsWith('.lock')) {
        // A dead holder's lock whose partial is gone: tryLock breaks it; a free one we take and release.
        if ((await lstatOrUndefined(path.slice(0, -5))) === undefined) await (await tryLock(path, PARTIAL_LOCK_STALE_MS))?.release();
        continue;
      }
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const st = await lstatOrUndefined(path);
      if (st === undefined) continue;
      const holder = await readLock(`${path}.lock`);
      if ((holder !== undefined && isOwnerAlive(holder)) || leased.has(`sha256:${name}`)) this.count(this.result.kept.inUse, st.size);
      else if (!drop || !(await this.removePartial(path, st.size))) this.count(this.result.kept.partials, st.size);
    }
  }

  /**
   * Push's upload sessions (src/push/upload-journal.ts, a few bytes each): a registry forgets an
   * unfinished one after a while (distribution: a week), so older entries go, and with `drop` all of
   * them (a running push only loses the chance to resume after a later kill).
   */
  async uploads(dir: string, drop: boolean): Promise<void> {
    for (const key of await names(dir)) {
      const sub = join(dir, key);
      await this.leftovers(sub, (name) => name.includes('.tmp-'));
      for (const name of await names(sub)) {
        const st = name.endsWith('.json') ? await lstatOrUndefined(join(sub, name)) : undefined;
        if (st !== undefined && (drop || Date.now() - st.mtimeMs > UPLOAD_SESSION_MS)) await this.remove(join(sub, name), st.size, 'leftover');
      }
    }
  }

  /** Deletes a partial holding its lock, so no writer can start on it meanwhile; false when one holds it. */
  private async removePartial(path: string, size: number): Promise<boolean> {
    const lockPath = `${path}.lock`;
    const lock = (await tryLock(lockPath, PARTIAL_LOCK_STALE_MS)) ?? (await tryLock(lockPath, PARTIAL_LOCK_STALE_MS));
    if (lock === null) return false;
    try {
      await this.remove(path, size, 'leftover');
    } finally {
      await lock.release();
    }
    return true;
  }

  private count(space: SpaceCount, bytes: number): void {
    space.files++;
    space.bytes += bytes;
  }

  private async remove(path: string, bytes: number, kind: 'layer' | 'blob' | 'leftover' | 'none'): Promise<void> {
    await rm(path, { recursive: true, force: true });
    this.result.bytesFreed += bytes;
    if (kind === 'layer') this.result.removedLayers++;
    else if (kind === 'blob') this.result.removedBlobs++;
    else if (kind === 'leftover') this.result.removedLeftovers++;
  }
}

/** The pid a temp name carries: `….tmp-<pid>-<hex>`, `….old-<pid>-<hex>`, or the store's `<hex>.<pid>.<hex>`. */
function writerPid(name: string): number | undefined {
  const m = /\.(?:tmp|old)-(\d+)-[0-9a-f]+/.exec(name) ?? /^[0-9a-f]{64}\.(\d+)\.[0-9a-f]+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Diff_ids and blob digests of every complete image dir (damaged ones protect their layers by link count),
 * and the manifests and blobs each name's own arrival references (refs.json: a pulled name keeps its
 * gzip blobs after a load of the same image from a tar).
 */
export async function referencedDigests(cache: CacheLayout): Promise<Set<string>> {
  const wanted = new Set<string>();
  for (const entry of Object.values((await readRefs(cache)).refs)) {
    for (const target of entryTargets(entry)) for (const d of arrivalDigests(target.arrival)) wanted.add(d);
  }
  for (const hex of await names(cache.imagesDir)) {
    if (!/^[0-9a-f]{64}$/.test(hex)) continue;
    let config: {
      layers?: unknown;
      layerDetails?: { diffId?: unknown; digest?: unknown }[];
      source?: { manifestDigest?: unknown; indexDigest?: unknown; indexDigests?: unknown[] };
    };
    try {
      config = JSON.parse(await readFile(join(cache.imagesDir, hex, 'config.json'), 'utf8'));
    } catch {
      continue;
    }
    for (const d of Array.isArray(config?.layers) ? config.layers : []) if (typeof d === 'string') wanted.add(d);
    // The image's own config blob and the manifest and indexes it was resolved through.
    wanted.add(`sha256:${hex}`);
    const source = config?.source;
    for (const d of [source?.manifestDigest, source?.indexDigest, ...(Array.isArray(source?.indexDigests) ? source.indexDigests : [])]) {
      if (typeof d === 'string') wanted.add(d);
    }
    for (const l of Array.isArray(config?.layerDetails) ? config.layerDetails : []) {
      if (typeof l?.diffId === 'string') wanted.add(l.diffId);
      if (typeof l?.digest === 'string') wanted.add(l.digest);
    }
  }
  return wanted;
}

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Bytes of regular files below `dir` (an abandoned image dir: usually hard links, so 0 is freed often). */
async function treeSize(dir: string): Promise<number> {
  let total = 0;
  for (const name of await names(dir)) {
    const st = await lstatOrUndefined(join(dir, name));
    if (st?.isFile() && st.nlink === 1) total += st.size;
  }
  return total;
}
