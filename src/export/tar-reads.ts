/**
 * File bodies read straight into their place in the tar sink's ring: the thread pool's read is the only
 * copy of a body byte the export makes. Small files that sit close together in one layer's `.contents`
 * (the walk's order is nearly the layer's order: page-aligned files in tar order) are read with one
 * `preadv` per run, up to 1 MiB of the file: each body into its place between the headers, each gap
 * between them into a scratch buffer — the Debian bench image's ~5 100 small files are ~200 reads.
 * Large files are read in 1 MiB pieces, several at once; a lazy layer's file through ContainerFS (its
 * reader fetches what a read covers). How far reads run ahead is bounded by the ring's room.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import { containerInternals, type ContainerFS } from '../vfs/container-fs.js';
import { ContentFile, type ContentReader } from '../vfs/content.js';
import { WRITE_BYTES, type Claim, type FileCheck, type TarSink } from './tar-sink.js';
import { shortRead } from './walk.js';

/** The most a run of small files spans in `.contents`, and a large file's piece. */
export const PIECE = WRITE_BYTES;
/** Bytes between two files (page padding) that a run reads through rather than splitting. */
const MAX_GAP = 64 << 10;
/** Buffers in one preadv (Linux's IOV_MAX is 1024): a body (two at the ring's wrap) and a gap per file. */
const MAX_IOVECS = 512;
/** Where the gaps' bytes go (read and never looked at: concurrent reads may share it). */
const SCRATCH = Buffer.allocUnsafeSlow(MAX_GAP);

/** Small files of one layer read with one preadv: `.contents` bytes [start, end) into `views`. */
interface Run {
  layer: number;
  start: number;
  end: number;
  views: Buffer[];
  claims: Claim[];
}

/** See the module comment. `place` bodies in archive order (each right after its header), `drain` at the end. */
export class BodyReader {
  private readonly readers: readonly ContentReader[];
  private readonly layerOf: Int32Array;
  private readonly offsetOf: (ino: number) => number;
  /** Read-only handles of the local layers' `.contents` (preadv), a few at a time. */
  private readonly handles = new HandlePool();
  private open: Run | undefined;
  private pending = 0;
  private idle: (() => void) | undefined;
  private error: Error | undefined;

  constructor(private readonly fs: ContainerFS, private readonly sink: TarSink) {
    const { table, files } = containerInternals(fs);
    this.readers = files;
    this.layerOf = table.layer;
    this.offsetOf = (ino) => table.offset(ino);
  }

  /**
   * Claims the body of file `ino` (`size` > 0 bytes) at the sink's cursor, marks it for `check`, and
   * reads it there. A promise only when it had to wait for room in the ring.
   */
  place(ino: number, size: number, check: FileCheck | undefined): Promise<void> | undefined {
    const layer = this.layerOf[ino]!;
    const pos = this.offsetOf(ino);
    if (size > PIECE || !(this.readers[layer] instanceof ContentFile)) return this.placePieces(ino, layer, pos, size, check);
    if (!this.sink.fits(size)) {
      this.flush(); // room may come only from what the open run holds back
      return this.sink.room(size).then(() => this.placeSmall(layer, pos, size, check));
    }
    this.placeSmall(layer, pos, size, check);
    return undefined;
  }

  /** Starts the open run's read (no more files join it): before any wait, and at the end. */
  flush(): void {
    const run = this.open;
    this.open = undefined;
    if (run) this.track(this.readRun(run), run.claims);
  }

