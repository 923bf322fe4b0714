/**
 * SHA-256 off the main thread: a persistent pool of worker threads (hash-worker.ts), one per core by
 * default, started on first use and unref'd while idle, so it never keeps the process alive.
 *
 * Work is organised in streams. A {@link HashStream} belongs to one worker and owns a ring of shared
 * memory: `push` copies bytes into it (one memcpy, no allocation, no transfer: the caller keeps its
 * buffer) and the worker hashes them into the stream's whole digest and into any number of *parts*,
 * each a digest over ranges of the stream's bytes and runs of zeros (a file inside a tar, or inside
 * a span of an export). Ops are batched into a message per 2 MiB pushed (or a millisecond after a
 * digest is asked for), so thousands of small parts cost a few messages, not one each.
 *
 * Usage: `const s = sharedHashPool().stream({ whole: true })`; `await s.push(chunk)`; for a part
 * `const p = s.part(); p.range(start, end); p.zeros(n); const hex = p.digest()`; `s.release(offset)`
 * once no part will read below `offset`; `await s.end()` → the whole stream's hex digest. `destroy()`
 * stops the stream at once (its worker checks a shared flag while hashing long runs).
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ErrorCode, VmimgError } from '../errors.js';
import { Op, type FromWorker } from './hash-protocol.js';
import { startWorker } from './worker-thread.js';

/** Ring size of a stream unless asked otherwise (bytes): a few 1 MiB chunks in flight. */
export const DEFAULT_RING_BYTES = 8 << 20;
/** Bytes of the ring's control header (an Int32 cancel flag, padded). */
const CONTROL = 8;
/**
 * Pushed bytes that make a message go at once; fewer wait up to a millisecond (small chunks batch).
 * Messages cost a thread wake-up each: a 1 GiB layer is ~500 of them, not one per chunk or file.
 */
const SEND_BYTES = 2 << 20;
/** Queued op numbers that make a message go at once (a long run of tiny files between pushes). */
const SEND_OPS = 8192;
/**
 * Milliseconds a pool with nothing queued keeps its cached rings: a pull's layers reuse them, a process
 * that stopped hashing gets them back. Its workers stay (serve warms one up front) until `trim()`.
 */
const IDLE_MS = 1000;

export interface HashPoolOptions {
  /** Worker threads (default: the machine's available parallelism). */
  threads?: number;
}

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

/** A ring for a stream of about `bytes` (a small blob needs no 8 MiB of shared memory): 64 KiB to 8 MiB. */
export function ringFor(bytes: number): number {
  let size = 64 << 10;
  while (size < bytes && size < DEFAULT_RING_BYTES) size *= 2;
  return size;
}

interface Slot {
  worker: Worker | undefined;
  streams: Map<number, HashStream>;
  /** Messages sent and not yet answered: the worker is ref'd while any are. */
  inflight: number;
}

/** A pool of hashing workers; most callers share one ({@link sharedHashPool}). */
export class HashPool {
  private readonly slots: Slot[];
  private nextId = 1;
  private readonly rings: SharedArrayBuffer[] = [];
  /** Rings of destroyed streams, reused once their worker confirms it let go of them. */
  private readonly closing = new Map<number, SharedArrayBuffer>();
  private idle: NodeJS.Timeout | undefined;

  constructor(options: HashPoolOptions = {}) {
    const n = Math.max(1, options.threads ?? availableParallelism());
    this.slots = Array.from({ length: n }, () => ({ worker: undefined, streams: new Map(), inflight: 0 }));
  }

  /** A new stream on the least busy worker (started now if it was not running). */
  stream(options: HashStreamOptions = {}): HashStream {
    clearTimeout(this.idle);
    this.idle = undefined;
    const slot = this.slots.reduce((a, b) => (b.streams.size < a.streams.size ? b : a));
    const size = options.ringBytes ?? DEFAULT_RING_BYTES;
    // a cached ring is free in every thread (a shared one's writer let go too), so any stream may take it
    const i = this.rings.findIndex((r) => r.byteLength === size + CONTROL);
    const ring = i >= 0 ? this.rings.splice(i, 1)[0]! : new SharedArrayBuffer(size + CONTROL);
    const stream = new HashStream(this, slot, this.nextId++, ring, options);
    slot.streams.set(stream.id, stream);
    this.post(slot, { t: 'open', id: stream.id, ring, whole: options.whole === true }, false);
    return stream;
  }

  /** The SHA-256 (hex) of `data`, hashed by a worker (the bytes are copied once). */
  async digest(data: Uint8Array): Promise<string> {
    const s = this.stream({ whole: true, ranges: false, ringBytes: ringFor(data.length) });
    await s.push(data);
    return s.end();
  }

  /** Stops the workers; streams still open fail with ERR_ABORTED. */
  async close(): Promise<void> {
    clearTimeout(this.idle);
    this.idle = undefined;
    await Promise.all(this.slots.map(async (slot) => {
      const w = slot.worker;
      slot.worker = undefined;
      for (const s of slot.streams.values()) s.fail(new VmimgError(ErrorCode.ABORTED, 'hash pool closed'));
      await w?.terminate();
    }));
  }

