/**
 * One streaming pass from a layer blob to its `.idx` + `.contents` pair (docs/FORMAT.md):
 * hash compressed bytes → decompress → hash tar bytes → parse → aligned contents + entries (the hashing
 * in the hash pool's workers: layer-hashes.ts), then verify both digests and commit with temp names and renames (.idx last).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ErrorCode, VmimgError, isVmimgError, wrapError } from '../errors.js';
import { assertDigest, validateDigest } from '../digest/index.js';
import { openTar, readHead, replay } from './tar-source.js';
import type { RingCheckpoints } from './inflate-pool.js';
import { sniffCompression } from './decompress.js';
import { ContentsWriter } from './contents-writer.js';
import { EntriesBuilder } from './entries-builder.js';
import { encodeHeader, HEADER_SIZE, INDEX_VERSION, scanIndexFile, type IndexHeader } from './index-format.js';
import type { RecordTable } from './record-table.js';
import { layerPaths, spansPath, type LayerFiles } from './paths.js';
import { LayerBudget, resolveLimits, type LayerLimits } from './limits.js';
import { TarReader } from './tar-reader.js';
import { copyBody, copyBufferedBody, CountedStream, flattenPool, OrderedEntries } from './layer-hashes.js';
import { writeStamp } from './verified-stamp.js';
import { syncDir, writeFileDurable } from '../util/fs.js';
import { raceAbort } from '../store/fs-util.js';
import { regionOf, type FileRegion } from '../util/file-region.js';

export { layerPaths, type LayerFiles } from './paths.js';

export interface FlattenOptions {
  /** The layers directory. */
  dir: string;
  /** Digest of the bytes of `source` (the compressed blob); checked at the end. */
  expectedDigest?: string;
  /** diff_id (digest of the uncompressed tar); checked at the end, and skips work when already flattened. */
  expectedDiffId?: string;
  /** Names the layer in messages, e.g. `layer 2/5 (sha256:…)`; default `layer <digest>`. */
  name?: string;
  signal?: AbortSignal;
  /** Bytes of the compressed blob when known (the descriptor's size): bounds expansion by ratio. */
  compressedSize?: number;
  /** What the layer may cost (defaults: DEFAULT_LIMITS); a refusal is ERR_TOO_LARGE. */
  limits?: Partial<LayerLimits>;
  /**
   * Set when someone else checks `source`'s bytes against `expectedDigest` (the blob store, downloading
   * the bytes it tees to us): the blob is then not hashed a second time here, and the layer is committed
   * only once this resolves; its rejection (ERR_DIGEST_MISMATCH) fails the flattening.
   */
  blobVerified?: Promise<unknown>;
  /** A gzip layer's inflate also builds its gzip checkpoints (src/lazy/tee.ts, ring-checkpoints.ts). */
  checkpoints?: RingCheckpoints;
  /**
   * Progress: called with the bytes of the blob read so far, as they are read. A `source` made as a
   * file region (util/file-region.ts) that holds a plain tar is read from its file, not as a stream:
   * a caller counting the stream's chunks would see none past the first.
   */
  onRead?: (bytes: number) => void;
}

export interface LayerInfo extends LayerFiles {
  diffId: string;
  /** Digest of the source bytes as given (equals diffId for plain tars). */
  digest: string;
  compressedSize: number;
  /** Bytes of the uncompressed tar. */
  size: number;
  contentsSize: number;
  entryCount: number;
}

function infoFrom(header: IndexHeader, files: LayerFiles): LayerInfo {
  return {
    diffId: header.diffId,
    digest: header.digest ?? header.diffId,
    compressedSize: header.compressedSize,
    size: header.tarSize,
    contentsSize: header.contentsSize,
    entryCount: header.entryCount,
    ...files,
  };
}

/**
 * The layer's info when its `.idx` exists and decodes and its `.contents` has the recorded size;
 * undefined when either is missing or corrupt (flatten it again). Other I/O errors (EMFILE, EACCES,
 * EIO) are thrown: a layer that cannot be read is not a layer that is absent.
 */
export async function hasLayer(dir: string, diffId: string): Promise<LayerInfo | undefined> {
  const files = layerPaths(dir, diffId);
  try {
    // a lazy layer (docs/FORMAT.md "`.spans`") is not complete: flatten it over its placeholder files
    if (await stat(spansPath(dir, diffId)).then(() => true, () => false)) return undefined;
    const { header } = await scanIndexFile(files.indexPath);
    if (header.diffId !== diffId) return undefined;
    if ((await stat(files.contentsPath)).size !== header.contentsSize) return undefined;
    return infoFrom(header, files);
  } catch (err) {
    if (isVmimgError(err, ErrorCode.NOT_FOUND) || isVmimgError(err, ErrorCode.INVALID_INDEX)) return undefined;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw wrapError(err, `reading the cached layer ${files.indexPath}`);
  }
}

