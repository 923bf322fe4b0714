/**
 * One stream of bytes hashed by one worker of a {@link HashPool} (hash-pool.ts, whose module comment
 * describes the whole): a ring of shared memory the caller pushes into, the ops (pushes, parts, digests,
 * releases) batched into messages for the worker, and the bookkeeping of which ring bytes may be reused.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { Op, type FromWorker } from './hash-protocol.js';
import { RING_CONTROL, type SharedRing } from './ring-cache.js';
import type { HashPool } from './hash-pool.js';

/**
 * Pushed bytes that make a message go at once; fewer wait up to a millisecond (small chunks batch).
 * Messages cost a thread wake-up each: a 1 GiB layer is ~500 of them, not one per chunk or file.
 */
const SEND_BYTES = 2 << 20;
/** Queued op numbers that make a message go at once (a long run of tiny files between pushes). */
const SEND_OPS = 8192;

export interface HashStreamOptions {
  /** Hash every pushed byte into the stream's digest, answered by `end()` (default false). */
  whole?: boolean;
  /**
   * Set false when no part reads pushed bytes (only `whole`, or parts of zeros): the ring is reused
   * as soon as the worker hashed a push, with no `release` calls (default true).
   */
  ranges?: boolean;
  /** Ring bytes (default 8 MiB): how far pushes may run ahead of the worker plus the unreleased window. */
  ringBytes?: number;
  /**
   * Milliseconds queued ops (parts, digests, small pushes) wait for a push to carry them before they
   * go alone (default 1). A caller that needs no digest soon sets more: fewer messages and wake-ups.
   */
  flushDelayMs?: number;
  /**
   * Another thread writes the ring too ({@link HashStream.sharedRing}, {@link HashStream.pushWritten}): the ring
   * serves a later stream only once this one ended and that thread let go of it ({@link HashStream.writerDone});
   * a destroyed one's never (that thread may still be writing).
   */
  shared?: boolean;
}

/** @internal What a stream needs of its pool: the way to its worker, and where its ring goes when it is done. */
export interface StreamHost {
  /** Sends a message to the stream's worker; `answered` ones keep the worker ref'd until answered. */
  post(msg: unknown, answered: boolean): void;
  /** The stream ended (`ended`) or was destroyed; `ring` may serve a later stream (see ring-cache.ts). */
  done(stream: HashStream, ring: SharedArrayBuffer | undefined, ended: boolean): void;
}

/** A digest over ranges of a stream's bytes and runs of zeros, in the order given. */
export interface HashPart {
  /** Stream bytes [start, end) (pushed, not yet released). */
  range(start: number, end: number): void;
  /** `n` zero bytes (a sparse file's hole). */
  zeros(n: number): void;
  /** Completes the part: its SHA-256 in hex. */
  digest(): Promise<string>;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (err: Error) => void;
}

/** One stream of bytes hashed by one worker of a {@link HashPool}; see the module comment. */
export class HashStream {
  /** Bytes pushed so far: the stream offset the next push starts at. */
  length = 0;
  private readonly ring: Uint8Array;
  private readonly flag: Int32Array;
  private readonly size: number;
  private freed = 0;
  private released = 0;
  /**
   * Per message sent and not yet answered, the lowest ring byte its Range ops read (Infinity: none);
   * and the same for the ops not yet sent. Bytes released below all of them are free without the
   * worker's answer: a header-only stretch (the tar export's empty files) never waits on the worker.
   */
  private readonly inFlight: number[] = [];
  private unsentRange = Infinity;
  private ops: number[] = [];
  private unsent = 0;
  private timer: NodeJS.Timeout | undefined;
  private nextPart = 1;
  private readonly parts = new Map<number, Waiter<string>>();
  private whole: Waiter<string> | undefined;
  private space: (() => void)[] = [];
  private error: Error | undefined;
  private closed = false;
  private writerGone = false;
  /** Called after each answer from the worker (ring space may have been freed). */
  onAnswer: (() => void) | undefined;

  /**
   * @internal Made by {@link HashPool.stream}: `host` carries its messages to its worker, `lease` is its
   * ring's when made with `shared`.
   */
  constructor(private readonly host: StreamHost, readonly id: number, private readonly sab: SharedArrayBuffer, private readonly options: HashStreamOptions, private readonly lease?: SharedRing) {
    this.ring = new Uint8Array(sab, RING_CONTROL);
    this.flag = new Int32Array(sab, 0, 1);
    Atomics.store(this.flag, 0, 0);
    this.size = this.ring.length;
  }

