/**
 * A ContainerFS content reader for a layer whose `.contents` fills on demand from ranges of its gzip
 * blob (docs/FORMAT.md "`.spans`"): a read maps `.contents` positions to files, files to tar ranges,
 * tar ranges to spans; missing spans are fetched with one range request per run of adjacent spans,
 * verified (span sha256) before they are inflated, and written into `.contents` at each file's offset.
 * Concurrent reads of one span share its fetch. A source that ignores Range sends the whole blob:
 * it is verified against the layer digest and fills everything, with a warning, never wrong bytes.
 * A verified span that does not inflate from its checkpoint (a wrong `.zran`) falls back the same way.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import type { ContentReader } from '../vfs/content.js';
import type { BlobStore } from '../store/blob-store.js';
import { BlobCopy } from './blob-copy.js';
import { firstEndingAfter, spanAt, writePlan, type FileTable, type Placed } from './placed-files.js';
import { emptyStats, type LazyStats, type RangeSource } from './lazy-types.js';
import { placeWholeBlob } from './whole-blob.js';
import { resolveLimits, type LayerLimits } from '../layer/limits.js';
import { ReadAhead, readAheadBytes } from './read-ahead.js';
import { spanRecord } from './span-inflate.js';
import { placeSpans, warmSpanPool } from './span-pool.js';
import { SpanMap } from './span-map.js';
import { fetchOnce, SpanLocks } from './span-lock.js';
import { spanRange, type ZranIndex } from './zran-format.js';

export { emptyStats, type LazyStats, type RangeAnswer, type RangeSource } from './lazy-types.js';

/** Inputs of {@link LazyContent.open}. */
export interface LazyContentOptions {
  /** The layer's checkpoints; without one (a blob under 10 MiB) the first read fetches the blob whole. */
  zran?: ZranIndex;
  /** The layer's file table (from its `.idx` version 2: `fileTable`), or how to read it (on the first read: `ls` never needs it). */
  files: FileTable | (() => Promise<FileTable>);
  /** `sha256:` digest of the gzip blob. */
  digest: string;
  /** The sparse `.contents` file (created at its full size by the caller) and its `.spans` map. */
  contentsPath: string;
  spansPath: string;
  source: RangeSource;
  warn?: (message: string) => void;
  /** Keep the fetched compressed bytes here (blob-copy.ts), so {@link LazyContent.fillBlob} fetches only the rest. */
  blobCopyPath?: string;
  /** Compressed bytes fetched ahead of a sequential reader (default: `limits.lazyReadAheadBytes`, 16 MiB; 0: off). */
  readAheadBytes?: number;
  /** The blob's size and the limits a whole-blob fill is held to (expansion and `maxZstdWindow`: an eager pull's; defaults if unset). */
  blobSize?: number;
  limits?: Partial<LayerLimits>;
}

/** Spans fetched per request while filling (4 MiB spans: at most 64 MiB in memory). */
const FILL_BATCH = 16;

/**
 * The lazy ContentReader of one layer. `open` it with the layer's `.zran`, `.idx` v2 file table and a RangeSource;
 * errors: ERR_DIGEST_MISMATCH (a span or a whole file that does not match), ERR_REGISTRY_ERROR, network codes.
 */
export class LazyContent implements ContentReader {
  readonly stats: LazyStats = emptyStats();
  /** Files by `.contents` offset (which is also tar order); filled by `ready`. */
  private files: Placed[] = [];
  private loaded: Promise<void> | undefined;
  /** Spans being fetched: each resolves once its bytes are in `.contents` (readable, not yet synced). */
  private readonly inflight = new Map<number, Promise<void>>();
  /** Of the spans being fetched, how many of each one's tar bytes are in `.contents` so far. */
  private readonly reached = new Map<number, number>();
  /** Reads waiting for part of a span being fetched. */
  private readonly watchers = new Set<Watcher>();
  /** Fetches under way (close waits for them). */
  private readonly runs = new Set<Promise<void>>();
  /** Spans this process placed: readable now, their `.spans` bits set once synced. */
  private readonly here: Uint8Array;
  /** Spans this process is fetching, against other processes. */
  private readonly locks: SpanLocks;
  private readonly ahead: ReadAhead;
  private whole: Promise<void> | undefined;
  private fh: Promise<FileHandle> | undefined;
  private copy: Promise<BlobCopy | undefined> | undefined;

