/**
 * The flattener's digests — the blob's, the diff_id and every file's sha256 — computed by the hash
 * pool's workers (src/util/hash-pool.ts), so the main thread only copies each byte into a ring: it
 * parses, writes and schedules while another core hashes (issue 13). A file's digest is a *part* of the
 * tar stream (its data ranges plus its holes), so its bytes are copied once, for the diff_id.
 * Entries reach the EntriesBuilder in tar order as their digests arrive ({@link OrderedEntries}).
 */
import type { TarHeader, TarReader } from './tar-reader.js';
import type { EntriesBuilder, FileContent } from './entries-builder.js';
import { sharedHashPool, type HashPool, type HashStream } from '../util/hash-pool.js';

/** Chunks are pushed in pieces of at most this (a plain tar's 16 MiB read must not fill the ring). */
const PIECE = 1 << 20;
/** Ring of a blob's whole-stream digest (RSS counts: a 1 GiB flatten's budget is 200 MiB). */
const BLOB_RING = 4 << 20;

/** A byte stream counted and, unless someone else checks it, hashed by a pool worker. */
export class CountedStream {
  /** Bytes seen so far. */
  n = 0;
  /** The pool stream (undefined: bytes are only counted). */
  stream: HashStream | undefined;
  /** How far parts no longer read the stream's bytes (default: all pushed so far, no part reads them). */
  releaseTo: () => number = () => this.n;

  /**
   * With a pool: a whole-stream digest no part reads (the blob's), in a ring reused as soon as it is
   * hashed, so 4 MiB keep a worker busy (a tar's stream, whose parts read it, is set later).
   */
  constructor(pool: HashPool | undefined) {
    this.stream = pool?.stream({ whole: true, ranges: false, ringBytes: BLOB_RING });
  }

  /** Passes `src` on in pieces of at most 1 MiB, pushing each to the worker first. */
  async *tap(src: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    for await (const raw of src) {
      // Plain Uint8Array chunks (web streams) become Buffers without copying.
      const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let at = 0; at < chunk.length; at += PIECE) {
        const piece = chunk.length <= PIECE ? chunk : chunk.subarray(at, at + PIECE);
        if (this.stream !== undefined) {
          this.stream.release(this.releaseTo());
          await this.stream.push(piece);
        }
        this.n += piece.length;
        yield piece;
      }
    }
  }

  /** `sha256:<hex>` of every byte tapped; undefined when they were only counted. */
  async digest(): Promise<string | undefined> {
    return this.stream === undefined ? undefined : `sha256:${await this.stream.end()}`;
  }

  /** Stops the worker's part of it (after a failure; idempotent). */
  destroy(): void {
    this.stream?.destroy();
  }
}

/** The pool the flattener hashes with (one per process). */
export function flattenPool(): HashPool {
  return sharedHashPool();
}

/** Where copyBody writes a file's data: `write` returns a promise only when it must wait (ContentsWriter). */
export interface BodyWriter {
  write(chunk: Buffer, from?: number): Promise<void> | undefined;
  hole(n: number): Promise<void>;
}

/** A file's digest to come (from the worker), and the write to wait for before the next entry, if any. */
export interface CopiedBody {
  sha256: Promise<string>;
  flushing?: Promise<void> | undefined;
}

/**
 * copyBody's common case, with no promise of its own: the current entry's whole data is buffered (a
 * small file). Undefined when it is not; nothing is taken then. Its range is queued before anything
 * else can pull the reader on, so no ring space is released under it.
 */
export function copyBufferedBody(reader: TarReader, parts: HashStream, writer: BodyWriter): CopiedBody | undefined {
  const whole = reader.bodyAtOnce();
  if (whole === undefined) return undefined;
  const part = parts.part();
  part.range(reader.offset - whole.length, reader.offset);
  return { sha256: part.digest(), flushing: writer.write(whole, reader.offset - whole.length) };
}

/**
 * Copies the current entry's data into `.contents` (holes as holes) and queues its ranges as a part of
 * `parts` (the stream the tar's bytes were pushed to). Resolves once the data is copied; the digest
 * comes later, from the worker (wrapped: an async function's promise of a promise would wait for it).
 */
export async function copyBody(
  reader: TarReader,
  parts: HashStream,
  writer: BodyWriter,
  signal: AbortSignal | undefined,
  hold: { at: number | undefined },
): Promise<CopiedBody> {
  const part = parts.part();
  // While a body is copied, ring space is released only up to its last queued range: a plain blob's
  // stream is pushed by its own read loop, which may run between a chunk's hand-out and its range.
  hold.at = reader.offset;
  const copy = (chunk: Buffer): Promise<void> | undefined => {
    part.range(reader.offset - chunk.length, reader.offset);
    hold.at = reader.offset;
    return writer.write(chunk, reader.offset - chunk.length);
  };
  try {
    // a small file's data is usually buffered already: then no generators or awaits per chunk
    const whole = reader.bodyAtOnce();
    if (whole !== undefined) await copy(whole);
    else {
      for await (const chunk of reader.body()) {
        signal?.throwIfAborted();
        if (typeof chunk !== 'number') await copy(chunk);
        else {
          part.zeros(chunk);
          await writer.hole(chunk);
        }
      }
    }
  } finally {
    hold.at = undefined;
  }
  return { sha256: part.digest() };
}

interface Pending {
  h: TarHeader;
  content: Omit<FileContent, 'sha256'> | undefined;
  sha256: Promise<string> | undefined;
  hex: string | undefined;
}

/** Pending entries beyond this wait for the oldest digest (bounds what waits; the ring bounds bytes). */
const MAX_PENDING = 4096;

/**
 * Hands entries to the builder in tar order: a file waits for its digest, and every entry after it
 * waits behind it (later entries may replace it or hardlink to it).
 */
export class OrderedEntries {
  private queue: Pending[] = [];
  private head = 0;

  constructor(private readonly builder: EntriesBuilder) {}

  /** Adds an entry (a file with its digest to come). Returns a promise only when too many are pending. */
  add(h: TarHeader, content?: Omit<FileContent, 'sha256'>, sha256?: Promise<string>): Promise<void> | undefined {
    if (sha256 === undefined && this.head === this.queue.length) {
      this.builder.add(h, content as FileContent | undefined);
      return undefined;
    }
    const item: Pending = { h, content, sha256, hex: undefined };
    sha256?.then((hex) => (item.hex = hex), () => undefined);
    this.queue.push(item);
    this.ready();
    return this.queue.length - this.head > MAX_PENDING ? this.fewer() : undefined;
  }

  private async fewer(): Promise<void> {
    while (this.queue.length - this.head > MAX_PENDING) await this.oldest();
  }

  /** Every entry added, once all digests have come. */
  async finish(): Promise<void> {
    while (this.head < this.queue.length) await this.oldest();
  }

  private async oldest(): Promise<void> {
    const item = this.queue[this.head]!;
    if (item.sha256 !== undefined && item.hex === undefined) item.hex = await item.sha256;
    this.ready();
  }

  /** Adds the entries at the head whose digests are in. */
  private ready(): void {
    for (; this.head < this.queue.length; this.head++) {
      const item = this.queue[this.head]!;
      if (item.sha256 !== undefined && item.hex === undefined) break;
      this.builder.add(item.h, item.content ? { ...item.content, sha256: item.hex! } : undefined);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
