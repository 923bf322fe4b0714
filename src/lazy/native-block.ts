/**
 * The gzip inflater that finds checkpoints at native speed: node:zlib's raw inflate driven with zlib's
 * `Z_BLOCK` flush, so it stops at every deflate block boundary, while its output feeds the flattener
 * (one inflate per layer, not a second one beside it: ring-checkpoints.ts). node:zlib has no API for
 * that, so it drives Node's zlib internals (zlib-internals.ts: a zlib stream's `_handle.writeSync`,
 * `_writeState` and `_handle.onerror`; the inflate worker's own gunzip drives them through that module
 * too), and it checks them once
 * ({@link nativeBlockAvailable}) before first use; callers fall back to pako (pako-block.ts) when they
 * are gone. The gzip framing (header, trailer, members) is parsed here. zlib's `data_type` is not
 * exposed either, so a boundary's unused bits are unknown (`bits: -1`) until {@link resolveBits} finds
 * them by trial.
 */
import * as zlib from 'node:zlib';
import { ErrorCode, VmimgError } from '../errors.js';
import type { Step } from './pako-block.js';
import { GzipFraming } from '../layer/gzip-framing.js';
import { alignSpan } from './span-inflate.js';
import { BufferOutput, type BlockOutput } from './block-output.js';
import { zlibInternals, type ZlibHandle } from './zlib-internals.js';

interface Raw {
  stream: zlib.InflateRaw;
  handle: ZlibHandle;
  state: Uint32Array;
  error: string | undefined;
}

const WINDOW = 32768;
const { Z_BLOCK, Z_SYNC_FLUSH } = zlib.constants;

function openRaw(dictionary?: Uint8Array): Raw {
  const stream = zlib.createInflateRaw(dictionary && dictionary.length > 0 ? { dictionary } : {});
  stream.on('error', () => undefined); // errors are read from `raw.error`, never emitted
  const raw: Raw = { stream, ...zlibInternals(stream), error: undefined };
  raw.handle.onerror = (message) => (raw.error = message);
  return raw;
}

/** One `inflate()` call: input and output bytes used, and zlib's error message if it failed. */
function write(raw: Raw, flush: number, input: Uint8Array, inOff: number, out: Uint8Array, outOff: number): { used: number; produced: number } {
  const inLen = input.length - inOff;
  raw.handle.writeSync(flush, input, inOff, inLen, out, outOff, out.length - outOff);
  return { used: inLen - raw.state[1]!, produced: out.length - outOff - raw.state[0]! };
}

type Mode = 'header' | 'raw' | 'trailer' | 'done';

/**
 * A streaming gzip inflater with the interface of pako-block.ts's `BlockInflater`: {@link setInput},
 * {@link step} until `needInput` (or `needOutput`: the output has no room yet), {@link resetMember} after
 * `memberEnd`. A boundary's `bits` is -1 (unknown) except at a member's first block (0). A stop reported
 * as a boundary may also be the end of a member's deflate data (the next step then ends the member).
 * Output goes to `output` (block-output.ts: a reused buffer, or the flattener's ring). The gzip trailer's
 * ISIZE is checked, its CRC-32 not: callers verify the tar by its diff_id. Corrupt data is ERR_INVALID_LAYER.
 */
export class NativeBlockInflater {
  private raw: Raw | undefined;
  private mode: Mode = 'header';
  private input: Uint8Array = new Uint8Array(0);
  private pos = 0;
  /** The last call filled its region: zlib may hold more output even without input. */
  private outFull = false;
  private memberOut = 0;
  private framing: Buffer = Buffer.alloc(0);
  private headerFraming: GzipFraming | undefined;

  constructor(readonly output: BlockOutput = new BufferOutput()) {}

  /** Starts on a new input chunk (the previous one must be used up). */
  setInput(chunk: Uint8Array): void {
    this.input = chunk;
    this.pos = 0;
  }

  /** Input bytes of the current chunk not used yet. */
  get inputLeft(): number {
    return this.input.length - this.pos;
  }

  /** Inflates up to the next block boundary, the end of the output region, the member end or the input end. */
  step(): Step {
    if (this.mode === 'header') return this.header();
    if (this.mode === 'trailer') return this.trailer();
    if (this.mode === 'done') throw new VmimgError(ErrorCode.INTERNAL, 'inflater: step after a member end without resetMember');
    return this.inflate();
  }