  private constructor(
    private readonly opts: LazyContentOptions,
    private readonly map: SpanMap,
  ) {
    const zran = opts.zran;
    const count = zran?.checkpoints.length ?? 1;
    this.here = new Uint8Array(Math.ceil(count / 8));
    this.locks = new SpanLocks(opts.spansPath);
    const bytes = (i: number): number => (zran === undefined ? 0 : spanRange(zran, i).cEnd - spanRange(zran, i).cStart);
    this.ahead = new ReadAhead(bytes, count, zran === undefined ? 0 : (opts.readAheadBytes ?? readAheadBytes()));
  }

  /** Span `i` is in `.contents`: synced (its bit) or placed by this process. */
  private has(i: number): boolean {
    return this.map.has(i) || (this.here[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  /** The file table (read now if it was deferred). */
  private ready(): Promise<void> {
    this.loaded ??= (async () => {
      const table = typeof this.opts.files === 'function' ? await this.opts.files() : this.opts.files;
      // Neither span reads nor a whole-blob fill (both place tar bytes by offset) can place a sparse
      // file's stored segments: its data would land at the wrong offsets (breaker, session 13: wrong
      // bytes streamed, then the spans marked present over them). `pull --lazy` pulls such layers
      // whole; one placed lazily by an older vmimg is refused here, before anything is fetched.
      if (table.sparse) {
        throw new VmimgError(ErrorCode.INVALID_IMAGE, `layer ${this.opts.digest} holds sparse files, which are not read lazily`, {
          hint: 'pull the image again without --lazy: an eager pull converts the layer in place',
        });
      }
      this.files = table.files;
    })();
    return this.loaded;
  }

  /** Opens the reader, loading the `.spans` map if one exists. */
  static async open(opts: LazyContentOptions): Promise<LazyContent> {
    const spanCount = opts.zran?.checkpoints.length ?? 1;
    return new LazyContent(opts, await SpanMap.load(opts.spansPath, opts.digest, spanCount));
  }

  /** The kept compressed copy (opened on the first fetch; started only while no span is present). */
  private copyOf(): Promise<BlobCopy | undefined> {
    const path = this.opts.blobCopyPath;
    const size = this.opts.zran?.compressedSize;
    this.copy ??= path === undefined || size === undefined ? Promise.resolve(undefined) : BlobCopy.open(path, size, this.map.none);
    return this.copy;
  }

  /**
   * Completes the layer's blob from the kept compressed copy: fetches (as reads would: verified,
   * inflated, placed) only the spans not present, then stores the blob in `store`, checked against its
   * digest. False when no copy is kept (the caller downloads the blob whole).
   */
  async fillBlob(store: BlobStore, signal?: AbortSignal): Promise<boolean> {
    const zran = this.opts.zran;
    if (zran === undefined || (await this.copyOf()) === undefined) return false;
    await this.ready();
    const missing = this.map.complete ? [] : zran.checkpoints.map((_, i) => i).filter((i) => !this.map.has(i));
    for (let k = 0; k < missing.length && !this.map.complete; k += FILL_BATCH) {
      signal?.throwIfAborted();
      await Promise.all(this.request(missing.slice(k, k + FILL_BATCH)));
    }
    await this.settled(); // read-ahead still writing its bits
    const copy = (await this.copyOf())!;
    // The first gzip header precedes every span: no read fetched it.
    const head = await this.opts.source.read(0, spanRange(zran, 0).cStart);
    if (head.kind === 'whole') return (head.stream.destroy(), false);
    await copy.write(0, head.bytes);
    this.copy = undefined;
    await copy.commit(store, this.opts.digest, zran.compressedSize);
    return true;
  }

  /**
   * Every span present and recorded: the `.contents` is complete. A read returns as soon as its own
   * bytes of its spans are written, before the run that fetched them has placed the rest, synced and set
   * its bits (read-ahead may still be under way), so after a last read this can be false until
   * `settled()` resolves.
   */
  get complete(): boolean {
    return this.map.complete;
  }

  /** Resolves when every fetch under way (reads' and read-ahead's) has synced its bytes and set its span bits; never rejects. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.runs]);
  }

  async readInto(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    await this.ready();
    const spans = this.spansFor(position, position + length);
    const missing = spans.filter((i) => !this.has(i));
    this.stats.firstReadAt ??= new Date().toISOString();
    const missed = missing.some((i) => !this.inflight.has(i));
    const started = this.request(missing);
    // with spans, a read waits only for its own bytes of each: the start of a span lands before its end
    const waits = this.opts.zran === undefined ? started : this.readable(missing, this.tarEnd(position, position + length));
    if (spans.length > 0) this.readAhead(spans[0]!, spans[spans.length - 1]!, missed);
    if (missing.length === 0) this.stats.readHits++;
    else {
      this.stats.readMisses++;
      const t = performance.now();
      await Promise.all(waits);
      const ms = performance.now() - t;
      this.stats.missMs += ms;
      this.stats.maxMissMs = Math.max(this.stats.maxMissMs, ms);
    }
    const fh = await this.handle();
    const { bytesRead } = await fh.read(buffer, offset, length, position);
    if (bytesRead < length) buffer.fill(0, offset + bytesRead, offset + length); // the sparse tail
    this.verifyWhole(buffer.subarray(offset, offset + length), position);
  }

  /**
   * A file read whole in one call is checked against its `.idx` sha256 the first time: spans are
   * verified against the `.zran`, this checks the `.idx` that placed their bytes (a published index).
   */
  private verifyWhole(bytes: Uint8Array, position: number): void {
    const f = this.files[this.fileAt(position)];
    if (f === undefined || f.verified || f.offset !== position || f.size !== bytes.length || f.sha256 === undefined) return;
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== f.sha256) {
      throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `the file at .contents offset ${f.offset} of ${this.opts.digest} does not match its index sha256`, {
        details: { expected: `sha256:${f.sha256}`, actual: `sha256:${actual}` },
      });
    }
    f.verified = true;
  }

  /**
   * Reads every file of the layer (fetching what is missing) and checks it against its `.idx` sha256,
   * 8 MiB at a time; the first that differs is ERR_DIGEST_MISMATCH. What `vmimg validate` does for a lazy layer.
   */
  async verifyAll(signal?: AbortSignal): Promise<{ files: number; bytes: number }> {
    await this.ready();
    const buf = Buffer.alloc(8 << 20);
    let bytes = 0;
    for (const f of this.files) {
      signal?.throwIfAborted();
      const hash = createHash('sha256');
      for (let at = 0; at < f.size; at += buf.length) {
        const n = Math.min(buf.length, f.size - at);
        await this.readInto(buf, 0, n, f.offset + at);
        hash.update(buf.subarray(0, n));
      }
      const actual = hash.digest('hex');
      if (f.sha256 !== undefined && actual !== f.sha256) {
        throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `the file at .contents offset ${f.offset} of ${this.opts.digest} does not match its index sha256`, {
          details: { expected: `sha256:${f.sha256}`, actual: `sha256:${actual}` },
        });
      }
      f.verified = true;
      bytes += f.size;
    }
    return { files: this.files.length, bytes };
  }

