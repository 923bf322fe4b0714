/**
 * The one pipeline every source goes through: layers → flattened `.idx`/`.contents` (keyed by diff_id,
 * so shared layers convert once), then the runtime config, then the image directory, `config.json` last.
 */
import { mkdir, rm } from 'node:fs/promises';
import { pipeline, Transform, type Readable } from 'node:stream';
import { ErrorCode, VmimgError, isVmimgError, wrapError } from '../errors.js';
import { flattenLayer, hasLayer, type LayerInfo } from '../layer/flatten.js';
import { verifyLayer } from '../layer/verify.js';
import { dropStamp, stampMatches, writeStamp } from '../layer/verified-stamp.js';
import { resolveLimits, type LayerLimits } from '../layer/limits.js';
import { ContainerFS } from '../vfs/index.js';
import { CacheLayout } from './cache.js';
import { writeImageDir, type Image } from './image-dir.js';
import { ProgressTracker, type ProgressListener } from './progress.js';
import { arrivalOf, platformKey, recordImage, takeoverMessage } from './refs.js';
import { configPlatform } from '../manifest/index.js';
import { buildRuntimeConfig, type LayerRecord } from './runtime-config.js';
import type { ImageSource, SourceLayer } from './source.js';
import { isReopen, storeCheck } from './tee-download.js';
import { AbortFanOut } from '../util/abort-fan-out.js';
import { regionOf } from '../util/file-region.js';
import { sharedHashPool } from '../util/hash-pool.js';
import { sharedInflatePool } from '../layer/inflate-pool.js';
import { createLimiter, settleAll, type Limiter } from '../util/limiter.js';
import { openLease, type CacheLease } from './lease.js';
import { MIN_INDEXED_BLOB } from '../lazy/build.js';
import { CheckpointTee } from '../lazy/tee.js';
import type { LazyPlacer } from '../lazy/lazy-pull.js';
import { lazyFields } from '../lazy/place.js';
import type { ContentReader } from '../vfs/content.js';
import { BlobStore } from '../store/index.js';

export interface PrepareOptions {
  cache: CacheLayout;
  /**
   * Layers opened and flattened at once (default 4). Remote layers download while they convert, so
   * this bounds downloads too; a little over the core count keeps both the network and CPUs busy.
   */
  concurrency?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Name to record for the image in refs.json (e.g. the canonical reference). */
  name?: string;
  /** What one layer may cost (src/layer/limits.ts); a refusal is ERR_TOO_LARGE. */
  limits?: Partial<LayerLimits>;
  /**
   * Also build each 10+ MiB gzip layer's checkpoint index (`.zran`, for lazy reads) in a worker thread
   * while it is flattened (default false). Failing to build one is a warning, never a failed pull.
   */
  checkpoints?: boolean;
  /** `pull --lazy`: places layers from a published lazy index instead of flattening them (src/lazy/lazy-pull.ts). */
  lazy?: LazyPlacer;
}