  private inflate(): Step {
    const inLen = this.inputLeft;
    if (inLen === 0 && !this.outFull) return this.result(EMPTY, { needInput: true });
    const region = this.output.region();
    if (region.length === 0) return this.result(EMPTY, { needOutput: true });
    const raw = (this.raw ??= openRaw());
    const { used, produced } = write(raw, Z_BLOCK, this.input, this.pos, region, 0);
    if (raw.error !== undefined) throw new VmimgError(ErrorCode.INVALID_LAYER, `gzip data is corrupt (${raw.error})`);
    this.output.wrote(produced);
    this.pos += used;
    this.memberOut += produced;
    this.outFull = produced === region.length;
    const out = region.subarray(0, produced);
    // No progress with input and room: the deflate data ended (zlib's DONE); a boundary always moves on.
    if (used === 0 && produced === 0 && inLen > 0 && !this.outFull) {
      this.mode = 'trailer';
      return this.trailer();
    }
    const stopped = this.inputLeft > 0 && !this.outFull;
    return this.result(out, { boundary: stopped, needInput: this.inputLeft === 0 && !this.outFull });
  }

  private result(output: Uint8Array, s: { boundary?: boolean; needInput?: boolean; needOutput?: boolean; memberEnd?: boolean; bits?: number }): Step {
    return { output, inputUsed: this.pos, boundary: s.boundary ?? false, bits: s.bits ?? -1, memberEnd: s.memberEnd ?? false, needInput: s.needInput ?? false, needOutput: s.needOutput ?? false };
  }

  /** Collects the `n` trailer bytes (they may straddle chunks); undefined until all are there. */
  private gather(n: number): Buffer | undefined {
    const take = this.input.subarray(this.pos, this.pos + n);
    const b = this.framing.length === 0 ? Buffer.from(take.buffer, take.byteOffset, take.length) : Buffer.concat([this.framing, take]);
    if (b.length < n) {
      this.framing = Buffer.from(b);
      this.pos += take.length;
      return undefined;
    }
    this.pos += n - this.framing.length;
    this.framing = Buffer.alloc(0);
    return b.subarray(0, n);
  }

  /**
   * Skips the member's gzip header, of any length (FEXTRA up to 64 KiB, FNAME and FCOMMENT unbounded, as
   * zlib takes them), read by the inflate worker's framing reader (layer/gzip-framing.ts): one reader of
   * RFC 1952 headers, so the checkpoint builder refuses no header a plain pull accepts (breaker7 L1).
   */
  private header(): Step {
    const f = (this.headerFraming ??= new GzipFraming());
    let starts = false;
    while (!starts && this.pos < this.input.length) {
      starts = f.byte(this.input[this.pos++]!, 0);
      if (f.error !== undefined) throw new VmimgError(ErrorCode.INVALID_LAYER, `gzip data is corrupt (${f.error.message})`);
    }
    if (!starts) return this.result(EMPTY, { needInput: true });
    this.headerFraming = undefined;
    this.mode = 'raw';
    this.memberOut = 0;
    if (this.raw !== undefined) this.raw.stream.reset();
    return this.result(EMPTY, { boundary: true, bits: 0 });
  }

  private trailer(): Step {
    const t = this.gather(8);
    if (t === undefined) return this.result(EMPTY, { needInput: true });
    if (t.readUInt32LE(4) !== this.memberOut % 2 ** 32) throw new VmimgError(ErrorCode.INVALID_LAYER, 'gzip data is corrupt (incorrect length check)');
    this.mode = 'done';
    return this.result(EMPTY, { memberEnd: true });
  }

  /** After `memberEnd`: read the next gzip member from the rest of the input. */
  resetMember(): void {
    this.mode = 'header';
  }

  /** The last `min(32768, output of this member)` bytes, oldest first. */
  window(): Uint8Array {
    return this.output.bytesBefore(0, Math.min(WINDOW, this.memberOut));
  }

  /** Frees zlib's state. */
  end(): void {
    this.raw?.stream.close();
    this.raw = undefined;
  }
}

const EMPTY = new Uint8Array(0);

/** Output bytes every candidate is first tried on: most wrong ones fail within them (zlib's error or a differing byte). */
const FIRST_TRIAL = 256;

/**
 * Whether raw-inflating `input` from the window (`raw`'s dictionary) gives exactly `expected` first.
 * `raw` is reset first (which sets its dictionary again): one stream serves every candidate of a boundary.
 */
function decodesTo(raw: Raw, input: Uint8Array, expected: Uint8Array, out: Buffer): boolean {
  raw.stream.reset();
  raw.error = undefined;
  const { produced } = write(raw, Z_SYNC_FLUSH, input, 0, out.subarray(0, expected.length), 0);
  return raw.error === undefined && produced === expected.length && out.subarray(0, produced).equals(expected);
}

/**
 * The unused bits (0..7) of byte `prevByte` before a block boundary, found by resuming inflation as a
 * lazy reader will (span-inflate.ts's `alignSpan`, the window as dictionary) from each candidate and
 * comparing with `expected`, the output known to follow the boundary; `after` is the compressed bytes
 * from the boundary's byte on. The true candidate always fits, so a candidate is taken only when it is
 * the only one: inside a long run coded as repeated matches (fixed-Huffman blocks, zlib's Z_FIXED) a
 * wrong one can decode to the same 8 KiB and run on without a zlib error (session 7 breaker H1: the
 * first fit was taken, and every read of that span failed). Undefined when none or several fit: the
 * caller drops the boundary (a longer probe would help only once it reached past the run's end).
 */
