/**
 * Inflates one span of a gzip layer from its checkpoint with native zlib (docs/FORMAT.md "Resuming
 * inflation from a checkpoint"). node:zlib has no `inflatePrime`, so a span starting mid-byte gets
 * empty deflate blocks in front that end exactly at its first bit; the window is the raw inflater's dictionary.
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { ErrorCode, VmimgError } from '../errors.js';
import { spanRange, type ZranIndex } from './zran-format.js';
import { zlibInternals } from './zlib-internals.js';

/** Bits written least significant first, as deflate packs them. */
class BitWriter {
  readonly bytes: number[] = [];
  private acc = 0;
  private n = 0;

  /** `count` bits of `value`, low bit first. */
  bits(value: number, count: number): void {
    for (let i = 0; i < count; i++) this.bit((value >>> i) & 1);
  }

  /** A Huffman code, most significant bit first (RFC 1951 3.1.1). */
  code(value: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) this.bit((value >>> i) & 1);
  }

  get length(): number {
    return this.bytes.length * 8 + this.n;
  }

  private bit(b: number): void {
    this.acc |= b << this.n;
    if (++this.n === 8) {
      this.bytes.push(this.acc);
      this.acc = 0;
      this.n = 0;
    }
  }
}

/** A non-final fixed-Huffman block holding only end-of-block: 10 bits, no output. */
function emptyFixedBlock(w: BitWriter): void {
  w.bits(0, 1);
  w.bits(1, 2);
  w.code(0, 7); // symbol 256 is 0000000 in the fixed code
}

/**
 * A non-final dynamic block holding only end-of-block: 95 bits, no output. Its code-length code gives
 * symbol 18 (a run of zeros) 1 bit and symbols 0 and 1 two bits; all 19 code-length lengths are sent.
 */
function emptyDynamicBlock(w: BitWriter): void {
  w.bits(0, 1);
  w.bits(2, 2);
  w.bits(0, 5); // HLIT: 257 literal/length codes
  w.bits(0, 5); // HDIST: 1 distance code
  w.bits(15, 4); // HCLEN: 19 code-length codes
  const order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
  const lengths: Record<number, number> = { 18: 1, 0: 2, 1: 2 };
  for (const sym of order) w.bits(lengths[sym] ?? 0, 3);
  // Canonical codes: 18 → 0, 0 → 10, 1 → 11. Literals 0..255 get length 0, 256 (EOB) length 1, the distance 0.
  w.code(0, 1);
  w.bits(138 - 11, 7);
  w.code(0, 1);
  w.bits(118 - 11, 7);
  w.code(0b11, 2);
  w.code(0b10, 2);
  w.code(0, 1); // end of block: the only literal/length code, length 1
}

/**
 * Makes a span that starts `bits` bits before byte 1 (the unused high bits of byte 0) inflatable by an
 * inflater that starts at a byte boundary, *keeping every later byte boundary where it was* (stored
 * blocks depend on them, so shifting the bytes would not do). The low `8 - bits` bits of byte 0 and
 * whole bytes before it are replaced by empty non-final deflate blocks of exactly that many bits:
 * fixed ones are 10 bits, a dynamic one 95, and 95 + 10k or 10k covers every count modulo 8.
 */
export function alignSpan(span: Uint8Array, bits: number): Buffer {
  return Buffer.concat([alignPrefix(span, bits), span.subarray(1)]);
}

/** The bytes that replace byte 0 of a span starting `bits` bits before byte 1 ({@link alignSpan} is them, then `span.subarray(1)`). */
function alignPrefix(span: Uint8Array, bits: number): Buffer {
  const w = new BitWriter();
  const r = 8 - bits;
  if (r % 2 === 1) emptyDynamicBlock(w);
  while (w.length % 8 !== r) emptyFixedBlock(w);
  w.bits(span[0]! >>> r, bits);
  return Buffer.from(w.bytes);
}

/** What inflating span `i` of a layer needs, without the whole index (a worker is handed only this). */
export interface SpanRecord {
  i: number;
  /** `sha256:` digest of the layer blob (for messages). */
  digest: string;
  /** Its compressed bytes `[cStart, cEnd)` of the blob, and the tar bytes they give. */
  cStart: number;
  cEnd: number;
  want: number;
  bits: number;
  /** The checkpoint's window, raw-deflated, and the length it inflates to. */
  window: Uint8Array;
  winLen: number;
  spanSha256: string;
}

/** Span `i` of `index` as a {@link SpanRecord}. */
export function spanRecord(index: ZranIndex, i: number): SpanRecord {
  const c = index.checkpoints[i]!;
  const r = spanRange(index, i);
  return { i, digest: index.digest, cStart: r.cStart, cEnd: r.cEnd, want: r.uEnd - r.uStart, bits: c.bits, window: c.window, winLen: c.winLen, spanSha256: c.spanSha256 };
}