export async function prepareImage(source: ImageSource, options: PrepareOptions): Promise<Image> {
  const { cache, signal } = options;
  const limits = resolveLimits(options.limits);
  const progress = new ProgressTracker(source.layers, options.onProgress);
  for (const message of source.warnings ?? []) options.onProgress?.({ type: 'warning', message });
  await mkdir(cache.layersDir, { recursive: true });
  const limit = createLimiter(options.concurrency ?? 4);
  // The first failing layer stops its siblings: no point downloading the rest of a doomed image.
  const siblings = new AbortController();
  const layerSignal = signal ? AbortSignal.any([signal, siblings.signal]) : siblings.signal;
  // each layer's requests, download and flattening listen to a child signal, not all to this one
  const fanOut = new AbortFanOut(layerSignal);
  let lease: CacheLease | undefined;
  try {
    // Before anything is looked up in the cache: what this run needs is safe from a concurrent prune.
    lease = await openLease(cache, leaseDigests(source), signal);
    // kept while the layers start (no layer needs them): a lazy pull is ~200 ms, their fsyncs ~5-7 ms of it
    const kept = keepDocuments(cache, source).catch((err: unknown) => {
      siblings.abort(err);
      throw err;
    });
    // A diff_id listed more than once (repeated empty layers, a layer re-applied after a whiteout) is
    // flattened once; every position still applies it (config.json keeps the full list).
    const once = new Map<string, Promise<LayerInfo>>();
    const shared: Shared = { cache, progress, limits, lookups: createLimiter(16), warn: (message) => options.onProgress?.({ type: 'warning', message }), checkpoints: options.checkpoints ?? false, ...(options.lazy ? { lazy: options.lazy } : {}) };
    // The biggest layers take the first slots: the longest conversion should not queue behind small ones.
    const bySize = source.layers.map((_, i) => i).sort((a, b) => (source.layers[b]!.size ?? 0) - (source.layers[a]!.size ?? 0));
    const started: Promise<LayerInfo>[] = [];
    for (const i of bySize) {
      const layer = source.layers[i]!;
      const first = once.get(layer.diffId);
      if (first) {
        started[i] = first.then((info) => (progress.layer(i, 'cached'), info));
        continue;
      }
      const flattening = fanOut.run((layerSignal) => flattenOne(layer, i, shared, limit, layerSignal)).catch((err: unknown) => {
        siblings.abort(err);
        throw err;
      });
      once.set(layer.diffId, flattening);
      started[i] = flattening;
    }
    let infos: LayerInfo[];
    try {
      [infos] = await Promise.all([Promise.all(started), kept]);
    } catch (err) {
      // the first failure aborted the siblings: wait until they have removed their temp files
      await Promise.allSettled([...started, kept]);
      throw err;
    }
    sharedHashPool().trim(); // hashing is done: the open below need not sit beside the pool's rings and workers
    signal?.throwIfAborted();
    progress.image('writing');
    const layers = infos.map((info) => ({ diffId: info.diffId, indexPath: info.indexPath, contentsPath: info.contentsPath, ...lazyFields(info) }));
    const fs = await ContainerFS.open(layers.map((l) => ({ ...l, ...contentOf(options.lazy, l.diffId) })));
    let config;
    try {
      for (const message of fs.warnings) options.onProgress?.({ type: 'warning', message });
      const checked = new Set<number>();
      config = await buildRuntimeConfig(
        source.config,
        infos.map((info, i) => layerRecord(info, source.layers[i]!)),
        { ...source.info, createdAt: new Date().toISOString() },
        (path, offset, length) => readIfPresent(fs, path, offset, length, checked, limits.maxUserFileBytes),
        limits.maxUserFileBytes,
      ).catch(async (err: unknown) => {
        if (isVmimgError(err, ErrorCode.DIGEST_MISMATCH)) await markDamaged(infos);
        throw err;
      });
    } finally {
      await fs.close();
    }
    const image = await writeImageDir(config, layers, cache.imageDir(source.info.configDigest), { force: true });
    const name = options.name ?? source.info.reference ?? source.info.configDigest;
    const arrival = arrivalOf(config);
    const replaced = await recordImage(cache, name, source.info.configDigest, platformKey(configPlatform(config)), arrival);
    if (replaced) options.onProgress?.({ type: 'warning', message: takeoverMessage(name, replaced, arrival, source.info.configDigest) });
    progress.image('done');
    return { ...image, name };
  } catch (err) {
    if (signal?.aborted) throw new VmimgError(ErrorCode.ABORTED, 'interrupted; rerun to continue', { cause: err });
    throw err;
  } finally {
    await lease?.release();
    await source.close?.();
  }
}

/**
 * A file read for the config did not match its index: check the layers in full, which touches a damaged
 * layer's `.contents` so the next pull or load converts it again (src/layer/verify.ts). Rare; bounded by
 * the layers' size.
 */
async function markDamaged(infos: LayerInfo[]): Promise<void> {
  for (const info of infos) await verifyLayer(info).catch(() => undefined);
}

