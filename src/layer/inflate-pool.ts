/**
 * Gunzip off the main thread, straight into a hash stream's ring (issue 13). A worker (inflate-worker.ts)
 * drives zlib's engine synchronously from a ring of compressed bytes into the ring the hash pool reads
 * the tar from, so every tar byte is written once, by zlib, and never allocated per chunk: the main
 * thread parses views of the ring, the hash worker hashes the same bytes, and the ring's space is
 * reused once both are done with it (and the `.contents` writes from it have finished).
 *
 * The pool starts its workers on first use (one fewer than the cores, like the hash pool) and keeps
 * a worker referenced only while one of its streams is open.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ErrorCode, VmimgError } from '../errors.js';
import type { HashStream } from '../util/hash-pool.js';
import { startWorker } from '../util/worker-thread.js';
import type { FromInflater, ToInflater } from './inflate-protocol.js';
import type { CheckpointOptions } from '../lazy/checkpoint-builder.js';
import type { RingIndexResult } from '../lazy/ring-checkpoints.js';

/** Compressed bytes that may wait for the worker, at most (two of the store's 1 MiB batches). */
const INPUT_BYTES = 2 << 20;
/** Compressed bytes that make an `in` message go at once; fewer go at the end of the event-loop turn. */
const SEND_INPUT = 512 << 10;
/** Freed output space worth telling a busy worker about (a blocked one hears of any). */
const SEND_ROOM = 1 << 20;

/** A checkpointing job's input ring: two of the 1 MiB chunks its builder takes (src/lazy/ring-checkpoints.ts). */
const CHECKPOINT_INPUT = 2 << 20;

/** Input rings kept for later jobs (each ≤ 2 MiB). */
const KEEP_INPUTS = 4;

interface Slot {
  worker: Worker | undefined;
  jobs: Map<number, InflateJob>;
  /** Jobs closed before their end, until the worker confirms it let go of their rings. */
  closing: Map<number, InflateJob>;
}

/** What the reader of the ring tells the inflater (see {@link inflateToRing}). */
export interface RingReader {
  /** The stream offset below which the reader no longer needs the ring's bytes. */
  releaseTo(): number;
  /** The worker waits for ring space and nothing is left to read: let go of what holds it (flush writes). */
  unblock(): Promise<void>;
}

/** Workers that gunzip into hash streams' rings; most callers share one ({@link sharedInflatePool}). */
export class InflatePool {
  private readonly slots: Slot[];
  private nextId = 1;
  /**
   * Input rings no thread uses any more, for later jobs: a ring a worker saw is freed only when that
   * worker's isolate collects its garbage, which it rarely does (one per layer piled up, breaker6 M1).
   */
  private readonly inputs: SharedArrayBuffer[] = [];

  constructor(threads = Math.max(1, availableParallelism() - 1)) {
    this.slots = Array.from({ length: Math.max(1, threads) }, () => ({ worker: undefined, jobs: new Map(), closing: new Map() }));
  }

  /**
   * @internal A job on the least busy worker; it writes `out`'s ring (a stream made with `shared`).
   * `crc` false: the gzip members' CRC-32 is not computed (the caller checks the output's sha256).
   */
  open(out: HashStream, inputBytes: number, checkpoints?: Partial<CheckpointOptions>, crc = true): InflateJob {
    const slot = this.slots.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const worker = slot.worker ?? this.start(slot);
    const size = checkpoints ? CHECKPOINT_INPUT : Math.min(inputBytes, INPUT_BYTES);
    const i = this.inputs.findIndex((r) => r.byteLength === size);
    const input = i >= 0 ? this.inputs.splice(i, 1)[0]! : new SharedArrayBuffer(size);
    const job: InflateJob = new InflateJob(this.nextId++, out, input, (msg) => worker.postMessage(msg), {
      finished: () => this.finished(job),
      closing: () => slot.closing.set(job.id, job),
      letGo: () => this.inputs.length < KEEP_INPUTS && this.inputs.push(input),
    });
    if (slot.jobs.size === 0) worker.ref();
    slot.jobs.set(job.id, job);
    const ring = out.sharedRing;
    job.post({ t: 'open', id: job.id, input: job.input, inputSize: job.input.byteLength, output: ring.sab, outputOffset: ring.offset, outputSize: ring.size, ...(checkpoints ? { checkpoints } : {}), ...(crc ? {} : { crc }) });
    return job;
  }

