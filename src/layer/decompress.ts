/**
 * Layer decompression, sniffed from the first bytes (never from media types or file names:
 * `docker save` layers are plain tars whatever their descriptors say).
 */
import { Readable, Transform, type TransformCallback, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { Decompress } from 'fzstd';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Needs the first 4 bytes (fewer bytes can only be plain tar or garbage). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** Streaming zstd decoder: node:zlib's when this Node has one (>= 22.15), fzstd otherwise. */
export function createZstdDecompressor(): Transform {
  const native = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  return typeof native === 'function' ? native() : new FzstdTransform();
}

/**
 * Compressed bytes handed to fzstd per call. fzstd decodes synchronously and emits every block the call
 * completes, and a zstd RLE block turns 4 bytes into up to 128 KiB (RFC 8878 §3.1.1.2: Block_Maximum_Size),
 * so one call can emit at most 32 KiB per byte fed: 128 bytes → 4 MiB. A whole 64 KiB read chunk of RLE
 * blocks was 2 GiB in one call, in memory before the flattener's ratio limit saw a byte of it. Feeding
 * 128 bytes at a time costs nothing measurable: fzstd only queues input until a whole block has arrived.
 */
const FZSTD_SLICE_BYTES = 128;

/**
 * fzstd's push-based decoder as a Transform that honours backpressure inside an input chunk: the chunk is
 * fed in slices of FZSTD_SLICE_BYTES, and feeding stops while `push()` says the readable side is full,
 * resuming when the consumer calls `_read`. Memory is bounded by the readable high-water mark plus one
 * slice's output, whatever the compression ratio.
 */
class FzstdTransform extends Transform {
  private readonly decoder: Decompress;
  private sawInput = false;
  /** Set when `push()` returned false: stop feeding until `_read`. */
  private full = false;
  /** The chunk being fed, how far, and its write callback (called once the whole chunk is fed). */
  private pending: { chunk: Buffer; offset: number; done: TransformCallback } | undefined;

  constructor() {
    super({ readableHighWaterMark: 1024 * 1024 });
    this.decoder = new Decompress((data) => {
      if (data.length > 0 && !this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) this.full = true;
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length > 0) this.sawInput = true;
    this.pending = { chunk, offset: 0, done: callback };
    this.feed();
  }

  override _read(size: number): void {
    this.full = false;
    if (this.pending !== undefined) this.feed();
    else super._read(size);
  }

  private feed(): void {
    const p = this.pending!;
    try {
      while (p.offset < p.chunk.length) {
        if (this.full) return; // _read resumes
        const end = Math.min(p.offset + FZSTD_SLICE_BYTES, p.chunk.length);
        this.decoder.push(p.chunk.subarray(p.offset, end));
        p.offset = end;
      }
    } catch (err) {
      this.pending = undefined;
      p.done(zstdError(err));
      return;
    }
    this.pending = undefined;
    p.done();
  }

  override _flush(callback: TransformCallback): void {
    try {
      // final=true makes fzstd throw on a frame cut short.
      if (this.sawInput) this.decoder.push(new Uint8Array(0), true);
      callback();
    } catch (err) {
      callback(zstdError(err));
    }
  }
}

function zstdError(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  return new Error(`zstd: ${e.message}`, { cause: e });
}

function decoderFor(kind: Compression): Transform | undefined {
  // Bigger chunks and buffer: gunzip keeps working on the threadpool while we hash and parse. 1 MiB output
  // chunks, not 128 KiB: 8× fewer zlib callbacks on the main thread (TESTING-NOTES: the 1 MiB form is 2.5× faster).
  if (kind === 'gzip') return zlib.createGunzip({ chunkSize: 1024 * 1024, highWaterMark: 1024 * 1024 } as zlib.ZlibOptions);
  if (kind === 'zstd') return createZstdDecompressor();
  return undefined;
}

async function* decompressed(source: AsyncIterable<Buffer>, onKind?: (kind: Compression) => void): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let head: Buffer = Buffer.alloc(0);
  let done = false;
  while (head.length < 4 && !done) {
    const r = await it.next();
    if (r.done) done = true;
    else head = head.length === 0 ? r.value : Buffer.concat([head, r.value]);
  }
  const kind = sniffCompression(head);
  onKind?.(kind);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    while (!done) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  const decoder = decoderFor(kind);
  if (decoder === undefined) {
    yield* rest();
    return;
  }
  // pipeline destroys the decoder with the source's error, which the loop below then throws.
  pipeline(Readable.from(rest(), { objectMode: false, highWaterMark: 1024 * 1024 }), decoder, () => {});
  for await (const chunk of decoder) yield chunk as Buffer;
}

/**
 * Returns the tar bytes of `source`, which may be gzip, zstd or plain. Errors of the source or
 * the decoder surface as errors of the returned stream; destroying it releases the source.
 */
export function decompress(source: Readable, onKind?: (kind: Compression) => void): Readable {
  const out = Readable.from(decompressed(source, onKind), { objectMode: false, highWaterMark: 1024 * 1024 });
  out.on('close', () => {
    if (!source.destroyed && !source.readableEnded) source.destroy();
  });
  return out;
}