  /** The tar offset just past the last tar byte `.contents` range `[from, to)` holds (0: none). */
  private tarEnd(from: number, to: number): number {
    let end = 0;
    for (let k = this.fileAt(from); k < this.files.length && this.files[k]!.offset < to; k++) {
      const f = this.files[k]!;
      end = Math.max(end, f.tarOffset + Math.min(f.size, to - f.offset));
    }
    return end;
  }

  /**
   * Per span of `spans` (each present or being fetched), a promise settled once its tar bytes before
   * `tarEnd` are in `.contents`: the span's run reports them as they land (span-pool.ts `progress`), or
   * the whole span is placed; a failed run rejects it.
   */
  private readable(spans: number[], tarEnd: number): Promise<void>[] {
    const zran = this.opts.zran!;
    return spans.map(async (i) => {
      const whole = this.inflight.get(i);
      if (whole === undefined) return; // placed meanwhile (joined a run that had it)
      const { uStart, uEnd } = spanRange(zran, i);
      const need = Math.min(tarEnd, uEnd) - uStart;
      if ((this.reached.get(i) ?? 0) >= need) return;
      let watcher: Watcher | undefined;
      const far = new Promise<void>((resolve) => this.watchers.add((watcher = { span: i, need, resolve })));
      try {
        await Promise.race([whole, far]);
      } finally {
        this.watchers.delete(watcher!);
      }
    });
  }

