/**
 * Where the native block inflater (native-block.ts) writes: its own 1 MiB buffer (`vmimg index build`,
 * serve's prepare) or the ring the flattener reads the tar from (the inflate worker during
 * `pull --index-build`: one inflate feeds both). Either way every inflate call ends at the next multiple
 * of 1 MiB of output at the latest: zlib passes a block boundary unseen when the output fills there, so
 * output stops must fall at the same offsets however the bytes travel, for the same blob to give the
 * same `.zran` (tested: a pull's index equals `vmimg index build`'s).
 */
import { ErrorCode, VmimgError } from '../errors.js';

/** Output stops fall on multiples of this many bytes (and a call writes at most this much). */
export const OUTPUT_STEP = 1 << 20;
const WINDOW = 32768;

/** An inflater's output: where the next call writes, and the bytes written so far that are still readable. */
export interface BlockOutput {
  /** Output bytes written so far (the tar offset of the next one). */
  readonly total: number;
  /** Where the next call may write, up to the next {@link OUTPUT_STEP} multiple; length 0: no room yet. */
  region(): Uint8Array;
  /** `n` bytes were written at the start of the last region. */
  wrote(n: number): void;
  /** A copy of the `n` output bytes that end `back` bytes before the latest one. */
  bytesBefore(back: number, n: number): Buffer;
  /** Called before output bytes stop being readable: those at tar offsets below `below`. */
  onOverwrite: ((below: number) => void) | undefined;
}

/** Copies absolute output range `[from, from + n)` out of `segs` (each `[start offset, bytes]`). */
function copyOut(segs: [number, Uint8Array][], from: number, n: number): Buffer {
  const copy = Buffer.allocUnsafe(n);
  let got = 0;
  for (const [start, bytes] of segs) {
    const s = Math.max(from, start);
    const e = Math.min(from + n, start + bytes.length);
    if (s < e) {
      copy.set(bytes.subarray(s - start, e - start), s - from);
      got += e - s;
    }
  }
  if (got !== n) throw new VmimgError(ErrorCode.INTERNAL, `inflater: output ${from}..${from + n} is gone`);
  return copy;
}

/** A 1 MiB buffer reused for each step of output; the last 32 KiB before a reuse stay readable. */
export class BufferOutput implements BlockOutput {
  total = 0;
  private readonly out = Buffer.allocUnsafe(OUTPUT_STEP);
  private outPos = 0;
  private tail: Buffer = Buffer.alloc(0);
  onOverwrite: ((below: number) => void) | undefined;

  region(): Uint8Array {
    if (this.outPos === OUTPUT_STEP) {
      this.onOverwrite?.(this.total - WINDOW);
      this.tail = this.bytesBefore(0, Math.min(WINDOW, this.total));
      this.outPos = 0;
    }
    return this.out.subarray(this.outPos);
  }

  wrote(n: number): void {
    this.outPos += n;
    this.total += n;
  }

  bytesBefore(back: number, n: number): Buffer {
    const start = this.total - this.outPos;
    return copyOut([[start - this.tail.length, this.tail], [start, this.out.subarray(0, this.outPos)]], this.total - back - n, n);
  }
}

/**
 * The flattener's tar ring (a hash stream's shared ring, written by the inflate worker). Bytes count as
 * `produced` once they are in the ring; when the ring cannot take a region whole up to the next 1 MiB
 * stop, the region is a scratch buffer instead, copied in as the reader frees room ({@link flush}).
 * The scratch mirrors one 1 MiB step: tar offset `x` sits at `x % OUTPUT_STEP`.
 */
export class RingOutput implements BlockOutput {
  /** Bytes in the ring (what the reader may read). */
  produced = 0;
  /** The reader's limit: bytes may be written up to this stream offset. */
  limit: number;
  private readonly scratch = Buffer.allocUnsafe(OUTPUT_STEP);
  /** Bytes in the scratch, not yet in the ring (tar offsets `[produced, produced + held)`). */
  private held = 0;
  private toScratch = false;
  /** Bytes that may still be written before {@link region} gives no room (the caller's slice of work). */
  quota = Infinity;
  onOverwrite: ((below: number) => void) | undefined;

  constructor(private readonly ring: Uint8Array) {
    if (ring.length % OUTPUT_STEP !== 0 || ring.length < 2 * OUTPUT_STEP) throw new VmimgError(ErrorCode.INTERNAL, `checkpoint ring of ${ring.length} bytes: not a multiple of 1 MiB, or under 2 MiB`);
    this.limit = ring.length;
  }

  get total(): number {
    return this.produced + this.held;
  }

  /** Moves scratch bytes into the ring as far as the limit allows; true when none are left. */
  flush(): boolean {
    const n = Math.min(this.held, this.limit - this.produced);
    if (n > 0) {
      this.onOverwrite?.(this.produced + n - this.ring.length);
      const at = this.produced % OUTPUT_STEP;
      this.ring.set(this.scratch.subarray(at, at + n), this.produced % this.ring.length);
      this.produced += n;
      this.held -= n;
    }
    return this.held === 0;
  }

  region(): Uint8Array {
    if (this.quota <= 0) return this.scratch.subarray(0, 0);
    // a scratch step fills up to its end, then goes to the ring whole before anything else is written
    if (this.held > 0 && this.total % OUTPUT_STEP !== 0) return this.scratch.subarray(this.total % OUTPUT_STEP);
    if (!this.flush()) return this.scratch.subarray(0, 0);
    const at = this.produced % OUTPUT_STEP;
    this.toScratch = this.limit - this.produced < OUTPUT_STEP - at;
    if (this.toScratch) return this.scratch.subarray(at);
    this.onOverwrite?.(this.produced + OUTPUT_STEP - at - this.ring.length);
    const pos = this.produced % this.ring.length;
    return this.ring.subarray(pos, pos + OUTPUT_STEP - at);
  }

  wrote(n: number): void {
    this.quota -= n;
    if (!this.toScratch && this.held === 0) this.produced += n;
    else {
      this.held += n;
      this.flush();
    }
  }

  bytesBefore(back: number, n: number): Buffer {
    const from = this.total - back - n;
    const size = this.ring.length;
    if (from < this.produced - size) throw new VmimgError(ErrorCode.INTERNAL, `inflater: output at ${from} is overwritten`);
    const copy = Buffer.allocUnsafe(n);
    for (let x = from; x < from + n; ) {
      const inRing = x < this.produced;
      const end = inRing ? Math.min(from + n, this.produced, x - (x % size) + size) : from + n;
      const src = inRing ? this.ring.subarray(x % size, x % size + end - x) : this.scratch.subarray(x % OUTPUT_STEP, x % OUTPUT_STEP + end - x);
      copy.set(src, x - from);
      x = end;
    }
    return copy;
  }
}
