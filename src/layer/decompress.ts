/**
 * Layer decompression, sniffed from the first bytes (never from media types or file names:
 * `docker save` layers are plain tars whatever their descriptors say).
 */
import { Duplex, Readable, type Transform, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import { DEFAULT_LIMITS, formatBytes, tooLarge } from './limits.js';
import { ZstdFraming, ZstdWindowTooLarge } from './zstd-framing.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Needs the first 4 bytes (fewer bytes can only be plain tar or garbage). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  // A skippable frame (RFC 8878 §3.1.2, magic 0x184D2A5?) first: pzstd's output starts with one.
  if (head.length >= 4 && (head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd';
  return 'none';
}

/** Options of the zstd decoder. */
export interface ZstdOptions {
  /** The largest frame window accepted, bytes (default DEFAULT_LIMITS.maxZstdWindow, 8 MiB). */
  maxWindow?: number;
}

/** node:zlib's zstd decoder told a window limit (Node >= 22.15), if this Node has one. */
function nativeZstd(): ((maxWindow: number) => Transform) | undefined {
  type NativeZstd = (o: { params: Record<number, number> }) => Transform;
  const native = (zlib as unknown as { createZstdDecompress?: NativeZstd }).createZstdDecompress;
  const windowLogMax = (zlib.constants as Record<string, number>).ZSTD_d_windowLogMax;
  if (typeof native !== 'function' || windowLogMax === undefined) return undefined;
  return (maxWindow) => native({ params: { [windowLogMax]: Math.floor(Math.log2(maxWindow)) } });
}

/**
 * Streaming zstd decoder: node:zlib's when this Node has one (>= 22.15, told the same window limit),
 * fzstd otherwise. A frame declaring a window past `maxWindow` fails with ERR_TOO_LARGE naming
 * maxZstdWindow.
 */
export function createZstdDecompressor(opts: ZstdOptions = {}): Duplex {
  const maxWindow = opts.maxWindow ?? DEFAULT_LIMITS.maxZstdWindow;
  const native = nativeZstd();
  if (native !== undefined) return native(maxWindow);
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    yield* fzstdDecode(source, maxWindow);
  });
}

/**
 * What fzstd may move (window bytes, once per block) per byte it decodes, plus a fixed allowance: a real
 * layer's blocks decode to up to 128 KiB each, so `zstd -19`'s 8 MiB window moves 64 bytes per output byte;
 * 256 leaves room for small blocks, and refuses a stream of tiny blocks in a large window (breaker Z1: an
 * 80 KB layer of 1-byte blocks in an 8 MiB window cost 8.8 CPU-s; 10 MB would be ~20 min) after ~0.1 s.
 */
const MOVED_PER_OUTPUT_BYTE = 256;
const MOVED_ALLOWANCE = 512 * 2 ** 20;

/**
 * Output bytes decoded between turns of the event loop. fzstd is synchronous and a source already in memory
 * (or read ahead) resolves its reads as microtasks, so without a turn a whole layer decodes before any other
 * callback runs: `serve --prepare` answered no client while it flattened a zstd layer (breaker8 Z2). 1 MiB is
 * ~12 ms of fzstd at ~85 MB/s; the turn (a setImmediate) costs microseconds.
 */
export const ZSTD_OUTPUT_PER_TURN = 2 ** 20;

/** Resolves after the event loop has run its pending I/O callbacks and timers once. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A zstd stream whose blocks are too small for its window: decoding it would cost out of all proportion. */
class ZstdBlocksTooSmall extends Error {
  constructor(moved: number, output: number) {
    super(`blocks too small for their window (${moved} bytes of window moves for ${output} bytes decoded: more than ${MOVED_PER_OUTPUT_BYTE}× plus ${MOVED_ALLOWANCE}; no zstd tool writes such a stream)`);
  }
}

/**
 * fzstd's push-based decoder as an async generator over the compressed chunks: pulled, so it decodes only
 * as fast as its output is read. fzstd decodes every block its input completes in one synchronous call, and
 * a zstd RLE block turns 4 bytes into up to 128 KiB (RFC 8878 §3.1.1.2): a 64 KiB read chunk of them was
 * 2 GiB in one call, in memory before the flattener's ratio limit saw a byte. So each chunk is fed up to one
 * block end (or skippable frame, or checksum) at a time (ZstdFraming), and that block's output is yielded
 * before the next is fed: memory is one block's output, whatever the compression ratio. Every
 * {@link ZSTD_OUTPUT_PER_TURN} bytes of output it waits a turn of the event loop, so other work goes on.
 */