  /**
   * Appends `chunk` to the stream (copied into the ring). Resolves at once while the ring has room,
   * else when the worker caught up. Rejects when the room can never come: the bytes not yet released
   * fill the ring (release more often, or use a bigger `ringBytes`).
   */
  async push(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      if (this.error) throw this.error;
      const room = this.size - (this.length - this.reusable());
      if (room === 0) {
        const unreleased = this.options.ranges === false ? 0 : this.length - this.released;
        if (unreleased >= this.size) throw new VmimgError(ErrorCode.INTERNAL, `hash stream: ${unreleased} bytes not released fill its ${this.size}-byte ring`);
        this.flush();
        await new Promise<void>((resolve) => this.space.push(resolve));
        continue;
      }
      const n = Math.min(room, chunk.length - at);
      this.copyIn(n === chunk.length ? chunk : chunk.subarray(at, at + n));
      at += n;
    }
    this.pushed();
  }

  /**
   * `push` without waiting: copies all of `chunk` in and returns true when the ring has room for it
   * now, else copies nothing and returns false (then `push` it). Saves a promise per small chunk.
   */
  tryPush(chunk: Uint8Array): boolean {
    if (this.error) throw this.error;
    if (this.size - (this.length - this.reusable()) < chunk.length) return false;
    this.copyIn(chunk);
    this.pushed();
    return true;
  }

  private copyIn(chunk: Uint8Array): void {
    const n = chunk.length;
    const pos = this.length % this.size;
    const first = Math.min(n, this.size - pos);
    this.ring.set(first === n ? chunk : chunk.subarray(0, first), pos);
    if (first < n) this.ring.set(chunk.subarray(first), 0);
    this.ops.push(Op.Push, n);
    this.length += n;
    this.unsent += n;
    if (this.options.ranges === false) this.ops.push(Op.Release, this.length);
  }

  private pushed(): void {
    // enough new bytes: let the worker start on them now (a trickle of small chunks goes in batches)
    if (this.unsent >= SEND_BYTES) this.flush();
    else this.soon();
  }

  /** The ring's shared memory and where its bytes start (for a stream made with `shared`). */
  get sharedRing(): { sab: SharedArrayBuffer; offset: number; size: number } {
    return { sab: this.sab, offset: RING_CONTROL, size: this.size };
  }

  /**
   * The stream offset below which the ring's bytes may be written: reusable space plus one ring (for a
   * `whole` stream what the worker freed; with parts also what was released and no pending range reads).
   */
  get writeLimit(): number {
    return this.reusable() + this.size;
  }

  /**
   * Appends `n` bytes another thread already wrote into the ring at this stream's offset (a `shared`
   * stream; they must lie below {@link writeLimit}).
   */
  pushWritten(n: number): void {
    if (this.error) throw this.error;
    if (this.length + n > this.writeLimit) throw new VmimgError(ErrorCode.INTERNAL, `hash stream: ${n} bytes pushed past the ring's free space`);
    this.ops.push(Op.Push, n);
    this.length += n;
    this.unsent += n;
    this.pushed();
  }

  /** A new part of this stream (see {@link HashPart}). */
  part(): HashPart {
    const id = this.nextPart++;
    return {
      range: (start, end) => {
        if (end <= start) return;
        this.unsentRange = Math.min(this.unsentRange, start);
        this.queue(Op.Range, id, start, end);
      },
      zeros: (n) => {
        if (n > 0) this.queue(Op.Zeros, id, n);
      },
      digest: () =>
        this.request(this.parts, id, () => {
          this.queue(Op.Digest, id);
          this.soon(); // someone may wait for it: it goes with the next push, or in a millisecond
        }),
    };
  }

  /**
   * Stream bytes [start, end) as views of the ring (two at the wrap), valid until `release` passes
   * them: a writer can send the bytes the worker hashes without copying them again (the tar export).
   */
  view(start: number, end: number): Buffer[] {
    if (start < this.released || end > this.length || end - start > this.size) throw new RangeError(`hash stream: bytes ${start}-${end} are not in the ring`);
    const views: Buffer[] = [];
    for (let at = start; at < end; ) {
      const pos = at % this.size;
      const n = Math.min(end - at, this.size - pos);
      views.push(Buffer.from(this.ring.buffer, this.ring.byteOffset + pos, n));
      at += n;
    }
    return views;
  }

  /** No part will read stream bytes below `offset` any more: their ring space can be reused. */
  release(offset: number): void {
    if (offset <= this.released) return;
    this.released = offset;
    this.queue(Op.Release, offset);
    this.wake(); // room may be free now without the worker (see inFlight)
  }

  /** Ends the stream: the whole stream's SHA-256 in hex ('' unless made with `whole`). */
  end(): Promise<string> {
    const p = this.request({ set: (_id: number, w: Waiter<string>) => (this.whole = w) }, 0, () => this.ops.push(Op.End));
    this.flush();
    return p;
  }

  /**
   * Stops the stream at once; its pending digests never settle. Idempotent. A writer waiting for ring
   * room on `onAnswer` is called once more, to find the stream {@link isClosed}.
   */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.flag, 0, 1);
    clearTimeout(this.timer);
    this.ops = [];
    this.host.done(this, this.options.shared ? undefined : this.sab, false);
    this.onAnswer?.();
  }

  /** Ended or destroyed: the stream takes no more bytes, and no more room will come. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends the queued ops now (push and end do; parts' ops otherwise go with the next push or soon after). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.ops.length === 0 || this.closed) return;
    const ops = this.ops;
    this.ops = [];
    this.unsent = 0;
    this.inFlight.push(this.unsentRange);
    this.unsentRange = Infinity;
    this.host.post({ t: 'ops', id: this.id, ops }, true);
  }

  /** @internal The worker's answer to one message. */
  answer(msg: FromWorker): void {
    this.freed += msg.freed;
    this.inFlight.shift(); // the worker answers a stream's messages in order, once each
    for (let i = 0; i < msg.digests.length; i += 2) {
      const id = msg.digests[i] as number;
      this.parts.get(id)?.resolve(msg.digests[i + 1] as string);
      this.parts.delete(id);
    }
    if (msg.whole !== undefined) {
      this.closed = true;
      this.host.done(this, this.options.shared ? undefined : this.sab, true);
      this.lease?.letGo();
      this.whole?.resolve(msg.whole);
    }
    this.wake();
    this.onAnswer?.();
  }

  /**
   * The other thread that writes this `shared` stream's ring let go of it for good (it will write no
   * more): once the stream has ended too, the ring serves a later stream. Idempotent.
   */
  writerDone(): void {
    if (this.writerGone) return;
    this.writerGone = true;
    this.lease?.letGo();
  }

  /** @internal The worker is gone: every pending digest and push fails with `err`. */
  fail(err: Error): void {
    this.error ??= err;
    for (const w of this.parts.values()) w.reject(err);
    this.parts.clear();
    this.whole?.reject(err);
    this.whole = undefined;
    this.wake();
    this.onAnswer?.();
  }

  /**
   * Stream offset below which the ring may be overwritten: what the worker said it freed, or (parts
   * only) what was released and no Range op the worker may not have run yet reads.
   */
  private reusable(): number {
    if (this.options.whole === true || this.options.ranges === false) return this.freed;
    let low = Math.min(this.released, this.unsentRange);
    for (const start of this.inFlight) low = Math.min(low, start);
    return Math.max(this.freed, low);
  }

  private wake(): void {
    const waiters = this.space;
    this.space = [];
    for (const w of waiters) w();
  }

  private queue(...ops: number[]): void {
    if (this.closed) return;
    this.ops.push(...ops);
    if (this.ops.length >= SEND_OPS) this.flush();
  }

  /** Sends what is queued within a millisecond unless a push sends it first. */
  private soon(): void {
    this.timer ??= setTimeout(() => this.flush(), this.options.flushDelayMs ?? 1);
  }

  /** A promise for an answer, marked handled (a caller that stopped listening is not an unhandled rejection). */
  private request(table: { set(id: number, w: Waiter<string>): unknown }, id: number, send: () => void): Promise<string> {
    if (this.error) return Promise.reject(this.error);
    const p = new Promise<string>((resolve, reject) => table.set(id, { resolve, reject }));
    p.catch(() => undefined);
    send();
    return p;
  }
}