export function resolveBits(window: Uint8Array, prevByte: number, after: Uint8Array, expected: Uint8Array): number | undefined {
  if (expected.length === 0 || after.length === 0) return undefined;
  const raw = openRaw(window);
  try {
    const out = Buffer.allocUnsafe(expected.length);
    const withPrev = Buffer.concat([Uint8Array.of(prevByte), after]);
    const first = expected.subarray(0, FIRST_TRIAL);
    const fits: number[] = [];
    for (let b = 0; b < 8; b++) {
      const input = b === 0 ? after : alignSpan(withPrev, b);
      // a candidate that fails on a prefix of `expected` fails on all of it (same input, same bytes
      // first): the short trial only spares most candidates the long one, the fits are the same
      if (decodesTo(raw, input, first, out) && (first.length === expected.length || decodesTo(raw, input, expected, out))) fits.push(b);
    }
    return fits.length === 1 ? fits[0] : storedTie(fits, prevByte, after);
  } finally {
    raw.stream.close();
  }
}

/**
 * The candidate to take when several fit and every one reads a stored block's header (BTYPE 00) that
 * skips to the same byte: from there the inflater's state is the same, but for BFINAL. The common tie
 * (zlib pads a stored header with zero bits, and a start inside the padding reads one too; session 7's
 * lazy bench blob: ~70 of them). A non-final reading is taken: only a member's last block is final, and
 * there the span ends with that block, so the non-final reading gives the same bytes and at most an
 * error after them (the reader then fetches the blob whole). Undefined for any other tie.
 */
function storedTie(fits: number[], prevByte: number, after: Uint8Array): number | undefined {
  if (fits.length < 2) return undefined;
  const bits = prevByte | (after[0]! << 8) | ((after[1] ?? 0) << 16);
  const read = (b: number): number => (bits >>> (8 - b)) & 7; // BFINAL in bit 0, BTYPE in bits 1-2
  // b >= 3: the header ends inside prevByte and the block goes on at after[0]; b <= 2: at after[1]
  const stored = fits.every((b) => (read(b) & 6) === 0 && b >= 3 === fits[0]! >= 3);
  return stored ? (fits.find((b) => read(b) === 0) ?? fits[0]) : undefined;
}

let available: boolean | undefined;

/**
 * Whether the native block inflater works on this Node: a two-member gzip whose blocks end mid-byte is
 * inflated and must give node:zlib's bytes, windows equal to the trailing output and boundaries whose bits
 * resolve (computed once per process; false means: use pako).
 */
export function nativeBlockAvailable(): boolean {
  available ??= selfTest() === undefined;
  return available;
}

/** Runs the check behind {@link nativeBlockAvailable}; returns what failed, or undefined. */
export function selfTest(): string | undefined {
  try {
    const text = Buffer.from(Array.from({ length: 6000 }, (_, i) => `line ${i} ${(i * 7919) % 1000}\n`).join(''));
    const gz = Buffer.concat([zlib.gzipSync(text, { level: 1, memLevel: 1 }), zlib.gzipSync(text.subarray(0, 100))]);
    const expected = Buffer.concat([text, text.subarray(0, 100)]);
    const inf = new NativeBlockInflater();
    const chunks: Buffer[] = [];
    inf.setInput(gz);
    let produced = 0;
    let members = 0;
    let resolved = 0;
    let nextCheck = 0;
    for (;;) {
      const st = inf.step();
      produced += st.output.length;
      chunks.push(Buffer.from(st.output));
      // one boundary per 20 000 bytes, windows short and whole (memLevel 1 makes hundreds of blocks: each
      // resolved boundary costs trial inflates, ~80 ms of the first checkpointing pull's inflate thread)
      if (st.boundary && st.bits < 0 && members === 0 && produced < text.length - 4096 && produced >= nextCheck) {
        nextCheck = produced + 20_000;
        const w = inf.window();
        if (!Buffer.from(w).equals(expected.subarray(Math.max(0, produced - WINDOW), produced))) return 'the window is not the last 32 KiB of output';
        const at = gz.length - inf.inputLeft;
        const bits = resolveBits(w, gz[at - 1]!, gz.subarray(at, at + 4096), expected.subarray(produced, produced + 2048));
        if (bits === undefined) return 'a boundary whose bits do not resolve';
        resolved++;
      }
      if (st.memberEnd) {
        members++;
        if (inf.inputLeft === 0) break;
        inf.resetMember();
      } else if (st.needInput) break;
    }
    const out = Buffer.concat(chunks);
    inf.end();
    if (members !== 2) return `expected 2 gzip members, saw ${members}`;
    if (resolved < 2) return `${resolved} block boundaries resolved`;
    if (!out.equals(expected)) return 'output differs from node:zlib';
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
