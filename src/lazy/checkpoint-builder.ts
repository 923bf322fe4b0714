/**
 * Builds a `.zran` checkpoint index from a gzip layer blob fed in chunks (docs/FORMAT.md "Where
 * checkpoints are taken"): one at every member start, one at the first block boundary more than
 * `spanSize` output bytes after the last, and an extra one at the last boundary before a large file's
 * data. Each span's compressed bytes are hashed as they pass, so reads can verify them.
 */
import { createHash, type Hash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { ErrorCode, VmimgError } from '../errors.js';
import { BlockInflater, type Step } from './pako-block.js';
import { TarFollower } from './tar-follower.js';
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

/** Unhashed input is hashed anyway past this many bytes (a huge deflate block); the pending boundary is dropped. */
const MAX_HELD = 16 * MiB;

/** A block boundary not taken as a checkpoint yet: it still can be, until the next boundary. */
interface Boundary {
  cOff: number;
  uOff: number;
  bits: number;
  prevByte: number;
  window: Uint8Array | undefined;
}

/** Feed the blob with {@link push}, then {@link finish}. Corrupt gzip is ERR_INVALID_LAYER. */
export class CheckpointBuilder {
  private readonly opts: CheckpointOptions;
  private readonly inflater = new BlockInflater();
  private readonly follower: TarFollower;
  private readonly checkpoints: Checkpoint[] = [];
  private readonly held: { buf: Uint8Array; at: number }[] = [];
  private spanHash: Hash | undefined;
  private hashedTo = 0;
  private cAbs = 0;
  private uOff = 0;
  private lastByte = 0;
  private memberStart = true;
  private atMemberEnd = false;
  private ended = false;
  private members = 0;
  private pending: Boundary | undefined;
  /** Tar offset where a large file's data begins, found by the follower and not yet passed. */
  private largeAt: number | undefined;

  constructor(options: Partial<CheckpointOptions> = {}) {
    this.opts = { ...DEFAULT_CHECKPOINT_OPTIONS, ...options };
    this.follower = new TarFollower(this.opts.largeFileSize);
  }

  /** Feeds the next bytes of the blob (the buffer must not change until {@link finish}). */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.held.push({ buf: chunk, at: this.cAbs });
    let used = 0;
    if (this.atMemberEnd) used = this.afterMember(chunk, 0);
    if (!this.ended && used < chunk.length) {
      this.inflater.setInput(used === 0 ? chunk : chunk.subarray(used));
      this.run(chunk, used);
    }
    this.cAbs += chunk.length;
    this.lastByte = chunk[chunk.length - 1]!;
    if (this.cAbs - this.hashedTo > MAX_HELD) {
      this.hashTo(this.cAbs);
      this.pending = undefined;
    }
  }

  private run(chunk: Uint8Array, base: number): void {
    for (;;) {
      const st = this.inflater.step();
      const used = base + st.inputUsed;
      this.output(st);
      if (st.boundary) this.boundary(st, used > 0 ? chunk[used - 1]! : this.lastByte, this.cAbs + used);
      if (st.memberEnd) {
        this.members++;
        this.pending = undefined;
        this.largeAt = undefined;
        this.atMemberEnd = true;
        if (used < chunk.length) {
          const next = this.afterMember(chunk, used);
          if (this.ended || next >= chunk.length) return;
          this.inflater.setInput(chunk.subarray(next));
          base = next;
        } else return;
      } else if (st.needInput) return;
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
    return at;
  }

  private output(st: Step): void {
    if (st.output.length === 0) return;
    const large = this.follower.feed(st.output, this.uOff);
    this.uOff += st.output.length;
    if (this.largeAt === undefined && large.length > 0) this.largeAt = large[0];
  }

  private boundary(st: Step, prevByte: number, cOff: number): void {
    const b: Boundary = { cOff, uOff: this.uOff, bits: st.bits, prevByte, window: undefined };
    if (this.memberStart) {
      if (b.bits !== 0) throw new VmimgError(ErrorCode.INTERNAL, `pako: a gzip member's first block starts mid-byte (${b.bits} bits)`);
      this.memberStart = false;
      return this.emit(b, true, new Uint8Array(0));
    }
    // Past a large file's data start: the last boundary before it becomes the extra checkpoint.
    if (this.largeAt !== undefined && b.uOff > this.largeAt) {
      if (this.pending?.window !== undefined) this.emit(this.pending, false, this.pending.window);
      this.pending = undefined;
      this.largeAt = undefined;
    }
    const last = this.checkpoints[this.checkpoints.length - 1]!;
    if (this.uOff - last.uOff > this.opts.spanSize) return this.emit(b, false, this.inflater.window());
    this.hashTo(cOff);
    // Only worth a window copy if it could become the extra checkpoint before a large file.
    if (this.uOff - last.uOff >= this.opts.minGap) b.window = this.inflater.window();
    this.pending = b;
  }

  private emit(b: Boundary, memberStart: boolean, window: Uint8Array): void {
    if (this.checkpoints.length >= this.opts.maxCheckpoints) {
      throw new VmimgError(ErrorCode.TOO_LARGE, `the gzip blob needs more than ${this.opts.maxCheckpoints} checkpoints (maxCheckpoints)`);
    }
    this.pending = undefined; // an older boundary can never follow a newer checkpoint
    this.hashTo(b.cOff);
    this.closeSpan();
    this.spanHash = createHash('sha256');
    if (b.bits > 0) this.spanHash.update(Uint8Array.of(b.prevByte));
    this.checkpoints.push({
      cOff: b.cOff,
      uOff: b.uOff,
      bits: b.bits,
      memberStart,
      winLen: window.length,
      window: window.length > 0 ? zlib.deflateRawSync(window) : new Uint8Array(0),
      spanSha256: '',
    });
  }

  private closeSpan(): void {
    const last = this.checkpoints[this.checkpoints.length - 1];
    if (last !== undefined && this.spanHash !== undefined) last.spanSha256 = this.spanHash.digest('hex');
  }

  /** Hashes held input up to blob offset `pos` into the current span (nothing before the first checkpoint). */
  private hashTo(pos: number): void {
    while (this.hashedTo < pos && this.held.length > 0) {
      const h = this.held[0]!;
      const end = Math.min(pos, h.at + h.buf.length);
      this.spanHash?.update(h.buf.subarray(this.hashedTo - h.at, end - h.at));
      this.hashedTo = end;
      if (end === h.at + h.buf.length) this.held.shift();
    }
  }

  /** The index of everything pushed; `digest` and `diffId` are the blob's and the tar's (verified by the caller). */
  finish(ids: { digest: string; diffId: string }): ZranIndex {
    this.inflater.end();
    if (!this.ended && !this.atMemberEnd) {
      throw new VmimgError(ErrorCode.INVALID_LAYER, 'gzip data is cut short');
    }
    if (this.checkpoints.length === 0) throw new VmimgError(ErrorCode.INVALID_LAYER, 'no gzip member found');
    this.hashTo(this.cAbs);
    this.closeSpan();
    return { spanSize: this.opts.spanSize, compressedSize: this.cAbs, tarSize: this.uOff, ...ids, memberCount: this.members, checkpoints: this.checkpoints };
  }
}
