/**
 * A layer blob's tar bytes for the flattener, with the tar's hash stream set up (layer-hashes.ts): a
 * gzip blob is gunzipped by the inflate pool straight into that stream's ring (inflate-pool.ts; with
 * `checkpoints`, building them in the same inflate); a zstd blob goes through decompress.ts, and a plain
 * one is its own tar, both copied into the ring as they are read — but a plain blob lying in a file is
 * read by the thread pool straight into the ring.
 */
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import type { FileRegion } from '../util/file-region.js';
import type { HashStream } from '../util/hash-pool.js';
import { decompress, sniffCompression } from './decompress.js';
import { inflateToRing, sharedInflatePool, type RingCheckpoints, type RingReader } from './inflate-pool.js';
import { flattenPool, type CountedStream } from './layer-hashes.js';
import { ringFor } from '../util/hash-pool.js';

/** Smallest tar ring: the tar reader's largest single read (1 MiB of extended header) plus room to go on. */
const MIN_TAR_RING = 2 << 20;

/**
 * The tar's chunks; `ring`: they view the inflate ring (see ByteReader's `copy`). `close` stops the
 * source; `closed` (a file region's source) settles once no read of it writes the ring any more.
 */
export interface TarSource {
  chunks: AsyncIterator<Buffer>;
  ring: boolean;
  close(): void;
  closed?: Promise<void>;
}

/** How `openTar` reads a blob. */
export interface OpenTarOptions {
  /** The blob's size when known: sizes the rings. */
  compressedSize?: number;
  /** A gzip blob's inflate also builds its gzip checkpoints. */
  checkpoints?: RingCheckpoints;
  /** The tar's sha256 is checked (a diff_id is expected), so the inflate pool computes no CRC-32 of it. */
  outputChecked?: boolean;
  /** A zstd frame's largest window, bytes (LayerLimits.maxZstdWindow). */
  maxZstdWindow?: number;
  /**
   * Where the blob's bytes lie in a file, when they do: a plain blob is then read from there straight
   * into the tar's ring ({@link readRegionToRing}), and `blobChunks` is read for its head only.
   */
  region?: FileRegion;
  /** With `region`: called with the bytes read so far, as they are read. */
  onRead?: (bytes: number) => void;
}

/**
 * Sniffs the blob's first bytes and opens its tar, counted (and hashed) in `tar`; `ring` is how a gzip
 * tar's reader lets go of the inflate ring, `readerAt` how far a copied tar's reader has come.
 * `blobChunks` is read with `next()` only, never returned: after a failure the rest may still be read.
 */
export async function openTar(blobChunks: AsyncIterator<Buffer>, tar: CountedStream, ring: RingReader, readerAt: () => number, opts: OpenTarOptions = {}): Promise<TarSource> {
  const { compressedSize = Infinity, checkpoints, outputChecked = false } = opts;
  const head = await readHead(blobChunks);
  const blob = replay(head.bytes, head.ended ? undefined : blobChunks);
  const kind = sniffCompression(head.bytes);
  if (kind === 'gzip') {
    // rings sized to the blob (a small layer needs no 8 MiB of fresh shared memory), the tar's at least
    // MIN_TAR_RING: a tar reader's single read (a 1 MiB extended header) must fit in it whole
    const ringBytes = Math.max(MIN_TAR_RING, ringFor(compressedSize * 4));
    tar.stream = flattenPool().stream({ whole: true, ranges: true, shared: true, ringBytes });
    const chunks = counted(inflateToRing(blob, tar.stream, ring, ringFor(compressedSize), sharedInflatePool(), checkpoints, !outputChecked), tar);
    return { chunks, ring: true, close: () => void chunks.return(undefined).catch(() => undefined) };
  }
  if (kind === 'none' && opts.region !== undefined) {
    tar.stream = flattenPool().stream({ whole: true, ranges: true, shared: true, ringBytes: Math.max(MIN_TAR_RING, ringFor(opts.region.length)) });
    const chunks = counted(readRegionToRing(opts.region, tar.stream, ring, opts.onRead), tar);
    const source: TarSource = {
      chunks,
      ring: true,
      close: () => void (source.closed ??= chunks.return(undefined).then(() => undefined, () => undefined)),
    };
    return source;
  }
  tar.stream = flattenPool().stream({ whole: true, ranges: true });
  tar.releaseTo = readerAt; // the tar's bytes are copied into the ring: writes view the source's chunks
  if (kind === 'none') {
    // A plain blob is its tar: read as the reader asks (never ahead of it, so ranges cannot race
    // the pushes), and its stream's digest is the blob's digest as well as the diff_id.
    const chunks = tar.tap(blob);
    return { chunks, ring: false, close: () => void chunks.return(undefined).catch(() => undefined) };
  }
  const stream = decompress(Readable.from(blob, { objectMode: false, highWaterMark: 1024 * 1024 }), { maxZstdWindow: opts.maxZstdWindow });
  return { chunks: tar.tap(stream)[Symbol.asyncIterator](), ring: false, close: () => stream.destroy() };
}

