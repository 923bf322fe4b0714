/**
 * Builds a `.zran` checkpoint index from a gzip layer blob fed in chunks (docs/FORMAT.md "Where
 * checkpoints are taken"): one at every member start, one at the first block boundary more than
 * `spanSize` output bytes after the last, and an extra one at the last boundary before a large file's
 * data. Each span's compressed bytes are hashed as they pass, so reads can verify them. The inflater is
 * node:zlib's (native-block.ts: a boundary's bits are found by trial once some output follows it) unless
 * Node's internals changed, then pako's (pako-block.ts: zlib's `data_type` gives them).
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { InlineWork, type CheckpointWork } from './checkpoint-work.js';
import { nativeBlockAvailable, NativeBlockInflater, resolveBits } from './native-block.js';
import { BlockInflater, type Step } from './pako-block.js';
import { TarFollower } from './tar-follower.js';
import type { BlockOutput } from './block-output.js';
import type { Checkpoint, ZranIndex } from './zran-format.js';

const MiB = 1024 * 1024;

/** Tunables of the builder; every one has a default (DEFAULT_CHECKPOINT_OPTIONS). */
export interface CheckpointOptions {
  /** Target bytes of uncompressed output per span (default 4 MiB; SOCI's). */
  spanSize: number;
  /** Regular files at least this large get a checkpoint before their data (default 1 MiB). */
  largeFileSize: number;
  /** ...when at least this much output was produced since the last checkpoint (default 1 MiB). */
  minGap: number;
  /** Refuse (ERR_TOO_LARGE) a blob needing more checkpoints than this (default 1 048 576). */
  maxCheckpoints: number;
}

/** 4 MiB spans (SOCI), extras before 1 MiB+ files after 1 MiB of output, at most 2^20 checkpoints. */
export const DEFAULT_CHECKPOINT_OPTIONS: CheckpointOptions = { spanSize: 4 * MiB, largeFileSize: MiB, minGap: MiB, maxCheckpoints: 1 << 20 };

/**
 * Unhashed input is hashed anyway past this many bytes (a deflate block over 1 MiB compressed); the
 * pending boundary is dropped. Checked after each 1 MiB chunk: the inflate worker's 2 MiB input ring
 * then always has room for the next chunk (ring-checkpoints.ts), and a file gives the same index.
 */
const MAX_HELD = MiB;
const WINDOW = 32768;
/** Output kept after a boundary whose bits are unknown, to find them (native-block.ts `resolveBits`). */
const PROBE = 8192;
/** Compressed bytes after such a boundary handed to the trial, at most. */
const MAX_AFTER = 64 * 1024;

/** A block boundary not taken as a checkpoint yet: it still can be, until the next boundary. */
interface Boundary {
  cOff: number;
  uOff: number;
  /** -1: not known yet (native inflater). */
  bits: number;
  prevByte: number;
  window: Uint8Array | undefined;
  /** Output following the boundary, for finding `bits`. */
  probe?: { buf: Buffer; n: number };
  /** Window and probe not copied yet: still readable from the native inflater's output. */
  lazy?: boolean;
}

/** What the builder drives: pako-block.ts's `BlockInflater` or native-block.ts's `NativeBlockInflater`. */
interface BlockSteps {
  setInput(chunk: Uint8Array): void;
  step(): Step;
  resetMember(): void;
  window(): Uint8Array;
  end(): void;
}

/**
 * Which inflater, where the native one writes (default: a reused buffer; block-output.ts), and where
 * span digests and window deflates are done (default: this thread; checkpoint-work.ts).
 */
export interface BuilderMode {
  engine?: 'native' | 'pako';
  output?: BlockOutput;
  work?: CheckpointWork;
}

/** A `.zran` but for the ids its caller verifies (the blob's digest and the tar's diff_id). */
export type ZranWithoutIds = Omit<ZranIndex, 'digest' | 'diffId'>;

/**
 * Feed the blob with {@link push} (and {@link resume} while it reports a pause for output room), then
 * {@link finish}. Corrupt gzip is ERR_INVALID_LAYER (from push or finish); an index that cannot be built
 * (too many checkpoints) is reported by finish only, so a builder writing a reader's ring keeps
 * inflating for it.
 */
