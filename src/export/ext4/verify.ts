/**
 * The ext4 writer's check of every image file against the sha256 its layer's index recorded, hashed
 * off the main thread by the process's hash pool (src/util/hash-pool.ts) while the main thread goes on
 * writing. Profiled on the Debian bench image, the sha256 of every file was ~190 ms of the export's
 * ~480 ms of main-thread CPU; the span buffers are pushed whole (one copy into the pool's ring per span
 * of up to 2 MiB) and each file is a part over its ranges in them. Spans alternate between STREAMS
 * streams (the pool puts each on its own worker), a file's later spans following its first: hashing is
 * the export's longest thread, so two halve it. A mismatch is ERR_DIGEST_MISMATCH naming the file,
 * raised at the next span or at the end.
 */
import { sharedHashPool, type HashPart, type HashStream } from '../../util/hash-pool.js';
import { contentMismatch, type ContainerFS } from '../../vfs/index.js';

/** Streams (each on its own pool worker) the spans alternate between. */
const STREAMS = 2;
/** Ring bytes per stream: how far the main thread may run ahead of a worker (a few 2 MiB spans). */
const RING_BYTES = 16 << 20;

/** Where a span's bytes went: the stream, and the stream offset its first byte has. */
export interface SpanAt {
  stream: HashStream;
  base: number;
}

/** One file being checked: a part of the stream its first span went to, and what its digest must be. */
export interface FileCheck {
  stream: HashStream;
  part: HashPart;
  expected: string;
  name: string;
}

/** Per-file digests of the spans an export writes, compared as the pool answers. */
export class FileDigests {
  readonly #streams: HashStream[];
  #turn = 0;
  #pending = 0;
  #idle: (() => void) | undefined;
  #failure: unknown;

  /** Opens the streams on the shared pool: its workers start now, while the caller plans the filesystem. */
  constructor(private readonly fs: ContainerFS) {
    this.#streams = Array.from({ length: STREAMS }, () => sharedHashPool().stream({ ringBytes: RING_BYTES }));
  }

  /** Appends a span's bytes to the stream of the file it continues (`continues`), else to the next in turn. */
  async push(span: Buffer, continues?: FileCheck): Promise<SpanAt> {
    const stream = continues?.stream ?? this.#streams[this.#turn++ % STREAMS]!;
    const base = stream.length;
    await stream.push(span);
    return { stream, base };
  }

  /** Starts checking inode `ino` (named `name` in errors) from a span at `at`; undefined when its index recorded no digest. */
  file(ino: number, name: string, at: SpanAt): FileCheck | undefined {
    const expected = this.fs.contentSha256(ino);
    return expected === undefined ? undefined : { stream: at.stream, part: at.stream.part(), expected, name };
  }

  /** The file's bytes seen so far end here: compare its digest when the pool answers. */
  end(check: FileCheck): void {
    this.#pending++;
    check.part.digest().then(
      (actual) => {
        if (actual !== check.expected) this.#failure ??= contentMismatch(check.name, check.expected, actual);
      },
      (err: unknown) => (this.#failure ??= err),
    ).finally(() => {
      if (--this.#pending === 0) this.#idle?.();
    });
  }

  /** The parts queued so far read nothing of the span at `at` any more: its ring space can be reused. */
  release(at: SpanAt): void {
    at.stream.release(at.stream.length);
  }

  /** Throws the first mismatch (or pool failure) known so far. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Waits for every digest; throws the first mismatch. */
  async finish(): Promise<void> {
    await Promise.all(this.#streams.map((s) => s.end()));
    if (this.#pending > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    this.throwIfFailed();
  }

  /** Stops the stream (after a failure elsewhere); a no-op once finished. */
  destroy(): void {
    for (const s of this.#streams) s.destroy();
  }
}
