/**
 * Resumable downloads into the store: the one resumable, verified fetch. Bytes go to
 * `<root>/partial/<hex>`, which survives failures and processes; each start re-hashes what is there and
 * asks the opener to continue from that offset. Only verified content is renamed into `blobs/`.
 * Retries follow one RetryBudget per download (util/retry.ts) — openers make one attempt each — and
 * every body is held to the minimum-throughput rule (util/throughput.ts): a trickle is cut and resumed.
 * Callers hold the partial's lock (see lock.ts).
 */
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { digestAlgorithm } from '../digest/index.js';
import { localDigest, poolDigest, type PoolDigest } from '../util/pool-digest.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { RetryBudget, type NoticeListener, type RetryPolicy } from '../util/retry.js';
import { guardThroughput, type ThroughputRule } from '../util/throughput.js';
import { aborted, isAbortError, syncDir, throwIfAborted } from './fs-util.js';
import { writevAll } from '../util/fs.js';
import { Writeback } from '../util/writeback.js';

/** What an opener returns: a body and the offset it really starts at (0 when the server ignored Range). */
export interface OpenedRange {
  stream: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  offset: number;
  /** Where the bytes come from (a host), for messages. */
  from?: string;
}

/** Opens the blob's content from `offset` (e.g. an HTTP GET with `Range: bytes=<offset>-`). */
export type RangeOpener = (offset: number, signal?: AbortSignal) => Promise<OpenedRange>;

export interface FetchOptions {
  signal?: AbortSignal;
  /** Bytes of the blob present so far (resumed bytes included). */
  onProgress?: (bytesDone: number) => void;
  /** Attempts, backoff and time budget for the whole download (defaults: util/retry.ts). */
  retry?: Partial<RetryPolicy>;
  /** Minimum rate and stall notice per attempt (defaults: util/throughput.ts). */
  throughput?: Partial<ThroughputRule>;
  /** Retry waits and stalls, as they happen. */
  onNotice?: NoticeListener;
  /**
   * Each chunk once it is in the partial file, with its offset in the blob; awaited, so a slow
   * consumer holds the download back. Offsets go back to 0 when the download restarts.
   */
  onData?: (chunk: Buffer, offset: number) => void | Promise<void>;
  /** A lock untouched for this long is stale (default 60 s). */
  staleLockMs?: number;
  /**
   * The content is complete and matches its digest; called before the fsync and rename that commit it
   * (a server streaming the partial file can end its answers here rather than after the commit).
   */
  onVerified?: () => void;
  /**
   * Another process holds the partial download's lock (BlobStore.fetchInto): return a path for this
   * fetch to download into on its own (no lock, not resumable by others, renamed into place at the end;
   * removed if the fetch fails), or undefined to wait for that process, as by default. serve takes its
   * own file: the other process may be a `vmimg pull` fetching that very blob *from serve*, into the same
   * cache, and waiting would hold both forever.
   */
  whenLocked?: (partialPath: string) => string | undefined;
  /**
   * Hash on this thread (node:crypto) rather than in the hash pool: for a process whose main thread has
   * time to spare (serve), where the pool's copy into shared memory and its messages cost more than the hash.
   */
  hashHere?: boolean;
}

export interface FetchResult {
  digest: string;
  size: number;
  path: string;
  /** False when the blob was already there or another fetch (process) brought it. */
  fetched: boolean;
  /** Bytes found in the partial file when this fetch started. */
  resumedFrom: number;
}

export interface DownloadTarget {
  digest: string;
  size?: number;
  partialPath: string;
  finalPath: string;
  what: string;
}

interface State {
  fh: fs.FileHandle;
  /** Hashes what is in the partial file (a pool worker for sha256: issue 13). */
  hasher: PoolDigest;
  /** A fresh hasher of the kind asked for (`hashHere`). */
  makeHasher: () => PoolDigest;
  /** No byte went into `hasher` yet (a rewind to 0 can keep it). */
  fresh: boolean;
  have: number;
  /** The partial file goes to the disk as it arrives, not all in the fsync that commits it. */
  writeback: Writeback;
}

