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
 *
 * The stream itself is hash-stream.ts; the rings and the rules for reusing them, ring-cache.ts.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ErrorCode, VmimgError } from '../errors.js';
import type { FromWorker } from './hash-protocol.js';
import { HashStream, type HashStreamOptions, type StreamHost } from './hash-stream.js';
import { DEFAULT_RING_BYTES, RingCache, SharedRing, ringFor } from './ring-cache.js';
import { startWorker } from './worker-thread.js';

export { HashStream, type HashPart, type HashStreamOptions } from './hash-stream.js';
export { DEFAULT_RING_BYTES, ringFor } from './ring-cache.js';

export interface HashPoolOptions {
  /** Worker threads (default: the machine's available parallelism). */
  threads?: number;
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
  /** Cached rings; kept while the pool is busy, dropped a second after it went idle (its workers stay until `trim()`). */
  private readonly rings = new RingCache();

  constructor(options: HashPoolOptions = {}) {
    const n = Math.max(1, options.threads ?? availableParallelism());
    this.slots = Array.from({ length: n }, () => ({ worker: undefined, streams: new Map(), inflight: 0 }));
  }

  /** A new stream on the least busy worker (started now if it was not running). */
  stream(options: HashStreamOptions = {}): HashStream {
    const slot = this.slots.reduce((a, b) => (b.streams.size < a.streams.size ? b : a));
    const ring = this.rings.take(options.ringBytes ?? DEFAULT_RING_BYTES);
    const host: StreamHost = {
      post: (msg, answered) => this.post(slot, msg, answered),
      done: (s, r, ended) => this.done(slot, s, r, ended),
    };
    const stream = new HashStream(host, this.nextId++, ring, options, options.shared ? new SharedRing(this.rings, ring) : undefined);
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
    this.rings.cancelDrop();
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
    this.rings.drop();
    for (const slot of this.slots) {
      if (slot.worker === undefined || slot.streams.size > 0 || slot.inflight > 0) continue;
      const w = slot.worker;
      slot.worker = undefined; // before terminate: its 'exit' is no loss
      void w.terminate();
    }
  }

  /** Schedules dropping the cached rings when nothing is queued (no stream open, no answer awaited). */
  private whenIdle(): void {
    this.rings.dropWhenIdle(this.slots.some((s) => s.streams.size > 0 || s.inflight > 0));
  }

  /** Sends a message to the slot's worker (started on demand); `answered` ones ref it. */
  private post(slot: Slot, msg: unknown, answered: boolean): void {
    const worker = slot.worker ?? this.start(slot);
    if (answered && slot.inflight++ === 0) worker.ref();
    worker.postMessage(msg);
  }

  /** A stream ended: its ring can serve the next one (a destroyed one's once its worker let go). */
  private done(slot: Slot, stream: HashStream, ring: SharedArrayBuffer | undefined, ended: boolean): void {
    slot.streams.delete(stream.id);
    if (ended) {
      if (ring) this.rings.reuse(ring);
    } else if (slot.worker) {
      if (ring) this.rings.closing(stream.id, ring);
      this.post(slot, { t: 'close', id: stream.id }, true);
    }
    this.whenIdle();
  }

  private start(slot: Slot): Worker {
    const worker = startWorker(import.meta.url, 'hash-worker');
    slot.worker = worker;
    slot.inflight = 0;
    worker.on('message', (msg: FromWorker) => {
      if (--slot.inflight === 0) worker.unref();
      if (msg.closed) this.rings.closed(msg.id);
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

let shared: HashPool | undefined;

/**
 * The process's shared pool, started on first use: one worker fewer than the cores (the main thread
 * keeps one busy; each worker costs ~20 MiB of RSS, which a 1 GiB flatten's 200 MiB budget felt).
 */
export function sharedHashPool(): HashPool {
  return (shared ??= new HashPool({ threads: Math.max(1, availableParallelism() - 1) }));
}
