/**
 * Where the tar export's bytes go: every header, body chunk and padding is copied once into a hash
 * stream's ring of shared memory (src/util/hash-pool.ts). From there a pool worker checks each file's
 * body against its index sha256 (a part per file) while `out` is written in 1 MiB views of the same
 * ring, so the main thread neither hashes nor makes a write per header, body and padding. Ring space
 * is reused once `out` called back for it, which bounds how far the export runs ahead of its reader.
 */
import { finished, pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { createGzip, type Gzip } from 'node:zlib';
import { DEFAULT_RING_BYTES, sharedHashPool, type HashPart, type HashStream } from '../util/hash-pool.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { contentMismatch } from '../vfs/verify.js';

/**
 * Bytes of the ring: the most the export runs ahead of `out` (written, not yet called back). The pool's
 * default size, so rings are reused across exports; room for the worker, the writes and the main thread
 * to drift apart on a busy machine.
 */
export const TAR_RING_BYTES = DEFAULT_RING_BYTES;
/** Bytes gathered before a write to `out`. */
const WRITE_BYTES = 1 << 20;

/** A file whose body passes in one or more chunks; checked once the last one did. */
export interface FileCheck {
  name: string;
  /** Lowercase hex sha256 the index recorded (none: nothing to check). */
  expected: string | undefined;
  part?: HashPart;
}

/** A chunk of a file's body: the file to check it in, whether it is the file's last, and what to call once it is copied. */
export interface BodyChunk {
  file: FileCheck | undefined;
  last: boolean;
  release: () => void;
}

/**
 * See the module comment. Bytes go in in archive order: `put` a header (or padding), `put` a body chunk
 * with its file's check, and so on; each `put` copies at once and returns undefined when the ring has
 * room, else a promise to await before the next `put`. `end` once all are in.
 */
export class TarSink {
  private readonly stream: HashStream;
  /** Digests asked for and not yet answered, and who waits for the last one. */
  private checking = 0;
  private checked: (() => void) | undefined;
  /** Stream offsets: bytes handed to `out`, and bytes it called back for (released to the ring). */
  private written = 0;
  private released = 0;
  private wake: (() => void) | undefined;
  private error: Error | undefined;
  /** A `put` still waiting for room: the next one must wait for it (bytes stay in order). */
  private adding = false;
  /** What the ring is written to: `out`, or a gzip stream piped to it. */
  private readonly target: Writable | Gzip;
  /** Settles when `out` has finished (or failed). */
  private readonly done: Promise<void>;
  /** Rejects with the first failure: what every wait races against. */
  private readonly stopped: Promise<never>;
  private stop!: (err: Error) => void;

  /** `gzip`: a level 0-9 to compress on the way to `out`; `onFail` hears the first failure (to stop the producer). */
  constructor(private readonly out: Writable, gzip: number | undefined, private readonly onFail: (err: Error) => void = () => {}) {
    // digests are wanted by the archive's end, not at once: their ops ride on the 2 MiB pushes' messages
    this.stream = sharedHashPool().stream({ ranges: true, ringBytes: TAR_RING_BYTES, flushDelayMs: 20 });
    if (gzip === undefined) {
      this.target = out;
      this.done = finished(out);
    } else {
      const z = createGzip({ level: gzip });
      this.target = z;
      this.done = pipeline(z, out);
    }
    // `out` failing or closing early stops the export at once, not at its end
    this.done.catch((err: Error) => this.fail(err));
    this.stopped = new Promise<never>((_resolve, reject) => (this.stop = reject));
    this.stopped.catch(() => undefined);
  }

  /** The first failure (a mismatch, `out`'s error), once known. */
  get failure(): Error | undefined {
    return this.error;
  }

  /**
   * Appends `bytes` to the archive: a header or padding, or with `body` a chunk of a file's body (checked
   * once its last chunk is in; `body.release` called once the bytes are copied). Undefined when copied at
   * once, else a promise to await before the next `put`. Throws the sink's failure, once there is one.
   */
  put(bytes: Uint8Array, body?: BodyChunk): Promise<void> | undefined {
    this.throwIfFailed();
    if (this.adding) throw new VmimgError(ErrorCode.INTERNAL, 'tar sink: a put before the one waiting for room was done');
    if (this.addNow(bytes, body)) return undefined;
    this.adding = true;
    return this.add(bytes, body).finally(() => (this.adding = false));
  }

  /**
   * Ends the archive: waits for every file's check (a damaged file fails the export before the
   * archive's last bytes go out), writes the rest and ends `out`; resolves once `out` has finished.
   */
  async end(): Promise<void> {
    try {
      this.throwIfFailed();
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

  /** Copies `chunk` in without waiting when the ring has room for all of it now; false when it has not. */
  private addNow(chunk: Uint8Array, body: BodyChunk | undefined): boolean {
    if (chunk.length > WRITE_BYTES || this.stream.length + chunk.length - this.released > TAR_RING_BYTES) return false;
    const start = this.stream.length;
    if (!this.stream.tryPush(chunk)) return false;
    if (body) this.bodyIn(body, start, this.stream.length);
    if (this.stream.length - this.written >= WRITE_BYTES) this.write();
    return true;
  }

  private async add(chunk: Uint8Array, body: BodyChunk | undefined): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      const n = Math.min(chunk.length - at, WRITE_BYTES);
      // room in the ring only where `out` is done: wait for its callbacks, never overwrite what it holds
      while (this.stream.length + n - this.released > TAR_RING_BYTES) await this.writeDone();
      const start = this.stream.length;
      await this.stream.push(n === chunk.length ? chunk : chunk.subarray(at, at + n));
      at += n;
      // the range is queued before any write of these bytes can call back and release them
      if (body) this.bodyIn(body, start, this.stream.length, at === chunk.length);
      if (this.stream.length - this.written >= WRITE_BYTES) this.write();
    }
  }

  /** Body bytes [start, end) of the stream are in the ring: hash them into their file's part; at the chunk's end, hand its memory back. */
  private bodyIn(body: BodyChunk, start: number, end: number, chunkDone = true): void {
    const f = body.file;
    if (f?.expected !== undefined) (f.part ??= this.stream.part()).range(start, end);
    if (!chunkDone) return;
    body.release();
    if (body.last && f?.expected !== undefined) this.check(f.part!, f.name, f.expected);
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

  /** Hands the ring's unwritten bytes to `out`; their space is released when it calls back. */
  private write(): void {
    const end = this.stream.length;
    if (end === this.written) return;
    const views = this.stream.view(this.written, end);
    this.written = end;
    views.forEach((v, i) => {
      const last = i === views.length - 1;
      this.target.write(v, last ? (err) => this.wrote(end, err) : undefined);
    });
  }

  private wrote(end: number, err: Error | null | undefined): void {
    if (err) return this.fail(err);
    this.released = end;
    this.stream.release(end); // sent with the next push (one waiting for room sends it at once)
    this.wakeUp();
  }

  private writeDone(): Promise<void> {
    this.throwIfFailed();
    this.write(); // what is gathered goes out now: its callback is what frees room
    return new Promise<void>((resolve) => (this.wake = resolve)).then(() => this.throwIfFailed());
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
