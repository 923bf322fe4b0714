/**
 * The one module that touches pako (pinned to an exact version in package.json): a gzip inflater that
 * stops at every deflate block boundary (zlib's `Z_BLOCK`) and hands out what a checkpoint needs — the
 * unused bits of the last input byte and the 32 KiB window. The window lives in pako's untyped inflate
 * state (`window`, `wsize`, `whave`, `wnext`, as zlib's `inflateGetDictionary` reads them), which is why
 * this module checks itself once ({@link selfTest}) before it is first used.
 */
import * as pako from 'pako';
import * as zlib from 'node:zlib';
import { ErrorCode, VmimgError } from '../errors.js';

/** pako's inflate state fields this module reads (zlib's `struct inflate_state`). */
interface InflateState {
  window: Uint8Array | null;
  wsize: number;
  whave: number;
  wnext: number;
}

/** What one {@link BlockInflater.step} did. */
export interface Step {
  /** Output bytes produced by this step (a view into a reused buffer: copy or consume before the next step). */
  output: Uint8Array;
  /** Input bytes of the current chunk consumed so far (an index into the chunk). */
  inputUsed: number;
  /** At a block boundary that may start a span (not after a member's last block). */
  boundary: boolean;
  /** Unused high bits of the last consumed input byte (0..7), meaningful at a boundary. */
  bits: number;
  /** The gzip member ended (its trailer was read and checked). */
  memberEnd: boolean;
  /** No progress is possible without more input. */
  needInput: boolean;
  /** No progress is possible until the output has room (native-block.ts writing a reader's ring). */
  needOutput?: boolean;
}

const OUTPUT_CHUNK = 256 * 1024;

/**
 * Streaming gzip inflater over pako's low-level API with `Z_BLOCK`. Feed a chunk with {@link setInput},
 * then call {@link step} until it reports `needInput`; after `memberEnd`, call {@link resetMember} to
 * read a following member. Errors (corrupt data, bad header or CRC) are ERR_INVALID_LAYER.
 */
export class BlockInflater {
  private readonly strm = new pako.ZStream();
  private readonly out = new Uint8Array(OUTPUT_CHUNK);

  /** `check` false only for the self-test itself. */
  constructor(check = true) {
    if (check) ensureSelfTest();
    this.init();
  }

  private init(): void {
    const rc = pako.zlibInflateInit2(this.strm, 16 + 15); // gzip wrapper only, 32 KiB window
    if (rc !== pako.Z_OK) throw new VmimgError(ErrorCode.INTERNAL, `pako inflateInit2 failed (${rc})`);
  }

  /** Starts on a new input chunk (the previous one must be used up). */
  setInput(chunk: Uint8Array): void {
    this.strm.input = chunk;
    this.strm.next_in = 0;
    this.strm.avail_in = chunk.length;
  }

  /** Input bytes of the current chunk not used yet. */
  get inputLeft(): number {
    return this.strm.avail_in;
  }

  /** Inflates up to the next block boundary, the end of the output buffer, the member end or the input end. */
  step(): Step {
    const s = this.strm;
    s.output = this.out;
    s.next_out = 0;
    s.avail_out = this.out.length;
    const rc = pako.zlibInflate(s, pako.Z_BLOCK);
    if (rc !== pako.Z_OK && rc !== pako.Z_STREAM_END && rc !== pako.Z_BUF_ERROR) {
      throw new VmimgError(ErrorCode.INVALID_LAYER, `gzip data is corrupt (${s.msg || `inflate ${rc}`})`);
    }
    const output = this.out.subarray(0, s.next_out);
    const memberEnd = rc === pako.Z_STREAM_END;
    const dt = s.data_type;
    return {
      output,
      inputUsed: s.next_in,
      boundary: !memberEnd && (dt & 128) !== 0 && (dt & 64) === 0,
      bits: dt & 7,
      memberEnd,
      // Output room left and no input: inflate stopped for want of input (or at a boundary, where held
      // bits are kept for the next chunk).
      needInput: !memberEnd && s.avail_in === 0 && s.avail_out > 0,
    };
  }

  /** After `memberEnd`: read the next gzip member from the rest of the input. */
  resetMember(): void {
    const rc = pako.zlibInflateReset(this.strm);
    if (rc !== pako.Z_OK) throw new VmimgError(ErrorCode.INTERNAL, `pako inflateReset failed (${rc})`);
  }

  /** The last `min(32768, output of this member)` bytes, oldest first (zlib's inflateGetDictionary). */
  window(): Uint8Array {
    const st = (this.strm as unknown as { state: InflateState }).state;
    const have = st.whave;
    const out = new Uint8Array(have);
    if (have === 0 || st.window === null) return out.subarray(0, 0);
    out.set(st.window.subarray(st.wnext, have), 0);
    out.set(st.window.subarray(0, st.wnext), have - st.wnext);
    return out;
  }

  /** Frees pako's buffers. */
  end(): void {
    pako.zlibInflateEnd(this.strm);
  }
}

let selfTested = false;

function ensureSelfTest(): void {
  if (selfTested) return;
  selfTest();
  selfTested = true;
}

/**
 * Checks the pako internals this module relies on against node:zlib: a two-member gzip whose blocks
 * end mid-byte must yield boundaries with bits, windows equal to the trailing output, and the same bytes.
 * Throws ERR_INTERNAL naming the pako version when a pako upgrade changed them.
 */
export function selfTest(): void {
  // Enough varied text for several blocks and a full 32 KiB window; level 1 ends blocks mid-byte.
  const text = Buffer.from(Array.from({ length: 6000 }, (_, i) => `line ${i} ${(i * 7919) % 1000}\n`).join(''));
  const gz = Buffer.concat([zlib.gzipSync(text, { level: 1, memLevel: 1 }), zlib.gzipSync(text.subarray(0, 100))]);
  const expected = Buffer.concat([text, text.subarray(0, 100)]);
  const fail = (what: string): never => {
    throw new VmimgError(ErrorCode.INTERNAL, `pako self-test failed: ${what} (package.json pins pako; src/lazy/pako-block.ts reads its inflate state)`);
  };
  const inf = new BlockInflater(false);
  inf.setInput(gz);
  const parts: Uint8Array[] = [];
  let produced = 0;
  let boundaries = 0;
  let members = 0;
  let withBits = 0;
  for (;;) {
    const st = inf.step();
    parts.push(Uint8Array.from(st.output));
    produced += st.output.length;
    if (st.boundary && produced > 0) {
      boundaries++;
      if (st.bits > 0) withBits++;
      const w = inf.window();
      const want = expected.subarray(Math.max(0, produced - 32768), produced);
      if (members === 0 && !Buffer.from(w).equals(want)) fail('the window is not the last 32 KiB of output');
    }
    if (st.memberEnd) {
      members++;
      if (inf.inputLeft === 0) break;
      inf.resetMember();
    } else if (st.needInput) break;
  }
  inf.end();
  if (members !== 2) fail(`expected 2 gzip members, saw ${members}`);
  if (boundaries < 2 || withBits === 0) fail(`${boundaries} block boundaries, ${withBits} mid-byte`);
  if (!Buffer.concat(parts).equals(expected)) fail('output differs from node:zlib');
}