  /** Resolves once every read started is in; rejects with the first that failed. */
  async drain(): Promise<void> {
    this.flush();
    while (this.pending > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    if (this.error) throw this.error;
  }

  /** Waits for the reads still running (they write into the ring) and closes the handles. */
  async close(): Promise<void> {
    this.flush();
    while (this.pending > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await this.handles.close();
  }

  private placeSmall(layer: number, pos: number, size: number, check: FileCheck | undefined): void {
    let run = this.open;
    const gap = run ? pos - run.end : 0;
    if (!run || run.layer !== layer || gap < 0 || gap > MAX_GAP || pos + size - run.start > PIECE || run.views.length + 3 > MAX_IOVECS) {
      this.flush();
      run = this.open = { layer, start: pos, end: pos, views: [], claims: [] };
    } else if (gap > 0) run.views.push(SCRATCH.subarray(0, gap));
    const claim = this.sink.claim(size);
    if (check) this.sink.body(claim.start, claim.end, check, true);
    run.views.push(...claim.views);
    run.claims.push(claim);
    run.end = pos + size;
  }

  /** A large file, or any file of a lazy layer: 1 MiB pieces, each its own read. */
  private async placePieces(ino: number, layer: number, pos: number, size: number, check: FileCheck | undefined): Promise<void> {
    const local = this.readers[layer] instanceof ContentFile;
    for (let at = 0; at < size; ) {
      const n = Math.min(PIECE, size - at);
      if (!this.sink.fits(n)) {
        this.flush();
        await this.sink.room(n);
      }
      const claim = this.sink.claim(n);
      if (check) this.sink.body(claim.start, claim.end, check, at + n === size);
      const read = local ? this.readFully(layer, claim.views, pos + at) : this.readLazy(ino, claim.views, at, size);
      this.track(read, [claim]);
      at += n;
    }
  }

  private readRun(run: Run): Promise<void> {
    return this.readFully(run.layer, run.views, run.start);
  }

  /**
   * preadv of `views` from `position` of layer `layer`'s `.contents`, until all are full. With the
   * layer's handle open already, the first preadv goes to the thread pool before this returns: the
   * walk places entries without awaiting while the ring has room, so a read that first awaited its
   * handle started only when the walk next waited — with the whole ring claimed — and the walk and the
   * reads took turns instead of overlapping (the main thread waited for room ~75 % of an export).
   */
  private readFully(layer: number, views: Buffer[], position: number): Promise<void> {
    const path = (this.readers[layer] as ContentFile).path;
    const held = this.handles.acquireOpen(path);
    if (held !== undefined) return this.readWith(held, held.handle, views, position, path);
    return this.handles.acquire(path).then((h) => this.readWith(h, undefined, views, position, path));
  }

  /** Reads with `held`'s handle (released at the end); given `fh`, the first preadv starts synchronously. */
  private async readWith(held: Held, fh: FileHandle | undefined, views: Buffer[], position: number, path: string): Promise<void> {
    try {
      const handle = fh ?? (await held.fh);
      let total = 0;
      for (const v of views) total += v.length;
      let list = views;
      for (let done = 0; done < total; ) {
        const { bytesRead } = await handle.readv(list, position + done);
        if (bytesRead === 0) throw truncated(path);
        done += bytesRead;
        list = rest(list, bytesRead);
      }
    } finally {
      this.handles.release(held);
    }
  }

  /** A lazy layer's bytes [at, at + views' length) of file `ino`, through ContainerFS. */
  private async readLazy(ino: number, views: Buffer[], at: number, size: number): Promise<void> {
    for (const v of views) {
      const got = await this.fs.readInto(ino, v, 0, v.length, at);
      if (got !== v.length) throw shortRead(`inode ${ino}: ${at + got} of ${size} bytes`);
      at += v.length;
    }
  }

  /** Counts a read until it settles; once in, its claims are filled; a failure stops the export. */
  private track(read: Promise<void>, claims: Claim[]): void {
    this.pending++;
    read.then(
      () => {
        for (const c of claims) this.sink.filled(c);
      },
      (err: Error) => {
        this.error ??= err;
        this.sink.fail(err);
      },
    ).finally(() => {
      if (--this.pending === 0) this.idle?.();
    });
  }
}

/** Handles open at once: the walk follows one layer for long stretches (ContentFile's own pool is separate). */
const MAX_HANDLES = 8;

interface Held {
  fh: Promise<FileHandle>;
  /** The handle, once `fh` resolved. */
  handle?: FileHandle;
  /** Reads using it now. */
  busy: number;
}

/**
 * Open `.contents` handles by path, at most MAX_HANDLES: the least recently used idle one is closed to
 * open another, and with all of them busy a read waits for one (an image of 130 layers exports under
 * `ulimit -n 128`).
 */
class HandlePool {
  /** Least recently used first (a Map keeps insertion order). */
  private readonly open = new Map<string, Held>();
  private waiting: (() => void)[] = [];

  /** `path`'s handle when it is open already (counted busy until `release`d), without waiting; else undefined. */
  acquireOpen(path: string): Held | undefined {
    const held = this.open.get(path);
    if (held?.handle === undefined) return undefined;
    this.open.delete(path);
    this.open.set(path, held); // now the most recently used
    held.busy++;
    return held;
  }

  /** A handle of `path`, counted busy until `release`d. */
  async acquire(path: string): Promise<Held> {
    for (;;) {
      const held = this.open.get(path);
      if (held) {
        this.open.delete(path);
        this.open.set(path, held); // now the most recently used
        held.busy++;
        return held;
      }
      if (this.open.size < MAX_HANDLES || this.evict()) {
        const fresh: Held = { fh: open(path, 'r'), busy: 1 };
        fresh.fh.then((fh) => (fresh.handle = fh), () => undefined);
        this.open.set(path, fresh);
        fresh.fh.catch(() => this.open.get(path) === fresh && this.open.delete(path)); // a later read tries again
        return fresh;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  release(held: Held): void {
    if (--held.busy === 0) this.waiting.shift()?.();
  }

  /** Closes every handle (no read is using them). */
  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((h) => h.fh.then((fh) => fh.close()).catch(() => undefined)));
  }

  /** Closes the least recently used idle handle; false when every one is busy. */
  private evict(): boolean {
    for (const [path, h] of this.open) {
      if (h.busy > 0) continue;
      this.open.delete(path);
      void h.fh.then((fh) => fh.close()).catch(() => undefined);
      return true;
    }
    return false;
  }
}

/** What ContentFile says of a `.contents` that ends before a file the index places in it. */
function truncated(path: string): VmimgError {
  return new VmimgError(ErrorCode.INVALID_INDEX, `${path} is shorter than its index says`, { hint: 'delete the layer files and pull the image again' });
}

/** `views` without their first `n` bytes. */
function rest(views: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < views.length && n >= views[i]!.length) n -= views[i++]!.length;
  const left = views.slice(i);
  if (n > 0) left[0] = left[0]!.subarray(n);
  return left;
}
