/**
 * One upstream download per blob, shared by every client that asks while it runs (singleflight).
 * The store's fetch (store/fetch.ts) writes the bytes to `partial/<hex>`, resumes with Range,
 * verifies and renames into `blobs/`; clients read the growing partial file behind it, so memory
 * stays bounded whatever the number of clients, and a client leaving does not stop the download.
 * The last HOT_BYTES written are also kept in memory (the download's own buffers, no copy): clients
 * keeping up with the download are answered from them, sparing a file read per client per chunk
 * (4 cold clients: 4 × the blob copied from the page cache by the thread pool, and the GC of the
 * buffers read into); clients behind the window read the file.
 * A body read by the direct GET comes in blocks of the process's pool (util/block-pool.ts): the store
 * hands each chunk on (`onData`) once it is written and hashed, the window takes over the chunk's
 * reference and drops it when the chunk leaves, and a client's write holds the block until the socket
 * took the bytes; the pool reuses the block when all have let go.
 * Every answer from a running download (whole blob or Range) withholds its last byte until the blob
 * is verified (hashed whole; the fsync and rename that commit it come after): a blob failing its digest
 * is never committed, and its clients' connections are cut instead of ending cleanly.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { digestHex } from '../digest/index.js';
import { ErrorCode, isVmimgError, VmimgError } from '../errors.js';
import { fileSize } from '../store/fs-util.js';
import type { BlobStore } from '../store/index.js';
import type { OpenedRange } from '../store/fetch.js';
import { DirectBody } from '../registry/direct-get.js';
import { sharedBlockPool } from '../util/block-pool.js';
import { cannotStore, checkSpace, dropPartial, storageErrno } from './storage.js';
import { SMALL_BLOB_BYTES, type SmallBlobs } from './small-blobs.js';

/** Opens the blob upstream from `offset`; `total` is the blob's size when the answer tells it. */
export type FillOpener = (offset: number, signal?: AbortSignal) => Promise<OpenedRange & { total?: number }>;

/**
 * Downloads hash on the main thread (node:crypto) on a machine of 2 cores or fewer, in the hash pool
 * otherwise. The pool takes ~0.3-0.4 ms of this thread per MiB (the copy into its ring, messages) plus
 * ~0.8-1.3 ms of its worker, where hashing here takes ~0.7-1 ms (95 MB in 64 KiB chunks, no other work);
 * with 2 cores the worker competes with this thread, the upstream and the clients for the same cores,
 * so the ~0.5 ms per MiB it adds in all costs more than the main thread saves (4 cold clients of the
 * bench image: serve's CPU per round 580-770 -> 550-640 ms); with more cores it runs beside them.
 */
export const HASH_HERE = availableParallelism() <= 2;

/** Bytes of the newest chunks a download keeps in memory for clients that keep up with it. */
export const HOT_BYTES = 8 << 20;
/** ...and all downloads together: past it each keeps only its newest chunk (many cold blobs at once). */
export const HOT_TOTAL_BYTES = 64 << 20;
/** Bytes in the windows of all downloads of this process. */
let hotTotal = 0;

/** One running download and what its readers need to follow it. */
export class BlobFill {
  /** The blob's size once known (descriptor, or the first upstream answer). */
  size: number | undefined;
  /** Bytes present in the partial file, from 0. */
  have = 0;
  /** Bumped when the download starts over (bytes already sent may differ from what comes). */
  generation = 0;
  state: 'running' | 'done' | 'failed' = 'running';
  /** All `have` bytes are in and match the digest (the store may still be committing them). */
  verified = false;
  error: unknown;
  /** Resolves once the upstream answered (headers can go out), or the blob turned out complete. */
  readonly started: Promise<void>;
  /** Where the bytes are written: `partial/<hex>`, or a file of its own when another process holds that (whenLocked). */
  partialPath: string;
  readonly finalPath: string;
  private markStarted!: () => void;
  private failStart!: (err: unknown) => void;
  private waiters: (() => void)[] = [];
  /** The newest chunks, in order, contiguous, ending at `have`; `hotStart` is the first one's offset. */
  private hot: Buffer[] = [];
  private hotStart = 0;
  private hotBytes = 0;

  constructor(store: BlobStore, readonly digest: string, size: number | undefined) {
    this.size = size;
    this.partialPath = join(store.root, 'partial', digestHex(digest));
    this.finalPath = store.path(digest);
    this.started = new Promise<void>((resolve, reject) => {
      this.markStarted = resolve;
      this.failStart = reject;
    });
    this.started.catch(() => undefined); // a failure reaches whoever awaits it; no unhandled rejection
  }