interface Converted {
  digest: string;
  diffId: string;
  compressedSize: number;
  tarSize: number;
  contentsSize: number;
  builder: EntriesBuilder;
}

/**
 * A blob that fails to decompress or parse may simply be corrupt: when its digest is known, read the
 * rest and report ERR_DIGEST_MISMATCH (the actual cause) instead of ERR_INVALID_LAYER.
 */
async function digestExplains(source: Readable, blob: CountedStream, expected: string, region: FileRegion | undefined): Promise<VmimgError | undefined> {
  if (source.destroyed && !source.readableEnded && region === undefined) return undefined; // cut short: cannot tell
  if (blob.stream === undefined) return undefined; // the blob's checker (the store) has the verdict
  // a plain tar read from its file: the rest of it, from where the reader stopped
  const at = blob.stream.length;
  const rest = region === undefined ? (source.readableEnded ? [] : source) : at < region.length ? createReadStream(region.path, { start: region.offset + at, end: region.offset + region.length - 1 }) : [];
  try {
    for await (const chunk of rest) {
      blob.stream.release(blob.stream.length); // no file reads the blob's bytes any more
      await blob.stream.push(chunk as Buffer);
    }
  } catch {
    return undefined;
  }
  const actual = await blob.digest();
  if (actual === expected) return undefined;
  return new VmimgError(ErrorCode.DIGEST_MISMATCH, `digest mismatch: expected ${expected}, got ${actual}`, { details: { expected, actual } });
}

/** A plain blob's tar stream left after a failure, and (read from a file region) when its reads stopped. */
interface Failed {
  tar?: CountedStream;
  closed?: Promise<void> | undefined;
}

/**
 * `failed` (a plain blob): on failure the tar's stream, which hashed the blob's bytes, is left there.
 * `region`: the plain blob's file region, read from there (`blobChunks` then yield its head only).
 */
async function convert(blobChunks: AsyncGenerator<Buffer>, fh: FileHandle, what: string, opts: FlattenOptions, blob: CountedStream, failed?: Failed, region?: FileRegion): Promise<Converted> {
  const { signal } = opts;
  const tarCount = new CountedStream(undefined);
  const hold: { at: number | undefined } = { at: undefined };
  const writer = new ContentsWriter(fh);
  let reader: TarReader | undefined;
  // No file range starts below the reader (or the body being copied); a gzip layer's tar views the
  // inflate ring, whose bytes also wait for the `.contents` writes queued from them.
  const readerAt = (): number => hold.at ?? reader?.offset ?? 0;
  const ring = { releaseTo: () => Math.min(readerAt(), writer.pendingFrom ?? Infinity), unblock: () => writer.flush() };
  const limits = resolveLimits(opts.limits);
  const tar = await openTar(blobChunks, tarCount, ring, readerAt, {
    compressedSize: opts.compressedSize,
    checkpoints: opts.checkpoints,
    outputChecked: opts.expectedDiffId !== undefined,
    maxZstdWindow: limits.maxZstdWindow,
    ...(region !== undefined ? { region } : {}),
    ...(opts.onRead !== undefined ? { onRead: opts.onRead } : {}),
  });
  // An abort stops the tar's hashing at once (a sparse file's hole is hashed as zeros: GiBs of them, R02);
  // the digests it leaves pending never settle, so every wait on them below also ends on the abort.
  const stopHashing = (): void => tarCount.destroy();
  signal?.addEventListener('abort', stopHashing, { once: true });
  try {
    reader = new TarReader(tar.chunks, tar.ring);
    const budget = new LayerBudget(limits, opts.compressedSize);
    const builder = new EntriesBuilder(what);
    const entries = new OrderedEntries(builder);
    // Most entries are a buffered header and a small buffered body: the try* paths take those without
    // a promise each (thousands of entries a layer: the main thread's allocations and GC, issue 13).
    for (let h = reader.tryNext() ?? (await reader.next()); h !== null; h = reader.tryNext() ?? (await reader.next())) {
      signal?.throwIfAborted();
      budget.entry(h, reader.offset, reader.stored); // before any data is read or written
      if (!builder.precheck(h)) {
        const waiting = entries.add(h);
        if (waiting !== undefined) await raceAbort(waiting, signal, `flattening ${what}`); // `await undefined` would still cost a turn
        continue;
      }
      const offset = writer.beginFile();
      const body = copyBufferedBody(reader, tarCount.stream!, writer) ?? (await copyBody(reader, tarCount.stream!, writer, signal, hold));
      if (body.flushing !== undefined) await body.flushing;
      const tarSparse = h.sparse ? { headerOffset: h.firstHeaderOffset, storedSize: h.storedSize } : undefined;
      const waiting = entries.add(h, { offset, size: h.size, tarOffset: h.dataOffset, ...(tarSparse ? { tarSparse } : {}) }, body.sha256);
      if (waiting !== undefined) await raceAbort(waiting, signal, `flattening ${what}`);
    }
    // Trailing zero blocks and padding are part of the diff_id; a bomb hidden after the end is bounded too.
    await reader.drain((offset) => {
      signal?.throwIfAborted();
      budget.check(offset);
    });
    await writer.finish();
    await raceAbort(entries.finish(), signal, `flattening ${what}`);
    const diffId = (await raceAbort(tarCount.digest(), signal, `flattening ${what}`))!;
    return {
      digest: (await blob.digest()) ?? (failed ? diffId : opts.expectedDigest!),
      diffId,
      compressedSize: region !== undefined ? tarCount.n : blob.n,
      tarSize: tarCount.n,
      contentsSize: writer.size,
      builder,
    };
  } catch (err) {
    if (failed) failed.tar = tarCount; // a plain blob's bytes so far: digestExplains may hash the rest
    throw err;
  } finally {
    signal?.removeEventListener('abort', stopHashing);
    tar.close();
    if (failed?.tar === tarCount) failed.closed = tar.closed; // its reads must stop before digestExplains pushes
    if (failed?.tar !== tarCount) tarCount.destroy();
  }
}


