/**
 * Where the tar export's bytes go: one hash stream's ring of shared memory (src/util/hash-pool.ts),
 * laid out in archive order. The main thread copies headers and padding in; file bodies are *read*
 * straight into their place (tar-reads.ts), so no body byte is copied by the main thread. Bytes count
 * as pushed once everything before them is in (a read still running holds back what follows it); a
 * pool worker then checks each file's body against its index sha256 (a part per file) while `out` is
 * written in 1 MiB views of the same ring. Ring space is reused once `out` called back for it, which
 * bounds how far the export (reads included) runs ahead of its reader.
 */
import { finished, pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';
import { sharedHashPool, type HashPart, type HashStream } from '../util/hash-pool.js';
import { contentMismatch } from '../vfs/verify.js';
import { ParallelGzip } from '../util/parallel-gzip.js';

/**
 * Bytes of the ring: the most the export runs ahead of `out` (placed, not yet called back for), reads
 * in flight included. Room for the reads, the worker and the writes to drift apart on a busy machine.
 */
export const TAR_RING_BYTES = 16 << 20;
/** Bytes gathered before a write to `out`, and the most one claim or copy takes at once. */
export const WRITE_BYTES = 1 << 20;

/** A file whose body passes in one or more pieces; checked once the last one did. */
export interface FileCheck {
  name: string;
  /** Lowercase hex sha256 the index recorded (none: nothing to check). */
  expected: string | undefined;
  part?: HashPart;
}

/** Stream bytes [start, end) claimed for a read: `views` are where they go in the ring (two at its wrap). */
export interface Claim {
  start: number;
  end: number;
  views: Buffer[];
  /** Set once the read put every byte in. */
  done: boolean;
}

/** Body bytes [start, end) of `file` (its last piece or not): hashed once they are pushed. */
interface BodyRange {
  start: number;
  end: number;
  file: FileCheck;
  last: boolean;
}

/**
 * See the module comment. Bytes are placed in archive order: `copy`/`zeros` for headers and padding,
 * `claim` for a body read (then `filled`), `body` for the part of the stream a file's check covers. Each
 * needs `fits(n)`, else `await room(n)` first — and every claimed read must be started before waiting,
 * since room may come only from what follows them. `end` once all are placed.
 */
export class TarSink {
  private readonly stream: HashStream;
  private readonly ring: Buffer;
  private readonly size: number;
  /** Stream offset of the next byte placed. */
  private cursor = 0;
  /** Claims not yet filled, oldest first: the first holds back every byte from its start. */
  private readonly claims: Claim[] = [];
  private claimHead = 0;
  /** Body ranges not yet pushed, in stream order. */
  private readonly bodies: BodyRange[] = [];
  private bodyHead = 0;
  /** Digests asked for and not yet answered, and who waits for the last one. */
  private checking = 0;
  private checked: (() => void) | undefined;
  /** Stream offset: bytes handed to `out` (the ring releases them when it calls back). */
  private written = 0;
  private wake: (() => void) | undefined;
  private error: Error | undefined;
  /** What the ring is written to: `out`, or a gzip stream piped to it. */
  private readonly target: Writable;
  /** Settles when `out` has finished (or failed). */
  private readonly done: Promise<void>;
  /** Rejects with the first failure: what every wait races against. */
  private readonly stopped: Promise<never>;
  private stop!: (err: Error) => void;

  /** `gzip`: a level 0-9 to compress on the way to `out`; `onFail` hears the first failure (to stop the producer). */
  constructor(private readonly out: Writable, gzip: number | undefined, private readonly onFail: (err: Error) => void = () => {}) {
    // digests are wanted by the archive's end, not at once: their ops ride on the 2 MiB pushes' messages;
    // `shared`: reads (the thread pool) write the ring, so it is never handed to a later stream
    this.stream = sharedHashPool().stream({ ranges: true, shared: true, ringBytes: TAR_RING_BYTES, flushDelayMs: 20 });
    const { sab, offset, size } = this.stream.sharedRing;
    this.ring = Buffer.from(sab, offset, size);
    this.size = size;
    this.stream.onAnswer = () => this.wakeUp();
    if (gzip === undefined) {
      this.target = out;
      this.done = finished(out);
    } else {
      const z = new ParallelGzip({ level: gzip }); // on every core (util/parallel-gzip.ts)
      this.target = z;
      this.done = pipeline(z, out);
    }
    // `out` failing or closing early stops the export at once, not at its end
    this.done.catch((err: Error) => this.fail(err));
    this.stopped = new Promise<never>((_resolve, reject) => (this.stop = reject));
    this.stopped.catch(() => undefined);
  }

  /** The first failure (a mismatch, a read, `out`'s error), once known. */
  get failure(): Error | undefined {
    return this.error;
  }

  /** Stream offset of the next byte placed. */
  get offset(): number {
    return this.cursor;
  }

  /** `n` (≤ WRITE_BYTES) more bytes can be placed now. Throws the sink's failure, once there is one. */
  fits(n: number): boolean {
    if (this.error) throw this.error;
    return this.cursor + n <= this.stream.writeLimit;
  }

  /** Waits until `n` (≤ WRITE_BYTES) bytes fit: pushes and writes what it can, then waits for `out` or the worker. */
  async room(n: number): Promise<void> {
    if (n > WRITE_BYTES) throw new VmimgError(ErrorCode.INTERNAL, `tar sink: ${n} bytes placed at once`);
    while (!this.fits(n)) {
      this.write(); // what is gathered goes out now: its callback is what frees room
      this.stream.flush(); // releases and ranges reach the worker, whose answer frees room too
      await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), this.stopped]);
    }
  }

  /** Copies `bytes` (that fit) in at the cursor. */
  copy(bytes: Uint8Array): void {
    const pos = this.cursor % this.size;
    const first = Math.min(bytes.length, this.size - pos);
    this.ring.set(first === bytes.length ? bytes : bytes.subarray(0, first), pos);
    if (first < bytes.length) this.ring.set(bytes.subarray(first), 0);
    this.placed(bytes.length);
  }

  /** Places `n` zero bytes (that fit) at the cursor. */
  zeros(n: number): void {
    const pos = this.cursor % this.size;
    const first = Math.min(n, this.size - pos);
    this.ring.fill(0, pos, pos + first);
    if (first < n) this.ring.fill(0, 0, n - first);
    this.placed(n);
  }

  /** Claims the next `n` bytes (that fit) for a read into `views`; they count once `filled` is called. */
  claim(n: number): Claim {
    const start = this.cursor;
    const pos = start % this.size;
    const first = Math.min(n, this.size - pos);
    const views = [this.ring.subarray(pos, pos + first)];
    if (first < n) views.push(this.ring.subarray(0, n - first));
    const claim: Claim = { start, end: start + n, views, done: false };
    this.claims.push(claim);
    this.cursor += n;
    return claim;
  }

  /** A claimed read is in: it and whatever follows it up to the next unfilled claim is pushed. */
  filled(claim: Claim): void {
    if (this.error) return;
    claim.done = true;
    if (this.claims[this.claimHead] !== claim) return;
    this.commit();
    this.wakeUp(); // a wait for room writes what this pushed
  }

  /** Stream bytes [start, end), placed or claimed, are (part of) `file`'s body: checked once pushed. */
  body(start: number, end: number, file: FileCheck, last: boolean): void {
    if (file.expected !== undefined) this.bodies.push({ start, end, file, last });
  }

  /**
   * Ends the archive once every claim is filled: waits for every file's check (a damaged file fails the
   * export before the archive's last bytes go out), writes the rest and ends `out`; resolves once `out`
   * has finished.
   */
  async end(): Promise<void> {
    try {
      this.throwIfFailed();
      if (this.claimHead < this.claims.length || this.stream.length !== this.cursor) throw new VmimgError(ErrorCode.INTERNAL, 'tar sink: ended before its reads were in');
      this.stream.flush();
      while (this.checking > 0) await Promise.race([new Promise<void>((resolve) => (this.checked = resolve)), this.stopped]);
      this.throwIfFailed();
      this.write();
      this.target.end();
      await this.done;
    } catch (err) {
      this.fail(err as Error);
      throw this.error;
    } finally {
      this.stream.destroy();
    }
  }

  /** Stops: the ring is dropped and `out` destroyed (its owner sees why from the export's rejection). */
  fail(err: Error): void {
    if (this.error === undefined) {
      this.error = err;
      this.stop(err);
      this.onFail(err);
    }
    this.stream.destroy();
    this.target.destroy();
    this.out.destroy();
    this.wakeUp();
  }

  private placed(n: number): void {
    this.cursor += n;
    if (this.claimHead === this.claims.length) this.commit();
  }

  /** Pushes every byte before the first unfilled claim, queues the checks they complete, writes in 1 MiB pieces. */
  private commit(): void {
    const claims = this.claims;
    while (this.claimHead < claims.length && claims[this.claimHead]!.done) this.claimHead++;
    if (this.claimHead > 1024) {
      claims.splice(0, this.claimHead);
      this.claimHead = 0;
    }
    const upTo = this.claimHead < claims.length ? claims[this.claimHead]!.start : this.cursor;
    if (upTo === this.stream.length) return;
    this.stream.pushWritten(upTo - this.stream.length);
    const bodies = this.bodies;
    while (this.bodyHead < bodies.length && bodies[this.bodyHead]!.end <= upTo) {
      const { start, end, file, last } = bodies[this.bodyHead++]!;
      (file.part ??= this.stream.part()).range(start, end);
      if (last) this.check(file.part, file.name, file.expected!);
    }
    if (this.bodyHead > 1024) {
      bodies.splice(0, this.bodyHead);
      this.bodyHead = 0;
    }
    // the ranges are queued before any write of these bytes can call back and release them
    if (upTo - this.written >= WRITE_BYTES) this.write();
  }

  private check(part: HashPart, name: string, expected: string): void {
    this.checking++;
    part.digest().then(
      (actual) => {
        if (actual !== expected) this.fail(contentMismatch(name, expected, actual));
        if (--this.checking === 0) this.checked?.();
      },
      (err: Error) => this.fail(err),
    );
  }

  /** Hands the pushed, unwritten bytes to `out`; their space is released when it calls back. */
  private write(): void {
    const end = this.stream.length;
    if (end === this.written || this.error) return;
    const views = this.stream.view(this.written, end);
    this.written = end;
    views.forEach((v, i) => {
      const last = i === views.length - 1;
      this.target.write(v, last ? (err) => this.wrote(end, err) : undefined);
    });
  }

  private wrote(end: number, err: Error | null | undefined): void {
    if (err) return this.fail(err);
    this.stream.release(end); // sent with the next push (one waiting for room sends it at once)
    this.wakeUp();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private throwIfFailed(): void {
    if (this.error) throw this.error;
  }
}
