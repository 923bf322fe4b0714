/**
 * Blob GET/HEAD: a hit is read from `blobs/`, a miss joins the blob's one upstream download and is
 * answered from it as the bytes arrive (headers as soon as the upstream answered). One `Range` is
 * honoured on both (206, 416 with `Content-Range: bytes *\/SIZE`).
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { ErrorCode, VmimgError } from '../errors.js';
import { fileSize } from '../store/fs-util.js';
import { fillBroken, type BlobFill } from './fill.js';
import { toServeError } from './errors.js';
import { parseRange, type ByteRange } from './range.js';
import { CHUNK, sendFromFile } from './send.js';
import { SMALL_BLOB_BYTES } from './small-blobs.js';
import { drained } from '../util/drained.js';
import { sharedBlockPool } from '../util/block-pool.js';
import type { ServeState } from './state.js';
import type { RouteTarget } from './routes.js';

/** Answers a blob request (`head`: headers only; `again`: a second look, after its download's files went). */
export async function serveBlob(s: ServeState, res: ServerResponse, t: RouteTarget, digest: string, rangeHeader: string | undefined, head: boolean, again = false): Promise<void> {
  const known = s.sizes.get(digest);
  const kept = s.small.get(digest);
  if (kept !== undefined && (known === undefined || kept.length === known)) return sendKept(s, res, digest, kept, rangeHeader, head);
  const path = s.store.path(digest);
  const present = await fileSize(path);
  if (present !== undefined && (known === undefined || present === known)) {
    if (present <= SMALL_BLOB_BYTES) {
      const bytes = await readStored(path, present);
      if (bytes !== undefined) {
        s.small.put(digest, bytes);
        s.budget.used(digest, present); // read from the store: counted, whoever stored it
        return sendKept(s, res, digest, bytes, rangeHeader, head);
      }
    } else {
      // opened before the answer starts: evicted (budget.ts) or pruned since the stat, it is a miss
      const fh = await open(path, 'r').catch(() => undefined);
      if (fh !== undefined) {
        s.metrics.hits.blob++;
        s.budget.used(digest, present);
        res.setHeader('x-vmimg-cache', 'hit');
        const range = answerHeaders(res, digest, present, rangeHeader);
        if (range === 'unsatisfiable' || head) return void (await fh.close(), res.end());
        return sendFile(s, res, path, fh, range ?? { start: 0, end: present - 1 });
      }
    }
  }
  if (!again) s.metrics.misses.blob++;
  res.setHeader('x-vmimg-cache', 'miss');
  s.budget.pin(digest); // the answer reads the download's files: not evicted until it ends
  try {
    const fill = joinFill(s, t, digest, known);
    try {
      await fill.started;
    } catch (err) {
      throw toServeError(err, 'BLOB_UNKNOWN');
    }
    if (head) {
      answerHeaders(res, digest, fill.size, rangeHeader);
      return void res.end();
    }
    // opened before the headers: a download that ended and whose blob went since (an eviction that
    // chose it before this answer pinned it, a prune) is looked at once more, as a new request
    let fh: FileHandle;
    try {
      fh = await fill.openFile();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || again) throw err;
      return await serveBlob(s, res, t, digest, rangeHeader, head, true);
    }
    if (fill.size === undefined) {
      // The upstream sent no length: the whole blob, chunked, ended once verified.
      answerHeaders(res, digest, undefined, undefined);
      return await sendFromFill(s, res, fill, fh, 0, undefined);
    }
    const range = answerHeaders(res, digest, fill.size, rangeHeader);
    if (range === 'unsatisfiable' || fill.size === 0) {
      await fh.close();
      return void res.end();
    }
    return await sendFromFill(s, res, fill, fh, range?.start ?? 0, range?.end ?? fill.size - 1);
  } finally {
    s.budget.unpin(digest);
  }
}

/** A hit on a blob kept in memory (small-blobs.ts). */
function sendKept(s: ServeState, res: ServerResponse, digest: string, bytes: Buffer, rangeHeader: string | undefined, head: boolean): void {
  s.metrics.hits.blob++;
  s.budget.touch(digest);
  res.setHeader('x-vmimg-cache', 'hit');
  const range = answerHeaders(res, digest, bytes.length, rangeHeader);
  if (range === 'unsatisfiable' || head) return void res.end();
  const body = range === undefined ? bytes : bytes.subarray(range.start, range.end + 1);
  s.metrics.bytesServed += body.length;
  res.end(body);
}

/** The stored blob's bytes when it still has `size` of them (a prune may have just taken it: undefined). */
async function readStored(path: string, size: number): Promise<Buffer | undefined> {
  try {
    const bytes = await readFile(path);
    return bytes.length === size ? bytes : undefined;
  } catch {
    return undefined;
  }
}