/** zlib's Z_* errors and decompress.ts's `zstd:` errors: the compressed stream is corrupt. */
function decompressionFailure(err: unknown): 'gzip' | 'zstd' | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) return 'gzip';
  if (err instanceof Error && err.message.startsWith('zstd:')) return 'zstd';
  return undefined;
}

function isLayerError(err: unknown): boolean {
  if (err instanceof VmimgError) return err.code === ErrorCode.INVALID_LAYER;
  return decompressionFailure(err) !== undefined;
}

function mapError(err: unknown, what: string, signal: AbortSignal | undefined): Error {
  if (signal?.aborted) return new VmimgError(ErrorCode.ABORTED, `flattening ${what}: aborted`, { cause: err });
  const failure = err instanceof VmimgError ? undefined : decompressionFailure(err);
  if (failure === undefined) return wrapError(err, `flattening ${what}`);
  const message = (err as Error).message;
  const detail = failure === 'gzip' ? `gzip data is corrupt (${message})` : message;
  return new VmimgError(ErrorCode.INVALID_LAYER, `flattening ${what}: ${detail}`, { cause: err });
}

/** `chunks`, reporting the bytes passed so far to `onRead`. */
async function* progress(chunks: AsyncGenerator<Buffer>, onRead: ((bytes: number) => void) | undefined): AsyncGenerator<Buffer> {
  if (onRead === undefined) return yield* chunks;
  let n = 0;
  for await (const chunk of chunks) {
    onRead((n += chunk.length));
    yield chunk;
  }
}

/**
 * convert(), then both digests checked while the `.contents` is fsynced and the `.idx` written under
 * its temp name (neither waits for the other, nor for the store's verdict on the blob); a corrupt blob
 * is reported as the digest mismatch it is. Returns the layer's header, its entry count recorded.
 */