/** The checkpoint's window, inflated and checked against its recorded length. */
function checkpointWindow(rec: SpanRecord): Buffer {
  if (rec.winLen === 0) return Buffer.alloc(0);
  let w: Buffer;
  try {
    w = zlib.inflateRawSync(rec.window, { maxOutputLength: rec.winLen });
  } catch (err) {
    throw new VmimgError(ErrorCode.INVALID_INDEX, `checkpoint ${rec.i}: the window does not inflate (${(err as Error).message})`, { cause: err });
  }
  if (w.length !== rec.winLen) throw new VmimgError(ErrorCode.INVALID_INDEX, `checkpoint ${rec.i}: window of ${w.length} bytes, expected ${rec.winLen}`);
  return w;
}

/**
 * The tar bytes of the span `rec` describes, given its compressed bytes `[cStart, cEnd)`. The span's
 * sha256 is checked first: a mismatch is ERR_DIGEST_MISMATCH and nothing is inflated. An index that
 * does not fit the bytes is ERR_INVALID_INDEX.
 */
export function inflateSpanRecord(rec: SpanRecord, compressed: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(rec.want);
  inflateSpanChunks(rec, compressed, out, () => undefined);
  return out;
}

/**
 * {@link inflateSpanRecord} in pieces: the span's tar bytes are inflated into `out` (reused: a worker's
 * one buffer) and handed to `emit(chunk, at)` each time it fills, `at` being the chunk's offset in the
 * span's tar bytes; `emit` must be done with the chunk when it returns. Same checks first, same errors
 * (a failure after some chunks were emitted is still ERR_INVALID_INDEX). A reader waiting for the start
 * of a span need not wait for the whole span (4 MiB of output, ~20-30 ms) to inflate.
 */
export function inflateSpanChunks(rec: SpanRecord, compressed: Uint8Array, out: Uint8Array, emit: (chunk: Uint8Array, at: number) => void): void {
  if (compressed.length !== rec.cEnd - rec.cStart) throw new VmimgError(ErrorCode.INTERNAL, `span ${rec.i}: got ${compressed.length} bytes, expected ${rec.cEnd - rec.cStart}`);
  const actual = createHash('sha256').update(compressed).digest('hex');
  if (actual !== rec.spanSha256) {
    throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `span ${rec.i} of ${rec.digest} (bytes ${rec.cStart}-${rec.cEnd - 1}): sha256 mismatch`, {
      details: { expected: `sha256:${rec.spanSha256}`, actual: `sha256:${actual}` },
    });
  }
  if (rec.want === 0) return;
  const window = checkpointWindow(rec);
  const stream = zlib.createInflateRaw(window.length > 0 ? { dictionary: window } : {});
  let failure: string | undefined;
  try {
    stream.on('error', () => undefined); // errors come from the handle's onerror, never emitted
    const { handle, state } = zlibInternals(stream);
    handle.onerror = (message) => (failure = message);
    // a span starting mid-byte: its aligned first bytes, then the rest as it is (no copy of the span)
    const inputs = rec.bits ? [alignPrefix(compressed, rec.bits), compressed.subarray(1)] : [compressed];
    let done = 0; // tar bytes emitted
    let fill = 0; // bytes in `out` not yet emitted
    let ended = false; // the deflate data ended (a final block): no input moves it on
    for (const input of inputs) {
      for (let pos = 0; done + fill < rec.want; ) {
        const room = Math.min(out.length - fill, rec.want - done - fill);
        handle.writeSync(zlib.constants.Z_SYNC_FLUSH, input, pos, input.length - pos, out, fill, room);
        if (failure !== undefined) break;
        const used = input.length - pos - state[1]!;
        const made = room - state[0]!;
        pos += used;
        fill += made;
        if (fill === out.length || done + fill === rec.want) {
          emit(out.subarray(0, fill), done);
          done += fill;
          fill = 0;
        } else if (made === 0 && pos === input.length) break; // this input is used up (the span's last block may run past: fine)
        else if (made === 0 && used === 0) {
          ended = true; // the deflate data ended early
          break;
        }
      }
      if (failure !== undefined || ended || done === rec.want) break;
    }
    // (an error thrown by `emit`, a failed write, passes through as it is)
    if (failure !== undefined) throw new VmimgError(ErrorCode.INVALID_INDEX, `span ${rec.i} of ${rec.digest} does not inflate from its checkpoint (${failure})`);
    // the chunk reaching `want` was emitted in the loop: what is left in `out` is a short span's, never emitted
    if (done < rec.want) throw new VmimgError(ErrorCode.INVALID_INDEX, `span ${rec.i} of ${rec.digest} inflates to ${done + fill} bytes, expected ${rec.want}`);
  } finally {
    stream.close();
  }
}

/** {@link inflateSpanRecord} for span `i` of `index` (same checks, same errors). */
export function inflateSpan(index: ZranIndex, i: number, compressed: Uint8Array): Buffer {
  return inflateSpanRecord(spanRecord(index, i), compressed);
}