/** Everything the run reads or writes in the cache: layer blobs, flattened layers, the image dir, kept documents. */
function leaseDigests(source: ImageSource): string[] {
  const documents = (source.documents ?? []).map((d) => d.descriptor.digest);
  return [source.info.configDigest, ...documents, ...source.layers.flatMap((l) => (l.digest ? [l.digest, l.diffId] : [l.diffId]))];
}

/** The manifests, indexes and config the source resolved, into the store (verified again; present = done). */
async function keepDocuments(cache: CacheLayout, source: ImageSource): Promise<void> {
  const store = new BlobStore(cache.root);
  // at once: each is a write, an fsync and a rename (a few ms), and a lazy pull's whole run is ~200 ms
  await settleAll((source.documents ?? []).map(({ descriptor, bytes }) => store.putBytes(bytes, descriptor)));
}

/**
 * A cached layer's files still hold what its blob did: trusted while they are the files its stamp
 * recorded when last known good, else every file's bytes checked against the index sha256 and the stamp
 * renewed (docs/DECISIONS.md "A cached layer is checked in full once, then by its stamp"). A damaged
 * one is removed, with a warning, and converted again from its blob; false then.
 */
async function cachedIntact(info: LayerInfo, index: number, shared: Shared, limit: Limiter, signal: AbortSignal | undefined): Promise<boolean> {
  if (await stampMatches(info)) return true;
  try {
    await limit(() => verifyLayer(info, signal ? { signal } : {}));
    await writeStamp(info);
    return true;
  } catch (err) {
    if (!isVmimgError(err, ErrorCode.DIGEST_MISMATCH) && !isVmimgError(err, ErrorCode.INVALID_INDEX)) throw err;
    shared.warn(`layer ${index + 1}/${shared.progress.count}: the cached copy is damaged (${(err as Error).message}); converting it again`);
    await dropStamp(info);
    await rm(info.indexPath, { force: true }); // the index first: a layer without it is never taken as cached
    await rm(info.contentsPath, { force: true });
    return false;
  }
}

/** What every layer's flattening shares. */
interface Shared {
  cache: CacheLayout;
  progress: ProgressTracker;
  limits: LayerLimits;
  /** Bounds the cache lookups (each opens an index): 10 000 layers must not mean 10 000 open files. */
  lookups: Limiter;
  warn: (message: string) => void;
  checkpoints: boolean;
  lazy?: LazyPlacer;
}

async function flattenOne(layer: SourceLayer, index: number, shared: Shared, limit: Limiter, signal: AbortSignal | undefined): Promise<LayerInfo> {
  const { cache, progress } = shared;
  const placed = await shared.lazy?.place(layer, index);
  if (placed) return (progress.layer(index, 'done'), placed);
  const cached = await shared.lookups(() => hasLayer(cache.layersDir, layer.diffId));
  if (cached && (await cachedIntact(cached, index, shared, limit, signal))) {
    progress.layer(index, 'cached');
    return cached;
  }
  const name = `layer ${index + 1}/${progress.count} (${layer.digest ?? layer.diffId})`;
  try {
    return await limit(async () => {
      try {
        return await flattenFrom(layer, index, shared, name, signal);
      } catch (err) {
        // A limit refusal is final: waiting for the download's verdict would only finish a doomed
        // download (the siblings' abort stops it). Either verdict exits 6, so the outcome is the same.
        if (isVmimgError(err, ErrorCode.TOO_LARGE)) throw err;
        // Bytes still being verified: the store's verdict comes first (its error wins), and bytes it had
        // to replace are read again from the store; so one input gives one outcome, whatever the timing.
        const faithful = await layer.verdict?.();
        if (isReopen(err) || faithful === false) return await flattenFrom(layer, index, shared, name, signal); // now from the store
        // A stored blob that no longer matches its digest (disk corruption): drop it and fetch it again, once.
        if (isVmimgError(err, ErrorCode.DIGEST_MISMATCH) && layer.invalidate && (await layer.invalidate())) {
          return await flattenFrom(layer, index, shared, name, signal);
        }
        throw err;
      }
    });
  } catch (err) {
    throw err instanceof Error && err.message.includes(name) ? err : wrapError(err, name);
  }
}