async function* fzstdDecode(source: AsyncIterable<Buffer>, maxWindow: number): AsyncGenerator<Buffer> {
  const framing = new ZstdFraming(maxWindow);
  const out: Uint8Array[] = [];
  const decoder = new Decompress((data) => {
    if (data.length > 0) out.push(data);
  });
  let output = 0;
  let turnAt = ZSTD_OUTPUT_PER_TURN;
  let sawInput = false;
  /** One step of ours or fzstd's; their errors (not the source's) become zstd errors. */
  const step = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw zstdError(err, framing);
    }
  };
  for await (const chunk of source) {
    if (chunk.length > 0) sawInput = true;
    for (let pos = 0; pos < chunk.length; ) {
      const end = step(() => framing.next(chunk, pos));
      step(() => decoder.push(chunk.subarray(pos, end)));
      pos = end;
      for (const data of out.splice(0)) {
        output += data.length;
        yield Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      }
      if (framing.moved > MOVED_PER_OUTPUT_BYTE * output + MOVED_ALLOWANCE) throw zstdError(new ZstdBlocksTooSmall(framing.moved, output), framing);
      if (output >= turnAt) {
        turnAt = output + ZSTD_OUTPUT_PER_TURN;
        await nextTurn();
      }
    }
  }
  // final=true makes fzstd throw on a frame cut short.
  if (sawInput) step(() => decoder.push(new Uint8Array(0), true));
  for (const data of out.splice(0)) yield Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function zstdError(err: unknown, framing: ZstdFraming): Error {
  if (err instanceof ZstdWindowTooLarge) {
    return tooLarge('maxZstdWindow', `layer's zstd frame declares a ${formatBytes(err.window)} window, more than ${formatBytes(framing.maxWindow)}`, {
      windowBytes: err.window,
    });
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return new Error(`zstd: ${e.message}`, { cause: e });
}

function decoderFor(kind: Compression, opts: DecompressOptions): Duplex | undefined {
  // Bigger chunks and buffer: gunzip keeps working on the threadpool while we hash and parse. 1 MiB output
  // chunks, not 128 KiB: 8× fewer zlib callbacks on the main thread (TESTING-NOTES: the 1 MiB form is 2.5× faster).
  if (kind === 'gzip') return zlib.createGunzip({ chunkSize: 1024 * 1024, highWaterMark: 1024 * 1024 } as zlib.ZlibOptions);
  if (kind === 'zstd') return createZstdDecompressor({ maxWindow: opts.maxZstdWindow });
  return undefined;
}

async function* decompressed(source: AsyncIterable<Buffer>, opts: DecompressOptions): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let head: Buffer = Buffer.alloc(0);
  let done = false;
  while (head.length < 4 && !done) {
    const r = await it.next();
    if (r.done) done = true;
    else head = head.length === 0 ? r.value : Buffer.concat([head, r.value]);
  }
  const kind = sniffCompression(head);
  opts.onKind?.(kind);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    while (!done) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  if (kind === 'zstd' && nativeZstd() === undefined) {
    yield* fzstdDecode(rest(), opts.maxZstdWindow ?? DEFAULT_LIMITS.maxZstdWindow); // pulled: the source's errors pass through as they are
    return;
  }
  const decoder = decoderFor(kind, opts);
  if (decoder === undefined) {
    yield* rest();
    return;
  }
  // pipeline destroys the decoder with the source's error, which the loop below then throws.
  pipeline(Readable.from(rest(), { objectMode: false, highWaterMark: 1024 * 1024 }), decoder, () => {});
  for await (const chunk of decoder) yield chunk as Buffer;
}

/** Options of `decompress`. */
export interface DecompressOptions {
  /** Told the compression sniffed from the first bytes. */
  onKind?: (kind: Compression) => void;
  /** A zstd frame's largest window, bytes (LayerLimits.maxZstdWindow; default 8 MiB). */
  maxZstdWindow?: number;
}

/**
 * Returns the tar bytes of `source`, which may be gzip, zstd or plain. Errors of the source or
 * the decoder surface as errors of the returned stream (ERR_TOO_LARGE for a zstd window past the
 * limit); destroying it releases the source.
 */
export function decompress(source: Readable, opts: DecompressOptions = {}): Readable {
  const out = Readable.from(decompressed(source, opts), { objectMode: false, highWaterMark: 1024 * 1024 });
  out.on('close', () => {
    if (!source.destroyed && !source.readableEnded) source.destroy();
  });
  return out;
}
