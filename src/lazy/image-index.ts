/**
 * `vmimg index build`: the gzip checkpoint index of every layer blob of a cached image that is worth
 * one (gzip, at least 10 MiB, kept in the blob store).
 */
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../digest/index.js';
import type { CheckpointOptions } from './checkpoint-builder.js';
import { MIN_INDEXED_BLOB, buildCheckpointsFromFile, storeCheckpoints, zranPath } from './build.js';
import { decodeZran } from './zran-format.js';
import { readFile } from 'node:fs/promises';

/** What happened to one layer blob. */
export interface LayerIndexResult {
  digest: string;
  diffId: string;
  /** built / present (already there) / small (< 10 MiB: fetched whole) / not-gzip / no-blob (not in the store). */
  status: 'built' | 'present' | 'small' | 'not-gzip' | 'no-blob';
  compressedSize: number;
  checkpoints?: number;
  /** Bytes of the `.zran`. */
  indexSize?: number;
  path?: string;
}

/** Options of {@link buildImageIndex}. */
export interface BuildImageIndexOptions {
  /** The cache root (`<cache>`): blobs are read from `blobs/sha256/`, indexes written to `checkpoints/sha256/`. */
  cacheRoot: string;
  /** Rebuild indexes that exist already. */
  force?: boolean;
  checkpoints?: Partial<CheckpointOptions>;
  onLayer?: (result: LayerIndexResult, index: number) => void;
}

/** Builds (or finds) the `.zran` of each distinct layer blob in `layers`, one at a time. */
export async function buildImageIndex(layers: { digest?: string; diffId: string; compressedSize?: number }[], options: BuildImageIndexOptions): Promise<LayerIndexResult[]> {
  const seen = new Set<string>();
  const results: LayerIndexResult[] = [];
  for (const layer of layers) {
    if (layer.digest === undefined || seen.has(layer.digest)) continue;
    seen.add(layer.digest);
    const r = await indexOne({ digest: layer.digest, diffId: layer.diffId }, options, layer.compressedSize);
    results.push(r);
    options.onLayer?.(r, results.length - 1);
  }
  return results;
}

async function indexOne(ids: { digest: string; diffId: string }, options: BuildImageIndexOptions, known: number | undefined): Promise<LayerIndexResult> {
  const blob = join(options.cacheRoot, 'blobs', 'sha256', digestHex(ids.digest));
  const size = await stat(blob).then((s) => s.size, () => undefined);
  const base = { ...ids, compressedSize: size ?? known ?? 0 }; // a missing blob: the manifest's size
  if (size === undefined) return { ...base, status: 'no-blob' };
  if (!(await isGzip(blob))) return { ...base, status: 'not-gzip' };
  if (size < MIN_INDEXED_BLOB) return { ...base, status: 'small' };
  const path = zranPath(options.cacheRoot, ids.digest);
  if (!options.force) {
    const have = await readFile(path).then((b) => decodeZran(b), () => undefined);
    if (have !== undefined && have.digest === ids.digest) return { ...base, status: 'present', checkpoints: have.checkpoints.length, indexSize: (await stat(path)).size, path };
  }
  const zran = await buildCheckpointsFromFile(blob, ids, options.checkpoints);
  await storeCheckpoints(options.cacheRoot, ids.digest, zran);
  return { ...base, status: 'built', checkpoints: decodeZran(zran).checkpoints.length, indexSize: zran.length, path };
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    await fh.read(head, 0, 2, 0);
    return head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await fh.close();
  }
}