/** Downloads into the partial file and renames it into place once verified. */
export async function download(t: DownloadTarget, open: RangeOpener, opts: FetchOptions): Promise<FetchResult> {
  await fs.mkdir(dirname(t.partialPath), { recursive: true });
  const fh = await fs.open(t.partialPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  let st: State | undefined;
  try {
    const makeHasher = (): PoolDigest => (opts.hashHere ? localDigest(digestAlgorithm(t.digest)) : poolDigest(digestAlgorithm(t.digest), t.size));
    st = { fh, hasher: makeHasher(), makeHasher, fresh: true, have: 0, writeback: new Writeback(fh) };
    const existing = (await fh.stat()).size;
    await rewind(t, st, t.size !== undefined && existing > t.size ? 0 : existing);
    const resumedFrom = st.have;
    opts.onProgress?.(st.have);
    await fill(t, st, open, opts, resumedFrom > 0);
    opts.onVerified?.();
    await st.writeback.settle();
    await fh.sync();
    await fh.close();
    await fs.mkdir(dirname(t.finalPath), { recursive: true });
    await fs.rename(t.partialPath, t.finalPath);
    await syncDir(dirname(t.finalPath));
    return { digest: t.digest, size: st.have, path: t.finalPath, fetched: true, resumedFrom };
  } finally {
    st?.hasher.destroy();
    await fh.close().catch(() => undefined);
  }
}

/** Loops open → append until the content is complete and verified. */
async function fill(t: DownloadTarget, st: State, open: RangeOpener, opts: FetchOptions, resumed: boolean): Promise<void> {
  const budget = new RetryBudget(opts.retry, { what: t.what, signal: opts.signal, onNotice: opts.onNotice });
  let restarted = false;
  for (;;) {
    throwIfAborted(opts.signal, t.what);
    if (t.size === undefined || st.have < t.size) {
      const before = st.have;
      budget.attempt();
      try {
        const opened = await open(st.have, opts.signal);
        if (opened.offset !== st.have) resumed = (await realign(t, st, opened)) > 0 || resumed;
        else if (st.have > 0) resumed = true;
        await append(t, st, opened, opts);
        if (t.size !== undefined && st.have < t.size) throw shortBody(t, st.have);
      } catch (err) {
        if (isAbortError(err) || opts.signal?.aborted) throw aborted(t.what, err);
        // Bytes that arrived at a fair rate are progress; a trickle cut for slowness is not.
        if (st.have > before && (err as VmimgError).details?.tooSlow !== true) budget.progressed();
        await budget.failed(err);
        continue;
      }
    }
    st.fresh = false; // the digest is finished: a rewind needs a new one
    const actual = `${digestAlgorithm(t.digest)}:${await st.hasher.digest()}`;
    if (actual === t.digest) return;
    // Resumed content may be what went wrong (a stale partial, a server that changed): start over once.
    await rewind(t, st, 0);
    if (resumed && !restarted) {
      restarted = true;
      resumed = false;
      continue;
    }
    await fs.rm(t.partialPath, { force: true });
    throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `${t.what}: digest mismatch: expected ${t.digest}, got ${actual}`, {
      details: { expected: t.digest, actual },
    });
  }
}

/** The opener started elsewhere than asked: start over (0) or cut back; returns the new offset. */
async function realign(t: DownloadTarget, st: State, opened: OpenedRange): Promise<number> {
  if (opened.offset > st.have || opened.offset < 0 || !Number.isSafeInteger(opened.offset)) {
    destroy(opened.stream);
    throw new VmimgError(
      ErrorCode.REGISTRY_ERROR,
      `${t.what}: body starts at byte ${opened.offset}, but only ${st.have} bytes are present`,
    );
  }
  await rewind(t, st, opened.offset);
  return opened.offset;
}

/** Bytes gathered (as views, no copy) for one writev: a write per 64 KiB network chunk was a threadpool round trip each. */
const BATCH_BYTES = 1 << 20;
/** ...or this many chunks (a body in tiny chunks), well under IOV_MAX (1024) buffers per writev. */
const MAX_BATCH_CHUNKS = 512;
/** ...or this long after the batch's first chunk, so a slow or stalled body still reaches the disk. */
const BATCH_MS = 100;

