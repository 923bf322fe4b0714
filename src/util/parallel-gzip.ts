/**
 * gzip on every core: the input is cut into blocks that the thread pool deflates at once, each primed
 * with the last 32 KiB of the block before it as its dictionary and ended with a sync flush (an empty
 * stored block: byte-aligned, not final), so their raw deflate streams, concatenated after one gzip
 * header and before one trailer (CRC-32 and size of the whole input), are one ordinary gzip member that
 * any gunzip reads, and that compresses within a fraction of a percent of one single-thread stream
 * (back-references reach into the previous block). This is pigz's scheme (Mark Adler, pigz.c: "parallel
 * compression"), built on node:zlib's one-shot `deflateRaw` with `dictionary` and `finishFlush`.
 * A single-thread `createGzip` at level 6 compresses ~25 MB/s here, the export's whole cost: an
 * initramfs of the Debian bench image took 8 s of `gzip -6` (issue 13's initramfs goal).
 * Memory is bounded: at most `inFlight` blocks (input and output) are held at once.
 */
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { constants, crc32, deflateRaw } from 'node:zlib';

/** Bytes of input per block (pigz: 128 KiB; larger blocks spread each zlib handle's set-up wider). */
export const GZIP_BLOCK_BYTES = 1 << 20;
/** deflate's window: the dictionary each block gets from the one before. */
const WINDOW = 32 << 10;
/** gzip header (RFC 1952 §2.3): magic, deflate, no flags, no mtime, no extra flags, OS 3 (Unix), as `gzip -c` of a pipe writes it. */
const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);

export interface ParallelGzipOptions {
  /** zlib level 0-9 (default 6, gzip's). */
  level?: number;
  /** Blocks deflating at once (default: one more than the machine's available parallelism, so the pool never waits on this thread). */
  inFlight?: number;
  /** Input bytes per block (default {@link GZIP_BLOCK_BYTES}). */
  blockBytes?: number;
}

/** A Transform writing the gzip of what is written to it, deflated in blocks on the thread pool (see the module comment). */
export class ParallelGzip extends Transform {
  private readonly level: number;
  private readonly inFlight: number;
  private readonly blockBytes: number;
  /** The block being gathered (input is copied in: a writer may reuse its buffers once called back), and its fill. */
  private block: Buffer | undefined;
  private filled = 0;
  /** Blocks whose deflate finished, for reuse (fresh memory is costly to touch). */
  private readonly spare: Buffer[] = [];
  /** The last WINDOW bytes of the previous block's input. */
  private dictionary: Buffer | undefined;
  private crc = 0;
  private size = 0;
  /** Blocks deflating, in output order. */
  private readonly pending: Promise<Buffer>[] = [];

  constructor(options: ParallelGzipOptions = {}) {
    super();
    this.level = options.level ?? 6;
    this.inFlight = Math.max(1, options.inFlight ?? availableParallelism() + 1);
    this.blockBytes = options.blockBytes ?? GZIP_BLOCK_BYTES;
    this.push(HEADER);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    for (let at = 0; at < chunk.length; ) {
      this.block ??= this.spare.pop() ?? Buffer.allocUnsafeSlow(this.blockBytes);
      const n = chunk.copy(this.block, this.filled, at, Math.min(chunk.length, at + this.blockBytes - this.filled));
      this.filled += n;
      at += n;
      if (this.filled === this.blockBytes) this.deflate(false);
    }
    this.drain(this.inFlight - 1).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    this.deflate(true);
    this.drain(0).then(() => {
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.size % 2 ** 32, 4); // ISIZE: the input's size modulo 2^32
      callback(null, trailer);
    }, callback);
  }

  /** Starts deflating the gathered block; `last` ends the stream (BFINAL), even for an empty block. */
  private deflate(last: boolean): void {
    const block = this.block;
    const input = block === undefined ? Buffer.alloc(0) : block.subarray(0, this.filled);
    this.block = undefined;
    this.filled = 0;
    this.crc = crc32(input, this.crc);
    this.size += input.length;
    const options = { level: this.level, finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH, chunkSize: 64 << 10, ...(this.dictionary ? { dictionary: this.dictionary } : {}) };
    if (input.length > 0) this.dictionary = Buffer.from(input.subarray(Math.max(0, input.length - WINDOW))); // the block goes back to `spare`
    const done = new Promise<Buffer>((resolve, reject) =>
      deflateRaw(input, options, (err, out) => {
        if (block !== undefined) this.spare.push(block);
        if (err) reject(err);
        else resolve(out);
      }),
    );
    done.catch(() => undefined); // awaited in order by drain; a failure surfaces there
    this.pending.push(done);
  }

  /** Pushes finished blocks, in order, until at most `keep` are deflating. */
  private async drain(keep: number): Promise<void> {
    while (this.pending.length > keep) this.push(await this.pending.shift()!);
  }
}