async function flattenFrom(layer: SourceLayer, index: number, shared: Shared, name: string, signal: AbortSignal | undefined): Promise<LayerInfo> {
  const { cache, progress } = shared;
  // the worker that will gunzip it starts while the download's request goes out (media types may lie: only a head start)
  if (layer.mediaType?.includes('gzip')) sharedInflatePool().warm();
  // A downloading layer converts as its bytes arrive: report the download, then the conversion's tail.
  let downloading = false;
  const stream = await layer.open({
    signal,
    onProgress: (done) => {
      downloading = done !== layer.size;
      progress.layer(index, downloading ? 'downloading' : 'extracting', done);
    },
    onNotice: (n) => progress.notice(index, n),
  });
  const extracting = (n: number): void => void (downloading || progress.layer(index, 'extracting', n));
  const tee = shared.checkpoints && layer.digest && (layer.size ?? 0) >= MIN_INDEXED_BLOB ? new CheckpointTee({ cacheRoot: cache.root, name, warn: shared.warn }) : undefined;
  // A stretch of a file (a docker save member, a layout's blob) goes to the flattener as it is: a plain
  // tar is read from its file straight into the hash ring, counted by the flattener (`onRead`). Its
  // error (the file gone) reaches the flattener's read; until then a listener keeps it from throwing.
  const asFile = tee === undefined && regionOf(stream) !== undefined;
  let source: Readable = stream;
  if (asFile) stream.on('error', () => undefined);
  else {
    // pipeline, not pipe: both streams get an error listener at once (a download can fail before the
    // flattener starts reading), and a flattener that stops early (layer already there) releases the download.
    const counted = countBytes(extracting);
    if (tee?.transform) pipeline(stream, counted, tee.transform, () => undefined);
    else pipeline(stream, counted, () => undefined);
    source = tee?.transform ?? counted;
  }
  const blobVerified = storeCheck(stream); // a download: the store hashes the blob, the flattener need not
  let info: LayerInfo;
  try {
    info = await flattenLayer(source, {
      ...(asFile ? { onRead: extracting } : {}),
      dir: cache.layersDir,
      expectedDiffId: layer.diffId,
      ...(layer.digest ? { expectedDigest: layer.digest } : {}),
      ...(layer.size !== undefined ? { compressedSize: layer.size } : {}),
      ...(blobVerified ? { blobVerified } : {}),
      ...tee?.flattenOptions(),
      limits: shared.limits,
      name,
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    await tee?.abort();
    throw err;
  }
  await tee?.finish(info);
  progress.layer(index, 'done');
  return info;
}

function layerRecord(info: LayerInfo, layer: SourceLayer): LayerRecord {
  return {
    diffId: info.diffId,
    ...(layer.digest ? { digest: layer.digest } : {}),
    compressedSize: info.compressedSize,
    size: info.contentsSize,
    entries: info.entryCount,
    ...(lazyFields(info).spansPath !== undefined ? { lazy: true, checkpoints: lazyFields(info).zranPath !== undefined } : {}),
  };
}

function contentOf(lazy: LazyPlacer | undefined, diffId: string): { content?: ContentReader } {
  const content = lazy?.content(diffId);
  return content ? { content } : {};
}

/**
 * Reads a file the runtime config needs (/etc/passwd, /etc/group). A layer trusted by its stamp is
 * not re-hashed, so the file is checked against its index sha256 on first read (when it is within
 * `maxBytes`, the most the config reads of it): damaged bytes never become a uid.
 */
async function readIfPresent(fs: ContainerFS, path: string, offset: number, length: number, checked: Set<number>, maxBytes: number): Promise<Buffer | undefined> {
  try {
    const ino = fs.resolvePath(path, 'open');
    if (!checked.has(ino) && fs.getattr(ino).size <= maxBytes) await fs.verify(ino, path);
    checked.add(ino);
    return await fs.read(ino, offset, length);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'EISDIR') return undefined;
    throw err;
  }
}

function countBytes(onCount: (n: number) => void): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onCount(n);
      cb(null, chunk);
    },
  });
}