  /** Span `i`'s run has its first `upTo` tar bytes in `.contents`: the reads waiting for no more go on. */
  private progress(i: number, upTo: number): void {
    this.reached.set(i, upTo);
    for (const w of this.watchers) {
      if (w.span === i && w.need <= upTo) {
        this.watchers.delete(w);
        w.resolve();
      }
    }
  }

  /** Span indexes holding the tar bytes of `.contents` range `[from, to)`. */
  private spansFor(from: number, to: number): number[] {
    const zran = this.opts.zran;
    if (zran === undefined) return [0];
    const out = new Set<number>();
    for (let k = this.fileAt(from); k < this.files.length && this.files[k]!.offset < to; k++) {
      const f = this.files[k]!;
      const a = f.tarOffset + Math.max(0, from - f.offset);
      const b = f.tarOffset + Math.min(f.size, to - f.offset);
      if (a >= b) continue;
      for (let i = spanAt(zran, a); i < zran.checkpoints.length && zran.checkpoints[i]!.uOff < b; i++) out.add(i);
    }
    return [...out].sort((x, y) => x - y);
  }

  /** The first file ending after `.contents` position `pos`. */
  private fileAt(pos: number): number {
    return firstEndingAfter(this.files, pos, 'offset');
  }

  /** Fetches the spans of `[lo, hi]`'s read-ahead window that are missing (not awaited: a reader that needs one waits for it). */
  private readAhead(lo: number, hi: number, missed: boolean): void {
    if (this.opts.zran === undefined) return;
    const ahead = this.ahead.after(lo, hi, missed, (i) => this.has(i) || this.inflight.has(i));
    this.stats.spansReadAhead += ahead.length;
    for (const p of this.request(ahead)) p.catch(() => undefined); // a failed read-ahead is retried by the read that needs it
  }

  /**
   * Starts fetching the missing `spans` (one range request per run of adjacent spans; spans already on
   * their way are joined) and returns what to await: one promise per span, settled when its bytes are readable.
   */
  private request(spans: number[]): Promise<void>[] {
    if (spans.length === 0) return [];
    if (this.opts.zran === undefined) return [this.fillWhole()];
    const waits: Promise<void>[] = [];
    const todo: number[] = [];
    for (const i of spans) {
      const pending = this.inflight.get(i);
      if (pending) waits.push(pending);
      else if (!this.has(i)) todo.push(i);
    }
    for (let s = 0; s < todo.length; ) {
      let e = s;
      while (e + 1 < todo.length && todo[e + 1] === todo[e]! + 1) e++;
      waits.push(...this.launch(todo[s]!, todo[e]!));
      s = e + 1;
    }
    return waits;
  }

  /** One range request for spans `[first, last]`; a promise per span (a failed run is forgotten: the next read tries again). */
  private launch(first: number, last: number): Promise<void>[] {
    const done = Array.from({ length: last - first + 1 }, () => deferred());
    for (let i = first; i <= last; i++) this.inflight.set(i, done[i - first]!.promise);
    const run = this.fetchRun(first, last, (i) => {
      done[i - first]!.resolve();
      this.inflight.delete(i);
    }).then(
      () => done.forEach((d) => d.resolve()),
      (err: unknown) => done.forEach((d) => d.reject(err)),
    );
    const forget = run.finally(() => {
      for (let i = first; i <= last; i++) {
        if (this.inflight.get(i) === done[i - first]!.promise) this.inflight.delete(i);
        this.reached.delete(i);
      }
      this.runs.delete(forget);
    });
    this.runs.add(forget);
    return done.map((d) => d.promise);
  }

  /** Spans `[first, last]` made present, each fetched once across processes (span-lock.ts). */
  private fetchRun(first: number, last: number, placed: (i: number) => void): Promise<void> {
    const fetcher = { map: this.map, locks: this.locks, fetch: (a: number, b: number, p: (i: number) => void) => this.fetchSpans(a, b, p), waited: (n: number) => (this.stats.spansWaited += n) };
    return fetchOnce(fetcher, first, last, placed);
  }