/** Bytes per read of a file region into the ring. */
const REGION_READ = 1 << 20;

/**
 * The bytes of `region` (a plain tar lying in a file: a `docker save` member, a layout's blob), read by
 * the thread pool straight into `out`'s ring (a fresh hash stream made with `shared`), one read ahead
 * of the reader, and yielded as views of the ring that stay valid until `reader.releaseTo()` passes
 * them, as {@link inflateToRing}'s do. Read as a stream, each 1 MiB chunk was a fresh buffer (garbage
 * for the collector) copied again into the ring on the main thread (issue 13: `load`).
 * ERR_INVALID_ARCHIVE when the file ends before the region does (it shrank since it was listed).
 */
export async function* readRegionToRing(region: FileRegion, out: HashStream, reader: RingReader, onRead?: (bytes: number) => void): AsyncGenerator<Buffer> {
  if (out.length !== 0) throw new VmimgError(ErrorCode.INTERNAL, 'readRegionToRing: the hash stream is not fresh');
  const { sab, offset, size } = out.sharedRing;
  const ring = Buffer.from(sab, offset, size);
  const fh = await open(region.path, 'r');
  /** Stream offset where the next read goes (reads run at most one ahead of `out.length`). */
  let next = 0;
  let pending: Promise<number> | undefined;
  let answered: (() => void) | undefined;
  out.onAnswer = () => {
    const wake = answered;
    answered = undefined;
    wake?.();
  };
  const readAt = async (pos: number, n: number, at: number): Promise<number> => {
    for (let got = 0; got < n; ) {
      const { bytesRead } = await fh.read(ring, pos + got, n - got, region.offset + at + got);
      if (bytesRead === 0) throw new VmimgError(ErrorCode.INVALID_ARCHIVE, `${region.path}: ends inside a layer (${region.length} bytes from byte ${region.offset}; ${at + got} read)`);
      got += bytesRead;
    }
    return n;
  };
  /** Starts the next read when the ring has room for it (below the stream's write limit). */
  const start = (): boolean => {
    out.release(reader.releaseTo());
    const room = Math.min(out.writeLimit - next, region.length - next);
    if (room <= 0) return false;
    const pos = next % size;
    const n = Math.min(room, size - pos, REGION_READ);
    pending = readAt(pos, n, next);
    pending.catch(() => undefined); // a read ahead may fail while the reader parses: awaited (and thrown) in turn
    next += n;
    return true;
  };
  try {
    while (out.length < region.length) {
      if (pending === undefined && !start()) {
        // no room: what the reader holds (queued .contents writes) must go, then the worker frees it
        await reader.unblock();
        if (start()) continue;
        if (next - reader.releaseTo() >= size) throw new VmimgError(ErrorCode.INTERNAL, `tar read: the tar reader holds more than the ${size}-byte ring`);
        const answer = new Promise<void>((resolve) => (answered = resolve));
        out.flush(); // the release above is what the worker must answer (freed lags released: one is due)
        if (!out.isClosed) await answer;
        if (out.isClosed) throw new VmimgError(ErrorCode.ABORTED, `${region.path}: the layer's read stopped (its hash stream was closed)`);
        continue;
      }
      const n = await pending!;
      pending = undefined;
      const pos = out.length % size;
      out.pushWritten(n);
      onRead?.(out.length);
      start(); // the next read runs while the reader parses this one
      yield ring.subarray(pos, pos + n);
    }
  } finally {
    out.onAnswer = undefined;
    await pending?.catch(() => undefined);
    out.writerDone(); // no read of ours writes the ring any more: once the stream ends, it can be reused
    await fh.close();
  }
}

/** At least the first 4 bytes of a blob (fewer only when it is shorter): enough to sniff its compression. */
export async function readHead(it: AsyncIterator<Buffer>): Promise<{ bytes: Buffer; ended: boolean }> {
  let bytes: Buffer = Buffer.alloc(0);
  while (bytes.length < 4) {
    const r = await it.next();
    if (r.done) return { bytes, ended: true };
    bytes = bytes.length === 0 ? r.value : Buffer.concat([bytes, r.value]);
  }
  return { bytes, ended: false };
}

/** `head`, then the rest of `it` (which is never returned). */
export async function* replay(head: Buffer, it: AsyncIterator<Buffer> | undefined): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  if (it === undefined) return;
  for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
}

/** Counts the tar's bytes (the ring's are hashed by the stream already). */
async function* counted(chunks: AsyncGenerator<Buffer>, tar: CountedStream): AsyncGenerator<Buffer> {
  try {
    for (let r = await chunks.next(); !r.done; r = await chunks.next()) {
      tar.n += r.value.length;
      yield r.value;
    }
  } finally {
    await chunks.return(undefined);
  }
}