async function convertVerified(source: Readable, fh: FileHandle, tmpIndex: string, opts: FlattenOptions, what: string): Promise<IndexHeader> {
  const checked = opts.blobVerified !== undefined && opts.expectedDigest !== undefined;
  // destroyOnReturn false: after a parse error the rest of the source can still be hashed.
  const raw = source.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
  const head = await readHead(raw);
  // A plain blob (docker save) is its tar: the tar's stream hashes its bytes once, for both digests;
  // lying in a file, it is read from there straight into that stream's ring (tar-source.ts).
  const plain = sniffCompression(head.bytes) === 'none';
  const region = plain && !head.ended ? regionOf(source) : undefined;
  const blob = new CountedStream(checked || plain ? undefined : flattenPool());
  const blobChunks = blob.tap(progress(replay(head.bytes, head.ended || region !== undefined ? undefined : raw), opts.onRead));
  const failed: Failed = {};
  const c = await convert(blobChunks, fh, what, opts, blob, plain ? failed : undefined, region)
    .catch(async (err: unknown) => {
      // a plain blob's digest is its diff_id: a docker save's layers come with the diff_id alone
      const expected = opts.expectedDigest ?? (plain ? opts.expectedDiffId : undefined);
      if (!isLayerError(err) || expected === undefined || opts.signal?.aborted) throw err;
      await blobChunks.return(undefined); // waits for a pending read, so every byte is hashed once, in order
      await failed.closed; // a file region's read ahead writes the tar's ring until then
      throw (await digestExplains(source, failed.tar ?? blob, expected, region)) ?? err;
    })
    .finally(() => {
      blob.destroy();
      failed.tar?.destroy();
    });
  const header = { digest: c.digest, diffId: c.diffId, contentsSize: c.contentsSize, compressedSize: c.compressedSize, tarSize: c.tarSize };
  const written = Promise.all([fh.sync(), writeIndex(tmpIndex, header, c.builder.finish())]);
  try {
    if (checked) await opts.blobVerified;
    else if (opts.expectedDigest !== undefined) assertDigest(plain ? 'blob' : 'compressed blob', opts.expectedDigest, c.digest);
    if (opts.expectedDiffId !== undefined) assertDigest('uncompressed tar (diff_id)', opts.expectedDiffId, c.diffId);
  } catch (err) {
    await written.catch(() => undefined); // the temp files are removed once nothing writes them
    throw err;
  }
  const [, entryCount] = await written;
  return { ...header, version: INDEX_VERSION, entryCount };
}

/** Writes the records (straight from the builder's table) after their header, and fsyncs. */
async function writeIndex(path: string, header: Omit<IndexHeader, 'version' | 'entryCount'>, table: RecordTable): Promise<number> {
  const { count, bytes, crc } = await table.write(undefined, 0); // the header needs the records' size and CRC first
  const head = encodeHeader(header, count, bytes, crc);
  const fh = await open(path, 'w');
  try {
    await fh.write(head, 0, head.length, 0);
    await table.write(fh, HEADER_SIZE);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return count;
}

/** Renames .contents and, last, .idx (both written and fsynced) into place. */
async function commit(dir: string, tmp: { contents: string; index: string }, header: IndexHeader, signal: AbortSignal | undefined): Promise<LayerInfo> {
  signal?.throwIfAborted();
  const files = layerPaths(dir, header.diffId);
  await rename(tmp.contents, files.contentsPath);
  await rename(tmp.index, files.indexPath); // the completion marker, last
  await rm(spansPath(dir, header.diffId), { force: true }); // a lazy layer's presence map: the layer is whole now
  await syncDir(dir);
  await writeStamp(files); // every byte just checked: the next pull need not hash them again
  return infoFrom(header, files);
}

/**
 * Flattens one layer blob (gzip, zstd or plain tar) into `<dir>/<diffHex>.{idx,contents}`.
 * When `expectedDiffId` is already flattened, returns it at once and destroys `source` unread.
 */
export async function flattenLayer(source: Readable, opts: FlattenOptions): Promise<LayerInfo> {
  const { dir, signal } = opts;
  const what = opts.name ?? `layer ${opts.expectedDigest ?? opts.expectedDiffId ?? ''}`.trimEnd();
  if (opts.expectedDigest !== undefined) validateDigest(opts.expectedDigest);
  if (opts.expectedDiffId !== undefined) {
    const have = await hasLayer(dir, opts.expectedDiffId);
    if (have !== undefined) {
      source.destroy();
      return have;
    }
  }
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.tmp-${process.pid}-${randomBytes(8).toString('hex')}`); // pid: prune reclaims a dead writer's
  const tmpContents = `${tmp}.contents`;
  const tmpIndex = `${tmp}.idx`;
  const onAbort = (): void => {
    source.destroy(new VmimgError(ErrorCode.ABORTED, `flattening ${what}: aborted`));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  let fh: FileHandle | undefined;
  let committed = false;
  try {
    signal?.throwIfAborted();
    fh = await open(tmpContents, 'w');
    const header = await convertVerified(source, fh, tmpIndex, opts, what);
    await fh.close();
    fh = undefined;
    const info = await commit(dir, { contents: tmpContents, index: tmpIndex }, header, signal);
    committed = true;
    return info;
  } catch (err) {
    throw mapError(err, what, signal);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!source.destroyed) source.destroy();
    await fh?.close().catch(() => undefined);
    if (!committed) {
      await rm(tmpContents, { force: true });
      await rm(tmpIndex, { force: true });
    }
  }
}