export class CheckpointBuilder {
  private readonly opts: CheckpointOptions;
  private readonly inflater: BlockSteps;
  private readonly nativeInflater: NativeBlockInflater | undefined;
  private readonly follower: TarFollower;
  private readonly checkpoints: Checkpoint[] = [];
  private readonly held: { buf: Uint8Array; at: number }[] = [];
  private readonly work: CheckpointWork;
  /** A span's digest is open (from the first checkpoint on). */
  private spanOpen = false;
  /** Side work whose result comes later: {@link settled} waits for it. */
  private readonly later: Promise<void>[] = [];
  private hashedTo = 0;
  private cAbs = 0;
  /** Blob offset of the first input byte the inflater has not used. */
  private at = 0;
  private uOff = 0;
  /** `uOff` where the current gzip member's output began. */
  private memberU = 0;
  private lastByte = 0;
  private memberStart = true;
  private atMemberEnd = false;
  private ended = false;
  private members = 0;
  private pending: Boundary | undefined;
  /** A checkpoint waiting for output after it to find its bits; nothing past it is hashed meanwhile. */
  private unresolved: { b: Boundary; window: Uint8Array } | undefined;
  private indexError: VmimgError | undefined;
  /** Tar offset where a large file's data begins, found by the follower and not yet passed. */
  private largeAt: number | undefined;
  /** The chunk being inflated (a pause for output room keeps it), and its bytes used before the inflater's input. */
  private chunk: Uint8Array | undefined;
  private base = 0;

  constructor(options: Partial<CheckpointOptions> = {}, mode: BuilderMode = {}) {
    this.opts = { ...DEFAULT_CHECKPOINT_OPTIONS, ...options };
    this.work = mode.work ?? new InlineWork();
    this.follower = new TarFollower(this.opts.largeFileSize);
    const native = (mode.engine ?? (nativeBlockAvailable() ? 'native' : 'pako')) === 'native';
    if (mode.output && !native) throw new VmimgError(ErrorCode.INTERNAL, 'only the native inflater writes a given output');
    this.nativeInflater = native ? new NativeBlockInflater(mode.output) : undefined;
    this.inflater = this.nativeInflater ?? new BlockInflater();
    if (this.nativeInflater) {
      this.nativeInflater.output.onOverwrite = (below) => {
        if (this.pending?.lazy && below > this.pending.uOff - WINDOW) this.materialize(this.pending);
      };
    }
  }

  /** Whether this builder inflates with node:zlib (see {@link nativeBlockAvailable}). */
  get native(): boolean {
    return this.nativeInflater !== undefined;
  }

  /** Blob offset of the first pushed byte still needed (not hashed yet); Infinity when none is. */
  get keepFrom(): number {
    return this.held.length > 0 ? this.hashedTo : Infinity;
  }

  /** Blob offset of the first byte the inflater has not used. */
  get inputUsed(): number {
    return this.at;
  }

  /**
   * Copies a lazy candidate's window and the output after it (up to the probe's size) out of the native
   * inflater's retained output: done only when it becomes a checkpoint or that output is about to go,
   * not at each of the ~50 boundaries per span that may become one.
   */
  private materialize(b: Boundary | undefined): void {
    if (!b?.lazy) return;
    const since = this.uOff - b.uOff;
    const have = Math.min(32768, b.uOff - this.memberU);
    const n = Math.min(PROBE, since);
    b.window = this.nativeInflater!.output.bytesBefore(since, have);
    b.probe = { buf: Buffer.allocUnsafe(PROBE), n };
    this.nativeInflater!.output.bytesBefore(since - n, n).copy(b.probe.buf);
    b.lazy = false;
  }

  /**
   * Feeds the next bytes of the blob (its bytes must not change while {@link keepFrom} is at or below
   * them). False: the output has no room; call {@link resume} once it has, until it returns true.
   */
  push(chunk: Uint8Array): boolean {
    if (this.chunk !== undefined) throw new VmimgError(ErrorCode.INTERNAL, 'checkpoints: push during a pause');
    if (chunk.length === 0) return true;
    if (this.indexError === undefined) this.held.push({ buf: chunk, at: this.cAbs });
    let used = 0;
    if (this.atMemberEnd) used = this.afterMember(chunk, 0);
    this.chunk = chunk;
    if (!this.ended && used < chunk.length) {
      this.inflater.setInput(used === 0 ? chunk : chunk.subarray(used));
      this.base = used;
      if (!this.run()) return false;
    }
    this.chunkDone();
    return true;
  }

  /** Goes on after a pause; true once the chunk is used up (see {@link push}). */
  resume(): boolean {
    if (this.chunk === undefined) return true;
    if (!this.run()) return false;
    this.chunkDone();
    return true;
  }