  /** Resolves at the next change (bytes, restart, end). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Calls `f` once, at the next change (a waiter that may also be woken by something else). */
  onChange(f: () => void): void {
    this.waiters.push(f);
  }

  /** Resolves once the blob is verified and stored; rejects with the fill's error. */
  async finished(): Promise<void> {
    while (this.state === 'running') await this.changed();
    if (this.state === 'failed') throw this.error;
  }

  /** Opens the bytes written so far: the partial file, or the blob once renamed into place. */
  async openFile(): Promise<fs.FileHandle> {
    try {
      return await fs.open(this.partialPath, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return fs.open(this.finalPath, 'r');
    }
  }

  /** Runs the download (called once by Fills), with the hooks of FillHooks. */
  async run(store: BlobStore, open: FillOpener, signal: AbortSignal, hooks: FillHooks = {}): Promise<void> {
    const { received, small, room } = hooks;
    const pool = sharedBlockPool();
    const opener = async (offset: number, s?: AbortSignal): Promise<OpenedRange> => {
      const opened = await open(offset, s);
      if (opened.stream instanceof DirectBody) opened.stream.usePool(pool); // progress() owns each chunk's reference
      if (this.size === undefined && opened.total !== undefined) {
        this.size = opened.total;
        // the size came with the answer: still refused before a byte is stored or any header sent
        await room?.(this.digest, this.size - offset);
        await checkSpace(store.root, `blob ${this.digest}`, this.size - offset).catch((err: unknown) => {
          destroyBody(opened.stream);
          throw err;
        });
      }
      this.markStarted();
      return opened;
    };
    try {
      // a blob that cannot fit is refused before its first upstream byte
      if (this.size !== undefined) {
        // the whole size is reserved: another process's partial may hold the resumed bytes (whenLocked)
        await room?.(this.digest, this.size);
        await checkSpace(store.root, `blob ${this.digest}`, this.size - ((await fileSize(this.partialPath)) ?? 0));
      }
      const result = await store.fetchInto({ digest: this.digest, ...(this.size !== undefined ? { size: this.size } : {}) }, opener, {
        signal,
        hashHere: HASH_HERE,
        // onData: each chunk once it is in the partial file (onProgress counts bytes received, maybe not yet written)
        onData: (chunk, offset) => {
          received?.(chunk.length);
          this.progress(chunk, offset);
        },
        // a `vmimg pull` from this server into its cache holds the partial's lock while it waits for us
        whenLocked: () => {
          this.partialPath = join(store.root, 'tmp', `${digestHex(this.digest)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
          return this.partialPath;
        },
        // answers end once the bytes are verified, not after the fsync and rename that commit them
        onVerified: () => {
          this.verified = true;
          this.notify();
        },
      });
      this.size = result.size;
      this.have = result.size;
      this.state = 'done';
      this.verified = true;
      // a small blob whole in the window (no restart): a copy, as the window's chunks may be pooled blocks
      if (small !== undefined && result.size <= SMALL_BLOB_BYTES && this.hotStart === 0 && this.hotBytes === result.size) small.put(this.digest, Buffer.concat(this.hot));
      this.dropHot(); // committed: readers still going read the file
      this.markStarted();
    } catch (err) {
      const errno = storageErrno(err);
      if (errno !== undefined) {
        await dropPartial(this.partialPath).catch(() => undefined); // frees the space it held; nothing partial stays
        this.fail(isVmimgError(err) ? err : cannotStore(`blob ${this.digest}`, errno, err));
        return;
      }
      await this.dropEmptyPartial();
      this.fail(err);
      return;
    }
    this.notify();
  }

  /**
   * A download that failed before its first byte (the upstream's 404, a refused connection) leaves an
   * empty partial file: removed, so clients asking for made-up digests cannot fill `partial/`.
   */
  private async dropEmptyPartial(): Promise<void> {
    try {
      if ((await fs.stat(this.partialPath)).size === 0) await fs.rm(this.partialPath, { force: true });
    } catch {
      // already gone
    }
  }

  /** Ends the fill with `err`: waiting requests answer it, readers are cut. */
  fail(err: unknown): void {
    this.dropHot();
    this.state = 'failed';
    this.error = err;
    this.failStart(err);
    this.notify();
  }

  /**
   * Views (no copy) of up to `max` bytes from `offset` while they are still in memory; empty when
   * `offset` fell behind the window or is not there yet. A view may be a pooled block's: valid in
   * this turn; a caller keeping it longer (a socket write) holds it (`sharedBlockPool().hold`) first.
   */
  inMemory(offset: number, max: number): Buffer[] {
    const out: Buffer[] = [];
    if (offset < this.hotStart || max <= 0) return out;
    let at = this.hotStart;
    let i = 0;
    while (i < this.hot.length && at + this.hot[i]!.length <= offset) at += this.hot[i++]!.length;
    for (let pos = offset; i < this.hot.length && pos - offset < max; i++) {
      const chunk = this.hot[i]!;
      const view = chunk.subarray(pos - at, Math.min(chunk.length, pos - at + max - (pos - offset)));
      out.push(view);
      pos += view.length;
      at += chunk.length;
    }
    return out;
  }

  /**
   * `chunk` is in the partial file at `offset`; an offset before what we had means the download started
   * over. The window takes over the chunk's pool reference (if it has one) until the chunk leaves it.
   */
  private progress(chunk: Buffer, offset: number): void {
    if (offset < this.have) this.generation++;
    if (offset !== this.hotStart + this.hotBytes) {
      this.dropHot();
      this.hotStart = offset;
    }
    this.hot.push(chunk);
    this.hotBytes += chunk.length;
    hotTotal += chunk.length;
    while (this.hot.length > 1 && (this.hotBytes - this.hot[0]!.length >= HOT_BYTES || hotTotal > HOT_TOTAL_BYTES)) {
      const gone = this.hot.shift()!;
      this.hotStart += gone.length;
      this.hotBytes -= gone.length;
      hotTotal -= gone.length;
      sharedBlockPool().release(gone);
    }
    this.have = offset + chunk.length;
    this.notify();
  }

  /** Empties the in-memory window (its bytes stay in the file). */
  private dropHot(): void {
    const pool = sharedBlockPool();
    for (const chunk of this.hot) pool.release(chunk);
    hotTotal -= this.hotBytes;
    this.hot = [];
    this.hotStart = this.have;
    this.hotBytes = 0;
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** What a download tells the server, and asks of it. */
export interface FillHooks {
  /** Bytes of a download stored (the upstream-bytes metric, without a stream stage of its own). */
  readonly received?: (bytes: number) => void;
  /** Where a blob of at most SMALL_BLOB_BYTES goes once verified and stored (see small-blobs.ts). */
  readonly small?: SmallBlobs;
  /** Before a blob's first byte when its size is known: room for `bytes`, its size (budget.ts; a resumed partial's bytes are not taken off). */
  readonly room?: (digest: string, bytes: number) => Promise<void>;
}

/** The downloads in flight, by digest. */
export class Fills {
  private readonly running = new Map<string, BlobFill>();

  constructor(
    private readonly store: BlobStore,
    private readonly signal: AbortSignal,
    private readonly hooks: FillHooks & {
      /** Before a download starts (e.g. a lease, before any byte lands in the cache). */
      started?: (digest: string) => Promise<void>;
      changed?: (inFlight: number) => void;
      /** A blob verified and committed to the store. */
      stored?: (digest: string, size: number) => void;
      /** A download ended, stored or not (after `stored`). */
      ended?: (digest: string) => void;
    } = {},
  ) {}

  /** The fill for `digest`: the running one, or a new one started with `open`. */
  join(digest: string, size: number | undefined, open: FillOpener): BlobFill {
    const existing = this.running.get(digest);
    if (existing !== undefined) return existing;
    const fill = new BlobFill(this.store, digest, size);
    this.running.set(digest, fill);
    this.hooks.changed?.(this.running.size);
    void (async () => {
      try {
        await this.hooks.started?.(digest); // e.g. a lease, before any byte lands in the cache
        await fill.run(this.store, open, this.signal, this.hooks);
        if (fill.state === 'done') this.hooks.stored?.(digest, fill.size!); // run ends a failed download without throwing
      } catch (err) {
        fill.fail(err);
      } finally {
        this.hooks.ended?.(digest);
        this.running.delete(digest);
        this.hooks.changed?.(this.running.size);
      }
    })();
    return fill;
  }

  get size(): number {
    return this.running.size;
  }

  /** Whether `digest` is being fetched or committed now. */
  has(digest: string): boolean {
    return this.running.has(digest);
  }

  /** Resolves once the downloads running now have ended (committed or failed). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running.values()].map((f) => f.finished()));
  }
}

/** The error a reader's connection is cut with when its fill fails or starts over. */
export function fillBroken(fill: BlobFill): VmimgError {
  if (fill.state === 'failed' && fill.error instanceof VmimgError) return fill.error;
  return new VmimgError(ErrorCode.NETWORK, `download of ${fill.digest} started over; the bytes already sent may differ`);
}

function destroyBody(stream: OpenedRange['stream']): void {
  if (typeof (stream as { destroy?: unknown }).destroy === 'function') (stream as { destroy(): void }).destroy();
}
