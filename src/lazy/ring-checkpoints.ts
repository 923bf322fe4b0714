/**
 * A gzip stream of the inflate worker (src/layer/inflate-worker.ts) that also builds the layer's gzip
 * checkpoints (`pull --index-build`): the checkpoint builder's native block inflater reads the stream's
 * input ring and writes the tar straight into the flattener's ring, so a layer is inflated once, on one
 * thread, with no tar bytes posted or copied (session 6's profile: posting them back cost ~3 CPU-s on
 * the 1 GB bench image). The blob goes to the builder in 1 MiB chunks at fixed offsets and the output
 * stops at fixed offsets (block-output.ts), as when `vmimg index build` reads the blob from a file: the
 * same blob gives the same `.zran`. Span digests and window deflates are done by other threads
 * (checkpoint-work.ts `OffThreadWork`): the input ring's bytes stay until the span hasher read them,
 * and the stream ends once every digest and window is in.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { RingOutput } from './block-output.js';
import { CheckpointBuilder, type CheckpointOptions, type ZranWithoutIds } from './checkpoint-builder.js';
import { OffThreadWork } from './checkpoint-work.js';

/** Blob bytes per builder chunk (build.ts feeds a file in the same chunks). */
export const CHECKPOINT_CHUNK = 1 << 20;
/** Tar bytes one {@link RingCheckpointer.step} writes at most: bounds how long one stream holds the thread. */
const STEP_OUTPUT = 1 << 20;

/** The inflate worker's view of a stream (its fields as inflate-worker.ts keeps them). */
export interface RingStreamState {
  /** Compressed bytes in the input ring up to this stream offset; `last`: no more will come. */
  inEnd: number;
  last: boolean;
  /** Output may be written up to this stream offset. */
  limit: number;
  consumed: number;
  produced: number;
  done: boolean;
  error: { message: string; code: string } | undefined;
}

/** What the worker reports at the stream's end: the index without its ids, or why there is none. */
export type RingIndexResult = { zran: ZranWithoutIds } | { zranError: { code: string; message: string } };

/** Drives one checkpointing stream; see the module comment. */
export class RingCheckpointer {
  private readonly builder: CheckpointBuilder;
  private readonly out: RingOutput;
  private readonly work: OffThreadWork;
  /** Blob bytes handed to the builder. */
  private fed = 0;
  private paused = false;
  /** The blob is all inflated; the side work is being waited for. */
  private finishing = false;
  private closed = false;
  private result: RingIndexResult | undefined;

  /**
   * `wake`: called when the stream can go on after {@link step} returned false for a reason of this
   * driver's own (the side work it waited for at the end is done): step again then.
   */
  constructor(private readonly input: Uint8Array, output: Uint8Array, options: Partial<CheckpointOptions>, private readonly wake: () => void) {
    if (input.length % CHECKPOINT_CHUNK !== 0 || input.length < 2 * CHECKPOINT_CHUNK) throw new VmimgError(ErrorCode.INTERNAL, `checkpointing input ring of ${input.length} bytes`);
    this.out = new RingOutput(output);
    this.work = new OffThreadWork(input, () => this.closed || wake());
    this.builder = new CheckpointBuilder(options, { engine: 'native', output: this.out, work: this.work });
  }

  /** One bounded piece of work on `s` (its counters updated); false when it cannot go on now. */
  step(s: RingStreamState): boolean {
    if (s.done || s.error) return false;
    this.out.limit = s.limit;
    this.out.quota = STEP_OUTPUT;
    const before = s.consumed + s.produced;
    // until a counter moves (the worker reports only then) or nothing more can be fed
    for (let fed = -1; fed !== this.fed && !s.done && !s.error && s.consumed + s.produced === before; ) {
      fed = this.fed;
      try {
        this.feed(s);
      } catch (err) {
        s.error = zlibLike(err);
      }
      s.produced = this.out.produced;
      // ring space of input bytes the inflater used and the span hasher read (a span's hash needs them)
      s.consumed = s.done ? s.inEnd : Math.min(this.builder.inputUsed, this.builder.keepFrom, this.fed, this.work.safeTo);
    }
    this.work.flush();
    return !s.done && !s.error && s.consumed + s.produced !== before;
  }

  private feed(s: RingStreamState): void {
    if (this.result !== undefined) return void (s.done = true);
    if (this.finishing) return;
    if (this.paused) {
      this.paused = !this.builder.resume();
      return;
    }
    if (this.fed === s.inEnd) {
      if (s.last && this.out.flush()) this.end(s);
      return;
    }
    // whole chunks only (the last may be short): the same chunks as a file gives the same index
    const end = Math.min(this.fed - (this.fed % CHECKPOINT_CHUNK) + CHECKPOINT_CHUNK, s.inEnd);
    if (end % CHECKPOINT_CHUNK !== 0 && !s.last) return;
    const at = this.fed % this.input.length;
    const chunk = this.input.subarray(at, at + end - this.fed);
    this.fed = end;
    this.paused = !this.builder.push(chunk);
  }

  /**
   * The blob is all inflated: check it was whole gzip members (a throw fails the stream), then finish
   * the index once the side work is in; the stream is done then (`wake`).
   */
  private end(s: RingStreamState): void {
    this.builder.complete();
    this.finishing = true;
    void this.finishIndex().then((result) => {
      this.result = result;
      if (!this.closed) this.wake();
    });
  }

  private async finishIndex(): Promise<RingIndexResult> {
    try {
      const zran = this.builder.index();
      this.work.flush();
        await this.builder.settled();
      return { zran };
    } catch (err) {
      const e = err as { code?: string; message?: string };
      return { zranError: { code: e.code ?? ErrorCode.INTERNAL, message: e.message ?? String(err) } };
    }
  }

  /** At the stream's end: the index or its failure. */
  indexResult(): RingIndexResult | undefined {
    return this.result;
  }

  /** Frees zlib's state and stops the side work (idempotent). */
  close(): void {
    this.closed = true;
    this.work.close();
    this.builder.end();
  }
}

/** The builder's corrupt-gzip errors as zlib's (`Z_DATA_ERROR`): the flattener reports them as zlib's own. */
function zlibLike(err: unknown): { message: string; code: string } {
  const e = err as { code?: string; message?: string };
  if (e.code !== ErrorCode.INVALID_LAYER) return { message: e.message ?? String(err), code: e.code ?? ErrorCode.INTERNAL };
  return { message: (e.message ?? '').replace(/^gzip data is corrupt \((.*)\)$/s, '$1'), code: 'Z_DATA_ERROR' };
}