  /**
   * Lets go of what an idle pool holds: its cached rings, and the workers with nothing queued (started
   * again on demand). A caller that has finished hashing for a while calls it (a pull before its open);
   * a pool left with nothing queued drops its rings by itself after a second.
   */
  trim(): void {
    this.dropRings();
    for (const slot of this.slots) {
      if (slot.worker === undefined || slot.streams.size > 0 || slot.inflight > 0) continue;
      const w = slot.worker;
      slot.worker = undefined; // before terminate: its 'exit' is no loss
      void w.terminate();
    }
  }

  private dropRings(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    this.rings.length = 0;
  }

  /** Schedules dropping the cached rings when nothing is queued (no stream open, no answer awaited). */
  private whenIdle(): void {
    if (this.idle !== undefined || this.closing.size > 0 || this.slots.some((s) => s.streams.size > 0 || s.inflight > 0)) return;
    this.idle = setTimeout(() => this.dropRings(), IDLE_MS).unref();
  }

  /** @internal Sends a message to the slot's worker (started on demand); `answered` ones ref it. */
  post(slot: Slot, msg: unknown, answered: boolean): void {
    const worker = slot.worker ?? this.start(slot);
    if (answered && slot.inflight++ === 0) worker.ref();
    worker.postMessage(msg);
  }

  /** @internal A stream ended: its ring can serve the next one (a destroyed one's once its worker let go). */
  done(slot: Slot, stream: HashStream, ring: SharedArrayBuffer | undefined, ended: boolean): void {
    slot.streams.delete(stream.id);
    if (ended) {
      if (ring) this.reuse(ring);
    } else if (slot.worker) {
      if (ring) this.closing.set(stream.id, ring);
      this.post(slot, { t: 'close', id: stream.id }, true);
    }
    this.whenIdle();
  }

  /**
   * @internal Caches a ring no thread uses any more for a later stream. Reusing matters beyond the
   * allocation: a ring a worker saw is freed only once that worker's isolate collects its garbage, which
   * an idle hash or inflate worker rarely does (a new ring per layer: ~1.5 MiB of RSS kept per layer).
   */
  reuse(ring: SharedArrayBuffer): void {
    if (this.rings.length < 8) this.rings.push(ring);
  }

  private start(slot: Slot): Worker {
    const worker = startWorker(import.meta.url, 'hash-worker');
    slot.worker = worker;
    slot.inflight = 0;
    worker.on('message', (msg: FromWorker) => {
      if (--slot.inflight === 0) worker.unref();
      const closed = this.closing.get(msg.id);
      if (msg.closed && closed !== undefined) {
        this.closing.delete(msg.id);
        this.reuse(closed);
      }
      slot.streams.get(msg.id)?.answer(msg);
      if (slot.inflight === 0) this.whenIdle();
    });
    const lost = (why: string): void => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      for (const s of slot.streams.values()) s.fail(new VmimgError(ErrorCode.INTERNAL, `hash worker ${why}`));
      slot.streams.clear();
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    worker.unref(); // after the listeners: adding a 'message' listener refs a Worker again
    return worker;
  }
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
  /** Threads still using a `shared` ring (this stream's worker, the other writer): the ring is reused at 0. */
  private holders = 2;
  private writerGone = false;
  /** Called after each answer from the worker (ring space may have been freed). */
  onAnswer: (() => void) | undefined;

  /** @internal Made by {@link HashPool.stream}. */
  constructor(private readonly pool: HashPool, private readonly slot: Slot, readonly id: number, private readonly sab: SharedArrayBuffer, private readonly options: HashStreamOptions) {
    this.ring = new Uint8Array(sab, CONTROL);
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
    return { sab: this.sab, offset: CONTROL, size: this.size };
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

  /** Stops the stream at once; its pending digests never settle. Idempotent. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.flag, 0, 1);
    clearTimeout(this.timer);
    this.ops = [];
    this.pool.done(this.slot, this, this.options.shared ? undefined : this.sab, false);
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
    this.pool.post(this.slot, { t: 'ops', id: this.id, ops }, true);
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
      this.pool.done(this.slot, this, this.options.shared ? undefined : this.sab, true);
      if (this.options.shared) this.letGo();
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
    this.letGo();
  }

  private letGo(): void {
    if (--this.holders === 0) this.pool.reuse(this.sab);
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

let shared: HashPool | undefined;

/**
 * The process's shared pool, started on first use: one worker fewer than the cores (the main thread
 * keeps one busy; each worker costs ~20 MiB of RSS, which a 1 GiB flatten's 200 MiB budget felt).
 */
export function sharedHashPool(): HashPool {
  return (shared ??= new HashPool({ threads: Math.max(1, availableParallelism() - 1) }));
}