  private chunkDone(): void {
    const chunk = this.chunk!;
    this.chunk = undefined;
    this.cAbs += chunk.length;
    this.at = this.cAbs;
    this.lastByte = chunk[chunk.length - 1]!;
    if (this.cAbs - this.hashedTo > MAX_HELD) {
      if (this.unresolved) this.resolve();
      this.hashTo(this.cAbs);
      this.pending = undefined;
    }
  }

  /** Inflates the current chunk; false when paused for output room. */
  private run(): boolean {
    const chunk = this.chunk!;
    for (;;) {
      const st = this.inflater.step();
      if (st.needOutput) return false;
      const used = this.base + st.inputUsed;
      this.at = this.cAbs + used;
      this.output(st);
      if (this.unresolved && this.unresolved.b.probe!.n === PROBE) this.resolve();
      if (st.boundary && this.indexError === undefined) this.boundary(st, used > 0 ? chunk[used - 1]! : this.lastByte, this.cAbs + used);
      if (st.memberEnd) {
        if (this.unresolved) this.resolve();
        this.members++;
        this.pending = undefined;
        this.largeAt = undefined;
        this.atMemberEnd = true;
        if (used < chunk.length) {
          const next = this.afterMember(chunk, used);
          if (this.ended || next >= chunk.length) return true;
          this.inflater.setInput(chunk.subarray(next));
          this.base = next;
        } else return true;
      } else if (st.needInput) return true;
    }
  }

  /** At a member's end with input left: trailing zeros end the blob (as node:zlib), else a new member. */
  private afterMember(chunk: Uint8Array, at: number): number {
    this.atMemberEnd = false;
    if (chunk[at] === 0) {
      this.ended = true;
      return chunk.length;
    }
    this.inflater.resetMember();
    this.memberStart = true;
    this.memberU = this.uOff;
    return at;
  }

  private output(st: Step): void {
    if (st.output.length === 0) return;
    const large = this.follower.feed(st.output, this.uOff);
    this.uOff += st.output.length;
    if (this.largeAt === undefined && large.length > 0) this.largeAt = large[0];
    if (this.unresolved) feedProbe(this.unresolved.b, st.output);
    if (this.pending?.probe) feedProbe(this.pending, st.output);
  }

  private boundary(st: Step, prevByte: number, cOff: number): void {
    if (this.unresolved) this.resolve(); // with the output of one whole block, however short
    const b: Boundary = { cOff, uOff: this.uOff, bits: st.bits, prevByte, window: undefined };
    if (this.memberStart) {
      if (b.bits !== 0) throw new VmimgError(ErrorCode.INTERNAL, `inflater: a gzip member's first block starts mid-byte (${b.bits} bits)`);
      this.memberStart = false;
      return this.emit(b, true, new Uint8Array(0));
    }
    // Past a large file's data start: the last boundary before it becomes the extra checkpoint.
    if (this.largeAt !== undefined && b.uOff > this.largeAt) {
      this.materialize(this.pending);
      if (this.pending?.window !== undefined) this.emit(this.pending, false, this.pending.window);
      if (this.unresolved) this.resolve(); // its output was kept since it passed
      this.pending = undefined;
      this.largeAt = undefined;
    }
    const last = this.checkpoints[this.checkpoints.length - 1]!;
    if (this.uOff - last.uOff > this.opts.spanSize) return this.emit(b, false, this.inflater.window());
    this.hashTo(cOff);
    // Only worth a window copy if it could become the extra checkpoint before a large file.
    if (this.uOff - last.uOff >= this.opts.minGap) {
      if (this.nativeInflater) b.lazy = true;
      else b.window = this.inflater.window();
    }
    this.pending = b;
  }

  /** Takes `b` as a checkpoint: now when its bits are known, else once output after it was seen. */
  private emit(b: Boundary, memberStart: boolean, window: Uint8Array): void {
    this.pending = undefined; // an older boundary can never follow a newer checkpoint
    this.hashTo(b.cOff);
    if (b.bits >= 0) return this.commit(b, memberStart, window);
    b.probe ??= { buf: Buffer.allocUnsafe(PROBE), n: 0 };
    this.unresolved = { b, window };
  }

  /** Finds the unresolved checkpoint's bits by trial; one that does not resolve is dropped. */
  private resolve(): void {
    const { b, window } = this.unresolved!;
    this.unresolved = undefined;
    const after = this.heldBytes(b.cOff, Math.min(this.at, b.cOff + MAX_AFTER));
    const bits = resolveBits(window, b.prevByte, after, b.probe!.buf.subarray(0, b.probe!.n));
    if (bits === undefined) return; // its bytes stay in the current span
    b.bits = bits;
    this.commit(b, false, window);
  }