  /**
   * Starts the workers now (unreferenced, like idle ones) so the first gzip layer does not wait for
   * one to start (~30-50 ms of a cold pull's critical path): a pull calls it as a layer's download begins.
   */
  warm(): void {
    for (const slot of this.slots) slot.worker ?? this.start(slot);
  }

  /** @internal The job no longer needs its worker (it ended, or the worker confirmed a close). */
  finished(job: InflateJob): void {
    for (const slot of this.slots) {
      if (!slot.jobs.delete(job.id)) continue;
      if (slot.jobs.size === 0) slot.worker?.unref();
    }
  }

  private start(slot: Slot): Worker {
    const worker = startWorker(import.meta.url, 'inflate-worker');
    slot.worker = worker;
    worker.on('message', (msg: FromInflater) => {
      if (msg.closed) {
        slot.closing.get(msg.id)?.workerLetGo();
        slot.closing.delete(msg.id);
        return;
      }
      const job = slot.jobs.get(msg.id);
      if (job === undefined) return;
      job.answer(msg);
      if (job.settled) this.finished(job);
    });
    const lost = (why: string): void => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      for (const job of slot.jobs.values()) job.fail(new VmimgError(ErrorCode.INTERNAL, `inflate worker ${why}`));
      slot.jobs.clear();
      slot.closing.clear(); // their rings are not reused (garbage once every thread dropped them)
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`));
    worker.on('exit', (code) => lost(`exited (${code})`));
    worker.unref();
    return worker;
  }
}

/** What a job tells its pool: no more answers wanted, a close to be confirmed, the worker let go of the rings. */
interface JobHooks {
  finished(): void;
  closing(): void;
  letGo(): void;
}

/** One gzip stream in a worker: its input ring, what the worker reported, and who waits for it. */
export class InflateJob {
  private readonly bytes: Uint8Array;
  /** Input bytes copied in, and announced to the worker. */
  written = 0;
  private announced = 0;
  private last = false;
  private announcing: NodeJS.Immediate | undefined;
  consumed = 0;
  produced = 0;
  /** The output limit last sent. */
  limit: number;
  done = false;
  error: Error | undefined;
  /** No more answers will come (ended, failed, or closed). */
  settled = false;
  /** At `done`, for a job opened with checkpoints: the index, or why there is none. */
  index: RingIndexResult | undefined;
  private waiters: (() => void)[] = [];
  private gone = false;

  constructor(readonly id: number, private readonly out: HashStream, readonly input: SharedArrayBuffer, readonly post: (msg: ToInflater) => void, private readonly hooks: JobHooks) {
    this.bytes = new Uint8Array(this.input);
    this.limit = out.sharedRing.size;
  }

  /** Copies compressed bytes in, waiting for the worker to take earlier ones when the ring is full. */
  async write(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      if (this.error) throw this.error;
      if (this.settled) return; // closed: the reader went away
      const size = this.bytes.length;
      const room = this.consumed + size - this.written;
      if (room === 0) {
        this.announce();
        await this.next();
        continue;
      }
      const n = Math.min(room, chunk.length - at);
      const pos = this.written % size;
      const first = Math.min(n, size - pos);
      this.bytes.set(chunk.subarray(at, at + first), pos);
      if (first < n) this.bytes.set(chunk.subarray(at + first, at + n), 0);
      this.written += n;
      at += n;
    }
    // a burst of chunks (one event-loop turn) goes as one message, a big one at once
    if (this.written - this.announced >= SEND_INPUT) this.announce();
    else this.announcing ??= setImmediate(() => this.announce());
  }

  /** No more input: the worker finishes the stream (and checks its end). */
  end(): void {
    this.last = true;
    this.announce();
  }

  /** Tells the worker what input it has (once per burst). */
  announce(): void {
    if (this.announcing) clearImmediate(this.announcing);
    this.announcing = undefined;
    if (this.settled || (this.written === this.announced && !this.last)) return;
    this.announced = this.written;
    this.post({ t: 'in', id: this.id, end: this.written, last: this.last });
  }

  /** The worker waits for output room and has none. */
  get blocked(): boolean {
    return this.produced >= this.limit;
  }

  /** Passes freed ring space on: at once to a blocked worker, in 1 MiB steps to a busy one. */
  room(): void {
    const limit = this.out.writeLimit;
    if (this.settled || limit <= this.limit || (!this.blocked && limit - this.limit < SEND_ROOM)) return;
    this.limit = limit;
    this.post({ t: 'room', id: this.id, limit });
  }

  /** Answers and failures so far (see `next`). */
  events = 0;

  /** Resolves at the next answer or failure, or at once when one came after `since` (an `events` count). */
  next(since = this.events): Promise<void> {
    if (this.events !== since) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  answer(msg: FromInflater): void {
    this.consumed = msg.consumed;
    this.produced = msg.produced;
    if (msg.done) this.done = this.settled = true;
    if (msg.index) this.index = msg.index;
    if (msg.error) {
      this.settled = true; // the worker closed the stream
      this.fail(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
    }
    if (msg.done || msg.error) this.workerLetGo();
    this.wake();
  }

  /** The worker closed the stream: it writes neither ring again, so both may serve later streams. Idempotent. */
  workerLetGo(): void {
    if (this.gone) return;
    this.gone = true;
    this.out.writerDone();
    this.hooks.letGo();
  }

  /** The stream failed (zlib refused it, the input failed, or the worker is gone). */
  fail(err: Error): void {
    this.error ??= err;
    this.wake();
  }

  /** Stops the worker's part (idempotent). */
  close(): void {
    if (this.announcing) clearImmediate(this.announcing);
    this.announcing = undefined;
    if (!this.settled) {
      this.hooks.closing(); // the worker's confirmation lets go of the rings
      this.post({ t: 'close', id: this.id });
    }
    this.settled = true;
    this.hooks.finished();
    this.wake();
  }

  private wake(): void {
    this.events++;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

let shared: InflatePool | undefined;

/** The process's shared inflate pool, started on first use. */
export function sharedInflatePool(): InflatePool {
  return (shared ??= new InflatePool());
}

/**
 * A gzip stream's checkpoints built by the worker that inflates it (src/lazy/ring-checkpoints.ts):
 * `done` gets the index when the stream ended whole.
 */
export interface RingCheckpoints {
  options: Partial<CheckpointOptions>;
  done(index: RingIndexResult): void;
}

/**
 * The tar bytes of the gzip stream `chunks`, gunzipped by a pool worker into `out`'s ring (a hash
 * stream made with `shared: true`: it hashes them as they are read); with `checkpoints`, the same
 * inflate also builds the stream's gzip checkpoints. Yields views of the ring, which
 * stay valid until `reader.releaseTo()` (asked each time the reader comes back for more) passes them.
 * zlib's errors surface as `zlib.createGunzip()`'s do (code `Z_*`); the input's as themselves. `chunks`
 * is read by a loop of its own, never returned: a caller that stops early may still read the rest.
 * `crc` false (a caller that checks the output's sha256): the members' CRC-32 is not computed; the
 * rest of the framing is checked as zlib checks it (gzip-framing.ts).
 */
export async function* inflateToRing(chunks: AsyncIterator<Buffer>, out: HashStream, reader: RingReader, inputBytes = INPUT_BYTES, pool = sharedInflatePool(), checkpoints?: RingCheckpoints, crc = true): AsyncGenerator<Buffer> {
  const job = pool.open(out, inputBytes, checkpoints?.options, crc);
  const feeding = (async () => {
    for (let r = await chunks.next(); !r.done && !job.settled; r = await chunks.next()) await job.write(r.value);
    job.end();
  })().catch((err: unknown) => job.fail(err as Error));
  out.onAnswer = () => job.room();
  const { sab, offset, size } = out.sharedRing;
  let read = 0;
  try {
    for (;;) {
      if (read < job.produced) {
        const pos = read % size;
        const n = Math.min(job.produced - read, size - pos);
        out.pushWritten(n);
        read += n;
        yield Buffer.from(sab, offset + pos, n);
        out.release(reader.releaseTo());
        continue;
      }
      if (job.error) throw job.error;
      if (job.done) {
        if (job.index) checkpoints?.done(job.index);
        break;
      }
      const since = job.events; // an answer that comes while unblocking must not be missed
      if (job.blocked) {
        // nothing left to read and no room to write: what the reader still holds must go
        await reader.unblock();
        const keep = reader.releaseTo();
        // everything read, and the reader holds a whole ring: no release can ever make room
        if (keep + size <= job.produced) throw new VmimgError(ErrorCode.INTERNAL, `gunzip: the tar reader holds more than the ${size}-byte ring`);
        out.release(keep);
        out.flush();
        job.room(); // space freed earlier that was too little to send while the worker was busy
      }
      await job.next(since);
    }
    await feeding;
  } finally {
    out.onAnswer = undefined;
    job.close();
  }
}
