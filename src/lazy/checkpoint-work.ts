/**
 * The work a checkpoint needs besides finding it: the sha256 of each span's compressed bytes and the
 * raw deflate of its 32 KiB window. `vmimg index build` does both on the builder's own thread (a worker
 * of its own: {@link InlineWork}). A pull's inflate worker hands both to other threads
 * ({@link OffThreadWork}), because its thread is the pull's critical path (session 7: span hashes
 * ~12 % and window deflates ~8 % of the checkpointing inflate). Both give the same bytes, so a pull's
 * `.zran` equals `index build`'s (tested).
 */
import { createHash, type Hash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { SpanHashStream } from './span-hasher.js';

/** Where a checkpoint's side work is done; a result is given now or later (the index waits for it). */
export interface CheckpointWork {
  /** A new span's digest begins (the previous one was taken by {@link endSpan}). */
  beginSpan(): void;
  /** The byte before the span's first goes in first (a span starting mid-byte: that byte's high bits). */
  prefix(byte: number): void;
  /** Blob bytes `bytes`, at blob offset `at`, are the current span's next bytes. */
  span(bytes: Uint8Array, at: number): void;
  /** The current span's sha256 in hex. */
  endSpan(): string | Promise<string>;
  /** `window` raw-deflated with zlib's defaults (level 6: what every `.zran` so far holds). */
  deflateWindow(window: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** Both on the calling thread (the builder's behaviour before side work could move). */
export class InlineWork implements CheckpointWork {
  private hash: Hash | undefined;

  beginSpan(): void {
    this.hash = createHash('sha256');
  }

  prefix(byte: number): void {
    this.hash!.update(Uint8Array.of(byte));
  }

  span(bytes: Uint8Array): void {
    this.hash!.update(bytes);
  }

  endSpan(): string {
    return this.hash!.digest('hex');
  }

  deflateWindow(window: Uint8Array): Uint8Array {
    return zlib.deflateRawSync(window);
  }
}

/**
 * Span digests by the span hasher (span-hasher.ts: a thread reading the blob's bytes where they are, in
 * the input ring), window deflates in libuv's pool (`zlib.deflateRaw`; the window must not change
 * meanwhile). The caller flushes the span ops and keeps the ring's bytes up to {@link safeTo}.
 */
export class OffThreadWork implements CheckpointWork {
  private readonly spans: SpanHashStream;

  /** `ring`: where the blob's bytes are (blob offset `x` at `x % ring.length`); `onAnswer`: see SpanHashStream. */
  constructor(ring: Uint8Array, onAnswer: () => void) {
    this.spans = new SpanHashStream(ring, onAnswer);
  }

  beginSpan(): void {
    this.spans.begin();
  }

  prefix(byte: number): void {
    this.spans.byte(byte);
  }

  span(bytes: Uint8Array, at: number): void {
    this.spans.range(at, at + bytes.length);
  }

  endSpan(): Promise<string> {
    return this.spans.end();
  }

  deflateWindow(window: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => zlib.deflateRaw(window, (err, out) => (err ? reject(err) : resolve(out))));
  }

  /** Blob offset below which the ring's bytes are no longer needed by the span hasher. */
  get safeTo(): number {
    return this.spans.safeTo;
  }

  /** Sends the queued span ops to the hasher. */
  flush(): void {
    this.spans.flush();
  }

  /** Stops: the hasher lets go of the ring; pending digests never settle. */
  close(): void {
    this.spans.close();
  }
}