/** The running download of `digest` from `t`'s upstream, or a new one (`size` when a descriptor told it). */
export function joinFill(s: ServeState, t: RouteTarget, digest: string, size: number | undefined): BlobFill {
  return s.fills.join(digest, size, (offset, signal) => s.upstream.openBlob(t, digest, size, offset, signal));
}

/** Status and headers; returns the range being answered. */
function answerHeaders(res: ServerResponse, digest: string, size: number | undefined, rangeHeader: string | undefined): ByteRange | 'unsatisfiable' | undefined {
  res.setHeader('content-type', 'application/octet-stream');
  res.setHeader('docker-content-digest', digest);
  res.setHeader('etag', `"${digest}"`);
  res.setHeader('accept-ranges', 'bytes');
  res.setHeader('cache-control', 'max-age=31536000, immutable');
  if (size === undefined) return undefined;
  const range = parseRange(rangeHeader, size);
  if (range === 'unsatisfiable') {
    res.statusCode = 416;
    res.setHeader('content-range', `bytes */${size}`);
    res.setHeader('content-length', 0);
    return range;
  }
  if (range !== undefined) {
    res.statusCode = 206;
    res.setHeader('content-range', `bytes ${range.start}-${range.end}/${size}`);
    res.setHeader('content-length', range.end - range.start + 1);
  } else {
    res.statusCode = 200;
    res.setHeader('content-length', size);
  }
  res.flushHeaders();
  return range;
}

/** A hit: bytes `range` of the stored blob at `path`, open as `fh` (closed here). */
async function sendFile(s: ServeState, res: ServerResponse, path: string, fh: FileHandle, range: ByteRange): Promise<void> {
  try {
    for (let pos = range.start; pos <= range.end; ) {
      const n = await sendFromFile(res, fh, pos, Math.min(CHUNK, range.end + 1 - pos));
      if (res.destroyed) return;
      if (n === 0) return void res.destroy(new VmimgError(ErrorCode.IO, `${path} is shorter than its answer`)); // never a clean short end
      pos += n;
      s.metrics.bytesServed += n;
    }
    res.end();
  } catch (err) {
    res.destroy(err as Error);
  } finally {
    await fh.close();
  }
}

/**
 * Bytes `start`..`end` (inclusive; `undefined`: to the end, whatever it is) from a running download.
 * The answer's last byte (a range's too) waits for the blob's verification, so a client never sees a
 * clean end of a bad blob; on a failed verification its connection is cut. `fh` is the download's
 * file, open (closed here).
 */
async function sendFromFill(s: ServeState, res: ServerResponse, fill: BlobFill, fh: FileHandle, start: number, end: number | undefined): Promise<void> {
  // one 'close' listener for the whole answer: a wait ends at the fill's next change or the client leaving
  let wake: (() => void) | undefined;
  const onClose = (): void => wake?.();
  res.once('close', onClose);
  const changedOrClosed = (): Promise<void> =>
    new Promise<void>((resolve) => {
      wake = resolve;
      if (res.destroyed) resolve();
      else fill.onChange(resolve);
    });
  const generation = fill.generation;
  const pool = sharedBlockPool();
  let pos = start;
  try {
    for (;;) {
      if (res.destroyed) return;
      if (fill.generation !== generation || fill.state === 'failed') throw fillBroken(fill); // cut, and logged with its cause
      const stop = end === undefined ? fill.have : Math.min(fill.have, end + 1);
      if (end === undefined ? fill.verified && pos >= fill.have : pos > end) break;
      // the answer's last byte (the blob's or the range's) goes out only once the blob is verified:
      // a client never sees a clean end of bytes from a blob that may fail its digest
      const last = end === undefined ? undefined : end + 1;
      const held = !fill.verified && stop === last ? 1 : 0;
      const n = Math.min(stop - held - pos, CHUNK);
      if (n <= 0) {
        await changedOrClosed();
        continue;
      }
      const views = fill.inMemory(pos, n);
      if (views.length > 0) {
        // keeping up with the download: its own buffers, one writev; each held until the socket took it
        let ok = true;
        res.cork();
        for (const v of views) {
          pool.hold(v);
          ok = res.write(v, () => pool.release(v));
          pos += v.length;
          s.metrics.bytesServed += v.length;
        }
        res.uncork();
        if (!ok) await drained(res);
        continue;
      }
      const bytesRead = await sendFromFile(res, fh, pos, n);
      if (res.destroyed) return;
      if (bytesRead === 0) {
        if (fill.verified) return void res.destroy(fillBroken(fill)); // the file is shorter than the fill said
        await changedOrClosed();
        continue;
      }
      pos += bytesRead;
      s.metrics.bytesServed += bytesRead;
    }
    res.end();
  } finally {
    res.off('close', onClose);
    await fh.close();
  }
}
