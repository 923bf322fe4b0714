/**
 * A layer blob's tar bytes for the flattener, with the tar's hash stream set up (layer-hashes.ts): a
 * gzip blob is gunzipped by the inflate pool straight into that stream's ring (inflate-pool.ts); zstd
 * and plain blobs, and gzip ones with a decoder of their own (`gunzip`: the checkpoint builder's), go
 * through decompress.ts and are copied into the ring as they are read.
 */
import { Readable, type Transform } from 'node:stream';
import { decompress, sniffCompression } from './decompress.js';
import { inflateToRing, type RingReader } from './inflate-pool.js';
import { flattenPool, type CountedStream } from './layer-hashes.js';
import { ringFor } from '../util/hash-pool.js';

/** The tar's chunks; `ring`: they view the inflate ring (see ByteReader's `copy`). `close` stops the source. */
export interface TarSource {
  chunks: AsyncIterator<Buffer>;
  ring: boolean;
  close(): void;
}

/**
 * Sniffs the blob's first bytes and opens its tar, counted (and hashed) in `tar`. `blobChunks` is read
 * with `next()` only, never returned: after a failure the caller may still read the rest of the blob.
 */
export async function openTar(blobChunks: AsyncIterator<Buffer>, tar: CountedStream, reader: RingReader, compressedSize = Infinity, gunzip?: () => Transform): Promise<TarSource> {
  let head: Buffer = Buffer.alloc(0);
  let ended = false;
  while (head.length < 4 && !ended) {
    const r = await blobChunks.next();
    if (r.done) ended = true;
    else head = head.length === 0 ? r.value : Buffer.concat([head, r.value]);
  }
  const blob = replay(head, ended ? undefined : blobChunks);
  if (sniffCompression(head) === 'gzip' && gunzip === undefined) {
    // rings sized to the blob (a small layer needs no 8 MiB of fresh shared memory); any size works
    tar.stream = flattenPool().stream({ whole: true, ranges: true, shared: true, ringBytes: ringFor(compressedSize * 4) });
    const chunks = counted(inflateToRing(blob, tar.stream, reader, ringFor(compressedSize)), tar);
    return { chunks, ring: true, close: () => void chunks.return(undefined).catch(() => undefined) };
  }
  // A plain blob's bytes go to the tar's stream too: the blob's stream is pushed by its own read
  // loop, ahead of the reader, and ranges on it raced that loop (wrong file digests seen with a
  // 4 MiB ring). The diff_id of a plain blob is still its digest (hashed twice, for now).
  tar.stream = flattenPool().stream({ whole: true, ranges: true });
  tar.releaseTo = reader.releaseTo;
  const stream = decompress(Readable.from(blob, { objectMode: false, highWaterMark: 1024 * 1024 }), undefined, gunzip);
  return { chunks: tar.tap(stream)[Symbol.asyncIterator](), ring: false, close: () => stream.destroy() };
}

/** `head`, then the rest of `it` (which is never returned). */
async function* replay(head: Buffer, it: AsyncIterator<Buffer> | undefined): AsyncGenerator<Buffer> {
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
