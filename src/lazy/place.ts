/**
 * Placing a lazy layer in the cache (docs/FORMAT.md "`.spans`"): a published `.idx` (version 2) and
 * `.zran`, checked against the layer they claim to describe, become `<diffHex>.idx`, an empty sparse
 * `<diffHex>.contents` of its full size and a `<diffHex>.spans` with no span present — `.spans` first,
 * `.idx` last, so a layer is never taken as complete (`hasLayer` ignores layers with a `.spans`).
 */
import { randomBytes } from 'node:crypto';
import { access, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import type { LayerInfo } from '../layer/flatten.js';
import { scanIndex, scanIndexFile, type IndexHeader } from '../layer/index-format.js';
import { layerPaths, spansPath } from '../layer/paths.js';
import { syncDir, writeFileDurable } from '../util/fs.js';
import { settleAll } from '../util/limiter.js';
import { storeCheckpoints, zranPath } from './build.js';
import { SpanMap } from './span-map.js';
import { decodeZran } from './zran-format.js';
import { fileTable } from './placed-files.js';

/** A lazily placed layer: its info plus its presence map and (for indexed blobs) its `.zran`. */
export interface LazyLayerInfo extends LayerInfo {
  spansPath: string;
  zranPath?: string;
}

/** True while `<dir>/<diffHex>.spans` exists: the layer's `.contents` is still filling. */
/**
 * The lazy fields of a layer's info, if `place` placed it (prepare passes them to the image directory).
 * Here, not in lazy-pull.ts: prepare imports it, and lazy-pull.ts brings the registry client (undici,
 * ~0.1 s of every local command's start).
 */
export function lazyFields(info: LayerInfo): { spansPath?: string; zranPath?: string } {
  const l = info as Partial<LazyLayerInfo>;
  return l.spansPath === undefined ? {} : { spansPath: l.spansPath, ...(l.zranPath !== undefined ? { zranPath: l.zranPath } : {}) };
}

export async function isLazyLayer(dir: string, diffId: string): Promise<boolean> {
  return access(spansPath(dir, diffId)).then(
    () => true,
    () => false,
  );
}

/** The layer, blob digest and size a published index must describe. */
export interface LazyLayerIds {
  digest: string;
  diffId: string;
  size: number;
}

/**
 * The lazily placed layer when `<dir>` holds one for `ids` (an earlier `pull --lazy`: its spans are kept),
 * else undefined; also undefined for a placed layer holding a sparse file, which is pulled whole instead.
 */
export async function findLazyLayer(dir: string, cacheRoot: string, ids: LazyLayerIds): Promise<LazyLayerInfo | undefined> {
  if (!(await isLazyLayer(dir, ids.diffId))) return undefined;
  const files = layerPaths(dir, ids.diffId);
  const scan = await scanIndexFile(files.indexPath).catch(() => undefined);
  if (scan === undefined || scan.header.diffId !== ids.diffId) return undefined;
  // placed by a vmimg before 63429f8, which read sparse layers lazily (wrong bytes): not reused, so the
  // pull flattens the layer whole over it (breaker, session 14)
  if (fileTable(scan).sparse) return undefined;
  const header = scan.header;
  const zran = zranPath(cacheRoot, ids.digest);
  const hasZran = await access(zran).then(() => true, () => false);
  return info(header, ids, files, spansPath(dir, ids.diffId), hasZran ? zran : undefined);
}

/**
 * Checks `idx` (and `zran`) against `ids` and places the layer lazily in `dir` (the layers directory).
 * Errors: ERR_INVALID_INDEX for an index that does not decode or describes another layer.
 */
export async function placeLazyLayer(dir: string, cacheRoot: string, ids: LazyLayerIds, idx: Buffer, zran: Buffer | undefined): Promise<LazyLayerInfo> {
  const header = checkIdx(idx, ids);
  let spanCount = 1;
  if (zran !== undefined) {
    const z = decodeZran(zran);
    if (z.digest !== ids.digest || z.diffId !== ids.diffId || z.compressedSize !== ids.size || z.tarSize !== header.tarSize) {
      throw new VmimgError(ErrorCode.INVALID_INDEX, `the published .zran of ${ids.digest} describes another layer (${z.digest}, ${z.compressedSize} bytes)`);
    }
    spanCount = z.checkpoints.length;
  }
  await mkdir(dir, { recursive: true });
  const files = layerPaths(dir, ids.diffId);
  const spans = spansPath(dir, ids.diffId);
  const tmp = join(dir, `.tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
  let zranFile: string | undefined;
  try {
    // All at once (a lazy pull places every layer at once, and each step is a few calls on the thread
    // pool): none makes the layer visible. The span map is there before the .idx is: from then on
    // the layer is lazy; the .idx, renamed into place last, makes it a layer.
    const stored = zran !== undefined ? storeCheckpoints(cacheRoot, ids.digest, zran) : Promise.resolve(undefined);
    await settleAll<unknown>([
      stored,
      SpanMap.create(spans, ids.digest, spanCount),
      sparseFile(`${tmp}.contents`, header.contentsSize),
      writeFileDurable(`${tmp}.idx`, idx),
    ]);
    await rename(`${tmp}.contents`, files.contentsPath);
    await rename(`${tmp}.idx`, files.indexPath); // last
    await syncDir(dir);
    zranFile = await stored;
  } catch (err) {
    await rm(`${tmp}.contents`, { force: true });
    await rm(`${tmp}.idx`, { force: true });
    throw err;
  }
  return info(header, ids, files, spans, zranFile);
}

/** An empty file of `size` bytes (a hole: no bytes written). */
async function sparseFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
}

function checkIdx(idx: Buffer, ids: LazyLayerIds): IndexHeader {
  const { header } = scanIndex(idx); // every record's bounds (ERR_INVALID_INDEX), no object per entry
  const wrong =
    header.version < 2 ? 'it is version 1 (no tar offsets)' :
    header.diffId !== ids.diffId ? `its diff_id is ${header.diffId}` :
    header.digest !== undefined && header.digest !== ids.digest ? `its blob digest is ${header.digest}` :
    header.compressedSize !== 0 && header.compressedSize !== ids.size ? `its blob is ${header.compressedSize} bytes, not ${ids.size}` : undefined;
  if (wrong !== undefined) throw new VmimgError(ErrorCode.INVALID_INDEX, `the published .idx of layer ${ids.digest} does not describe it: ${wrong}`);
  return header;
}

function info(header: IndexHeader, ids: LazyLayerIds, files: { indexPath: string; contentsPath: string }, spansPath: string, zran: string | undefined): LazyLayerInfo {
  return {
    ...files,
    diffId: ids.diffId,
    digest: ids.digest,
    compressedSize: ids.size,
    size: header.tarSize,
    contentsSize: header.contentsSize,
    entryCount: header.entryCount,
    spansPath,
    ...(zran !== undefined ? { zranPath: zran } : {}),
  };
}
