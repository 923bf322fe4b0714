/**
 * Where a zstd stream's frames and blocks begin and end (RFC 8878 §3.1), read from the headers alone so
 * the decoder (fzstd) can be fed one block at a time and a frame's window checked before it is decoded.
 * Why our own reader of the framing: fzstd decodes every complete block of its input in one synchronous
 * call and allocates — and on every block moves — a window of whatever size a frame header declares
 * (up to 2 GiB): a 9 KiB layer declaring a 1 GiB window took 77 s and 1.1 GiB to decode 32 MiB. It has
 * no option for either, and node:zlib's zstd (with both) needs Node ≥ 22.15 (docs/DECISIONS.md).
 * Entropy decoding stays fzstd's; bytes this reader does not recognise are passed through for fzstd to
 * reject.
 */

/** zstd frames (RFC 8878 §3.1.1) and skippable frames (§3.1.2, magic 0x184D2A50–5F), little-endian. */
const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC = 0x184d2a50;

type State = 'magic' | 'frameHeader' | 'skipSize' | 'blockHeader' | 'body' | 'opaque';

/** Thrown (by `next`) for a frame whose window is larger than the limit; `window` in bytes. */
export class ZstdWindowTooLarge extends Error {
  constructor(readonly window: number) {
    super(`zstd frame declares a ${window}-byte window`);
  }
}

/** Reads a zstd stream's frame and block headers as its bytes go by. */
export class ZstdFraming {
  private state: State = 'magic';
  /** Header bytes being gathered (at most a frame header: 18 bytes) and how many the current one needs. */
  private readonly head = new Uint8Array(18);
  private have = 0;
  private need = 4;
  /** Bytes of a block's body (or a skippable frame, or a frame's checksum) still to go by. */
  private left = 0;
  private lastBlock = false;
  private checksum = false;
  /** The current frame's window, bytes. */
  private window = 0;
  /**
   * Window bytes fzstd has moved so far: it shifts its whole window on every block, so a stream of tiny
   * blocks in a large window costs far more than its input or output shows (breaker Z1: 1-byte blocks in
   * an 8 MiB window, 0.44 ms of CPU per 4 input bytes). The decoder compares this with its output.
   */
  moved = 0;

  /** `maxWindow`: the largest frame window (bytes) accepted (RFC 8878 recommends decoders accept ≥ 8 MiB). */
  constructor(readonly maxWindow: number) {}

  /**
   * Reads `buf` from `pos` and returns how far to feed the decoder: just past the next end of a block, a
   * skippable frame or a checksum, or `buf.length` when none ends in it. Throws ZstdWindowTooLarge at a
   * frame header past the limit.
   */
  next(buf: Uint8Array, pos: number): number {
    while (pos < buf.length) {
      if (this.state === 'opaque') return buf.length;
      if (this.left > 0) {
        const n = Math.min(this.left, buf.length - pos);
        pos += n;
        this.left -= n;
        if (this.left > 0) return pos;
        if (this.state === 'body') this.endBlock();
        return pos; // a block, a skippable frame or a checksum ended: fzstd takes one at a time
      }
      const n = Math.min(this.need - this.have, buf.length - pos);
      this.head.set(buf.subarray(pos, pos + n), this.have);
      this.have += n;
      pos += n;
      if (this.have < this.need) return pos;
      if (this.parsed()) return pos;
    }
    return pos;
  }

  /** A header is complete: move on. True when a block ended (an empty one). */
  private parsed(): boolean {
    const h = this.head;
    switch (this.state) {
      case 'magic': {
        const magic = (h[0]! | (h[1]! << 8) | (h[2]! << 16) | (h[3]! << 24)) >>> 0;
        if (magic === ZSTD_MAGIC) return this.expect('frameHeader', 5), false;
        if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE_MAGIC) return this.expect('skipSize', 8), false;
        this.state = 'opaque';
        return false;
      }
      case 'skipSize':
        this.left = (h[4]! | (h[5]! << 8) | (h[6]! << 16) | (h[7]! << 24)) >>> 0;
        this.expect('magic', 4);
        return this.left === 0; // an empty skippable frame ended (fzstd recurses once per frame in one call)
      case 'frameHeader': {
        const fhd = h[4]!;
        const single = (fhd >> 5) & 1;
        const fcsBytes = [single, 2, 4, 8][fhd >> 6]!;
        const size = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3]! + fcsBytes;
        if (this.need < size) return (this.need = size), false;
        this.checksum = ((fhd >> 2) & 1) === 1;
        const window = single ? contentSize(h, size - fcsBytes, fcsBytes) : windowSize(h[5]!);
        if (window > this.maxWindow) throw new ZstdWindowTooLarge(window);
        this.window = window;
        this.expect('blockHeader', 3);
        return false;
      }
      case 'blockHeader': {
        const bh = h[0]! | (h[1]! << 8) | (h[2]! << 16);
        const type = (bh >> 1) & 3;
        if (type === 3) return (this.state = 'opaque'), false; // reserved: fzstd rejects it
        this.lastBlock = (bh & 1) === 1;
        this.left = type === 1 ? 1 : bh >>> 3; // an RLE block's body is its one byte
        this.state = 'body';
        this.have = 0;
        return this.left === 0 ? this.endBlock() : false;
      }
      default:
        return false;
    }
  }

  /** A block's body has gone by: charges the frame's window (see `moved`); true (a block ended) for `parsed`. */
  private endBlock(): boolean {
    this.moved += this.window;
    if (!this.lastBlock) this.expect('blockHeader', 3);
    else {
      this.expect('magic', 4);
      if (this.checksum) this.left = 4; // Content_Checksum, then the next frame's magic
    }
    return true;
  }

  private expect(state: State, need: number): void {
    this.state = state;
    this.need = need;
    if (state !== 'frameHeader' && state !== 'skipSize') this.have = 0; // both are read on from their magic
  }
}

/** Window_Descriptor (RFC 8878 §3.1.1.1.2): 2^(10 + exponent) plus eighths of it. */
function windowSize(descriptor: number): number {
  const base = 2 ** (10 + (descriptor >> 3));
  return base + (base / 8) * (descriptor & 7);
}

/** Frame_Content_Size (§3.1.1.1.4), the window of a single-segment frame; 2-byte sizes are offset by 256. */
function contentSize(h: Uint8Array, at: number, bytes: number): number {
  let v = 0;
  for (let i = bytes - 1; i >= 0; i--) v = v * 256 + h[at + i]!;
  return bytes === 2 ? v + 256 : v;
}