  /**
   * Fetches spans `[first, last]` in one request and hands the bytes to the span pool, which verifies,
   * inflates and writes each span off this thread, calling `placed(i)` as it lands; then syncs the
   * bytes and sets the spans' bits.
   */
  private async fetchSpans(first: number, last: number, placed: (i: number) => void): Promise<void> {
    const zran = this.opts.zran!;
    const start = spanRange(zran, first).cStart;
    const end = spanRange(zran, last).cEnd;
    this.stats.rangeRequests++;
    warmSpanPool(); // while the request is out
    const answer = await this.opts.source.read(start, end);
    if (answer.kind === 'whole') {
      this.opts.warn?.(`the registry ignored a Range request for ${this.opts.digest}: fetching the whole blob`);
      return this.fillWhole(answer.stream);
    }
    if (answer.bytes.length !== end - start) throw new VmimgError(ErrorCode.REGISTRY_ERROR, `range ${start}-${end - 1} of ${this.opts.digest}: got ${answer.bytes.length} bytes`);
    this.stats.rangeBytes += answer.bytes.length;
    const fh = await this.handle();
    const copy = await this.copyOf();
    await copy?.write(start, answer.bytes, false); // before the bytes move to the worker; synced below
    const spans = [];
    for (let i = first; i <= last; i++) spans.push({ record: spanRecord(zran, i), plan: writePlan(this.files, spanRange(zran, i).uStart, spanRange(zran, i).uEnd - spanRange(zran, i).uStart) });
    const t = performance.now();
    try {
      await placeSpans({ fd: fh.fd, start, bytes: answer.bytes, spans }, (i) => {
        this.here[i >> 3]! |= 1 << (i & 7);
        this.stats.spansFetched++;
        this.stats.spansVerified++;
        placed(i);
      }, (i, upTo) => this.progress(i, upTo));
    } catch (err) {
      // verified bytes that do not inflate from their checkpoint: the index is wrong, not the blob
      if ((err as { code?: string }).code !== ErrorCode.INVALID_INDEX) throw err;
      this.opts.warn?.(`${(err as Error).message}: fetching the whole blob`);
      return this.fillWhole();
    }
    this.stats.inflateMs += performance.now() - t;
    await copy?.write(0, new Uint8Array(0)); // syncs the copy
    await fh.datasync(); // bytes first, then the bits that vouch for them
    for (let i = first; i <= last; i++) this.map.set(i);
    await this.map.save();
  }

  /** The whole blob, verified against the layer digest, inflated into every file; all spans present. */
  private fillWhole(stream?: Readable): Promise<void> {
    this.whole ??= this.fetchWhole(stream).finally(() => (this.whole = undefined));
    return this.whole;
  }

  private async fetchWhole(given: Readable | undefined): Promise<void> {
    this.stats.wholeBlobFetches++;
    let stream = given;
    if (stream === undefined) {
      const answer = await this.opts.source.read(0, Number.MAX_SAFE_INTEGER);
      stream = answer.kind === 'whole' ? answer.stream : Readable.from([answer.bytes]);
    }
    const fh = await this.handle();
    const copy = await this.copyOf();
    const limits = resolveLimits(this.opts.limits);
    await placeWholeBlob(stream, { digest: this.opts.digest, files: this.files, fh, copy, counted: (n) => (this.stats.rangeBytes += n), limits, blobSize: this.opts.blobSize });
    this.map.setAll();
    await this.map.save();
  }

  private handle(): Promise<FileHandle> {
    this.fh ??= open(this.opts.contentsPath, 'r+');
    return this.fh;
  }

  async close(): Promise<void> {
    await this.settled();
    const fh = this.fh;
    const copy = this.copy;
    this.fh = undefined;
    this.copy = undefined;
    await (await fh)?.close();
    await (await copy)?.close();
  }
}

/** A read waiting until span `span`'s first `need` tar bytes are in `.contents`. */
interface Watcher {
  span: number;
  need: number;
  resolve: () => void;
}

/** A promise with its settle functions. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // read-ahead spans nobody awaits may fail
  return { promise, resolve, reject };
}
