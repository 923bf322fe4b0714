/**
 * Inflates one span of a gzip layer from its checkpoint with native zlib (docs/FORMAT.md "Resuming
 * inflation from a checkpoint"). node:zlib has no `inflatePrime`, so a span starting mid-byte gets
 * empty deflate blocks in front that end exactly at its first bit; the window is the raw inflater's dictionary.
 */
import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { ErrorCode, VmimgError } from '../errors.js';
import { spanRange, type ZranIndex } from './zran-format.js';

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
  const w = new BitWriter();
  const r = 8 - bits;
  if (r % 2 === 1) emptyDynamicBlock(w);
  while (w.length % 8 !== r) emptyFixedBlock(w);
  w.bits(span[0]! >>> r, bits);
  return Buffer.concat([Buffer.from(w.bytes), span.subarray(1)]);
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
  if (compressed.length !== rec.cEnd - rec.cStart) throw new VmimgError(ErrorCode.INTERNAL, `span ${rec.i}: got ${compressed.length} bytes, expected ${rec.cEnd - rec.cStart}`);
  const actual = createHash('sha256').update(compressed).digest('hex');
  if (actual !== rec.spanSha256) {
    throw new VmimgError(ErrorCode.DIGEST_MISMATCH, `span ${rec.i} of ${rec.digest} (bytes ${rec.cStart}-${rec.cEnd - 1}): sha256 mismatch`, {
      details: { expected: `sha256:${rec.spanSha256}`, actual: `sha256:${actual}` },
    });
  }
  if (rec.want === 0) return Buffer.alloc(0);
  const window = checkpointWindow(rec);
  const cap = rec.want + 65536; // a span's last block may run a little past its checkpoint
  let out: Buffer;
  try {
    out = zlib.inflateRawSync(rec.bits ? alignSpan(compressed, rec.bits) : compressed, {
      ...(window.length > 0 ? { dictionary: window } : {}),
      finishFlush: zlib.constants.Z_SYNC_FLUSH, // a span ends mid-stream
      maxOutputLength: cap,
      chunkSize: Math.max(64 << 10, Math.min(cap, 8 << 20)), // one output buffer, not 16 KiB pieces to concatenate
    });
  } catch (err) {
    throw new VmimgError(ErrorCode.INVALID_INDEX, `span ${rec.i} of ${rec.digest} does not inflate from its checkpoint (${(err as Error).message})`, { cause: err });
  }
  if (out.length < rec.want) throw new VmimgError(ErrorCode.INVALID_INDEX, `span ${rec.i} of ${rec.digest} inflates to ${out.length} bytes, expected ${rec.want}`);
  return out.subarray(0, rec.want);
}

/** {@link inflateSpanRecord} for span `i` of `index` (same checks, same errors). */
export function inflateSpan(index: ZranIndex, i: number, compressed: Uint8Array): Buffer {
  return inflateSpanRecord(spanRecord(index, i), compressed);
}