/**
 * Appends a body (held to the throughput rule) in batches of up to BATCH_BYTES, hashing exactly what
 * reached the file, so a failure leaves a consistent state: a body that fails mid-batch has the bytes
 * that arrived written first, then its error thrown.
 */
async function append(t: DownloadTarget, st: State, opened: OpenedRange, opts: FetchOptions): Promise<void> {
  const stream = opened.stream instanceof Readable ? opened.stream : Readable.from(opened.stream);
  const onAbort = (): void => {
    stream.destroy(aborted(t.what, opts.signal?.reason));
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const batch: Buffer[] = [];
  let batchBytes = 0;
  // bytes of the blob received so far, written or batched: st.have lags while a timer's flush writes
  // (batchBytes is then 0 already), which made progress and the size check count low
  let received = st.have;
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();
  let timerError: unknown;
  const write = async (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    if (batchBytes === 0) return;
    const chunks = batch.splice(0);
    const bytes = batchBytes;
    batchBytes = 0;
    await writevAll(st.fh, chunks, bytes, st.have);
    st.writeback.wrote(st.have + bytes);
    let offset = st.have;
    st.fresh = false;
    for (const chunk of chunks) await st.hasher.update(chunk);
    st.have += bytes;
    for (const chunk of chunks) {
      await opts.onData?.(chunk, offset);
      offset += chunk.length;
    }
  };
  // One write at a time, in order: the loop's and the stall timer's.
  const flush = (): Promise<void> => (writing = writing.then(write));
  try {
    for await (const raw of guardThroughput(stream, opts.throughput, { what: t.what, from: opened.from, onNotice: opts.onNotice })) {
      if (timerError !== undefined) throw timerError;
      const bytes = typeof raw === 'string' ? Buffer.from(raw) : (raw as Uint8Array);
      const chunk = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (t.size !== undefined && received + chunk.length > t.size) {
        stream.destroy();
        clearTimeout(timer);
        await writing.catch(() => undefined);
        await fs.rm(t.partialPath, { force: true });
        throw new VmimgError(ErrorCode.TOO_LARGE, `${t.what}: more than the expected ${t.size} bytes`, {
          details: { expectedSize: t.size },
        });
      }
      batch.push(chunk);
      batchBytes += chunk.length;
      received += chunk.length;
      opts.onProgress?.(received); // written by the next flush, or before any error is thrown
      // A body that slows or stalls still reaches the disk within BATCH_MS (a killed process keeps it).
      timer ??= setTimeout(() => void flush().catch((err: unknown) => (timerError = err)), BATCH_MS);
      if (batchBytes >= BATCH_BYTES || batch.length >= MAX_BATCH_CHUNKS) await flush();
    }
    await flush();
    if (timerError !== undefined) throw timerError;
  } catch (err) {
    if (!(err instanceof VmimgError && err.code === ErrorCode.TOO_LARGE)) await flush().catch(() => undefined); // keep what arrived
    throw err;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Truncates the partial file to `offset` and re-hashes the bytes kept. */
async function rewind(t: DownloadTarget, st: State, offset: number): Promise<void> {
  await st.fh.truncate(offset);
  if (!st.fresh) {
    st.hasher.destroy();
    st.hasher = st.makeHasher();
    st.fresh = true;
  }
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let pos = 0;
  while (pos < offset) {
    const { bytesRead } = await st.fh.read(buf, 0, Math.min(buf.length, offset - pos), pos);
    if (bytesRead === 0) break;
    st.fresh = false;
    await st.hasher.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  st.have = pos;
}

function shortBody(t: DownloadTarget, have: number): VmimgError {
  return new VmimgError(ErrorCode.NETWORK, `${t.what}: body ended after ${have} of ${t.size} bytes`, {
    hint: 'run the command again: the download resumes where it stopped',
  });
}

function destroy(stream: OpenedRange['stream']): void {
  if (stream instanceof Readable) stream.destroy();
}