  private commit(b: Boundary, memberStart: boolean, window: Uint8Array): void {
    if (this.checkpoints.length >= this.opts.maxCheckpoints) {
      this.indexError = new VmimgError(ErrorCode.TOO_LARGE, `the gzip blob needs more than ${this.opts.maxCheckpoints} checkpoints (maxCheckpoints)`);
      this.held.length = 0; // no more hashing: only the inflation goes on
      return;
    }
    this.closeSpan();
    this.work.beginSpan();
    this.spanOpen = true;
    if (b.bits > 0) this.work.prefix(b.prevByte);
    const cp: Checkpoint = { cOff: b.cOff, uOff: b.uOff, bits: b.bits, memberStart, winLen: window.length, window: new Uint8Array(0), spanSha256: '' };
    this.checkpoints.push(cp);
    if (window.length > 0) this.settle(this.work.deflateWindow(window), (w) => (cp.window = w));
  }

  private closeSpan(): void {
    const last = this.checkpoints[this.checkpoints.length - 1];
    if (last !== undefined && this.spanOpen) this.settle(this.work.endSpan(), (hex) => (last.spanSha256 = hex));
  }

  /** Sets a side result now, or when it comes. */
  private settle<T>(result: T | Promise<T>, set: (v: T) => void): void {
    if (!(result instanceof Promise)) return set(result);
    const done = result.then(set);
    done.catch(() => undefined); // handled: settled() reports it
    this.later.push(done);
  }

  /** Resolves once every span digest and window of the checkpoints so far is in place (rejects if one failed). */
  async settled(): Promise<void> {
    await Promise.all(this.later);
  }

  /** Hashes held input up to blob offset `pos` into the current span (nothing before the first checkpoint). */
  private hashTo(pos: number): void {
    if (this.unresolved) pos = Math.min(pos, this.unresolved.b.cOff);
    while (this.hashedTo < pos && this.held.length > 0) {
      const h = this.held[0]!;
      const end = Math.min(pos, h.at + h.buf.length);
      if (this.spanOpen) this.work.span(h.buf.subarray(this.hashedTo - h.at, end - h.at), this.hashedTo);
      this.hashedTo = end;
      if (end === h.at + h.buf.length) this.held.shift();
    }
  }

  /** Held (not yet hashed) blob bytes `[from, to)`. */
  private heldBytes(from: number, to: number): Buffer {
    const parts: Uint8Array[] = [];
    for (const h of this.held) {
      const s = Math.max(from, h.at);
      const e = Math.min(to, h.at + h.buf.length);
      if (s < e) parts.push(h.buf.subarray(s - h.at, e - h.at));
    }
    return Buffer.concat(parts);
  }

  /** Throws ERR_INVALID_LAYER unless everything pushed was whole gzip members. */
  complete(): void {
    if (!this.ended && !this.atMemberEnd) {
      throw new VmimgError(ErrorCode.INVALID_LAYER, 'gzip data is cut short');
    }
    if (this.checkpoints.length === 0 && this.indexError === undefined) throw new VmimgError(ErrorCode.INVALID_LAYER, 'no gzip member found');
  }

  /** The index of everything pushed; `digest` and `diffId` are the blob's and the tar's (verified by the caller). */
  finish(ids: { digest: string; diffId: string }): ZranIndex {
    return { ...this.index(), ...ids };
  }

  /** Frees the inflater's state without an index (idempotent). */
  end(): void {
    this.inflater.end();
  }

  /**
   * {@link finish} without the ids (the inflate worker's: its caller verifies them later). With side
   * work off this thread (BuilderMode `work`), its spans' digests and windows are in place once
   * {@link settled} resolves.
   */
  index(): ZranWithoutIds {
    this.inflater.end();
    if (this.unresolved) this.resolve();
    this.complete();
    if (this.indexError) throw this.indexError;
    this.hashTo(this.cAbs);
    this.closeSpan();
    return { spanSize: this.opts.spanSize, compressedSize: this.cAbs, tarSize: this.uOff, memberCount: this.members, checkpoints: this.checkpoints };
  }
}

function feedProbe(b: Boundary, out: Uint8Array): void {
  const p = b.probe!;
  const n = Math.min(PROBE - p.n, out.length);
  if (n > 0) p.buf.set(out.subarray(0, n), p.n);
  p.n += n;
}
