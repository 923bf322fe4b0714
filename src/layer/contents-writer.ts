/**
 * Sequential, buffered writer of a `.contents` file: each file starts 4096-aligned. Holes are skipped,
 * not written, so a sparse file in the tar stays sparse on disk (the file is fresh: unwritten ranges
 * read as zeros).
 */
import type { FileHandle } from 'node:fs/promises';
import { writevAll } from '../util/fs.js';
import { Writeback } from '../util/writeback.js';

export const CONTENTS_ALIGN = 4096;
const FLUSH_BYTES = 1 << 20;
/** Stay under IOV_MAX (1024) buffers per writev when the input comes in tiny chunks. */
const MAX_BUFFERS = 512;
const ZEROS = Buffer.alloc(CONTENTS_ALIGN);

export class ContentsWriter {
  /** Logical length so far (bytes queued included). */
  size = 0;
  private written = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The input offset of the oldest chunk queued or being written (see `write`'s `from`). */
  pendingFrom: number | undefined;
  private flushing = false;
  /** The file goes to the disk as it is written, not all in the fsync that commits it. */
  private readonly writeback: Writeback;

  constructor(private readonly fh: FileHandle) {
    this.writeback = new Writeback(fh);
  }

  /** Pads to the next 4096 boundary and returns it: the offset of the file about to be written. */
  beginFile(): number {
    const pad = (CONTENTS_ALIGN - (this.size % CONTENTS_ALIGN)) % CONTENTS_ALIGN;
    if (pad > 0) this.queue(ZEROS.subarray(0, pad));
    return this.size;
  }

  /**
   * Queues a chunk; returns the flush to await when enough is buffered (back-pressure on the tar
   * stream), else undefined (no promise per small file). `from`:
   * where the chunk starts in its input, kept in `pendingFrom` while the chunk is not yet on disk (a
   * caller whose chunks view reused memory must not reuse it before then).
   */
  write(chunk: Buffer, from?: number): Promise<void> | undefined {
    if (from !== undefined) this.pendingFrom ??= from;
    this.queue(chunk);
    return this.pendingBytes >= FLUSH_BYTES || this.pending.length >= MAX_BUFFERS ? this.flush() : undefined;
  }

  /** `n` zero bytes, as a hole: flushes what is queued, then moves past them without writing. */
  async hole(n: number): Promise<void> {
    await this.flush();
    this.size += n;
    this.written += n;
  }

  /** Flushes, and sets the file's length (a trailing hole has no bytes written to extend it). */
  async finish(): Promise<void> {
    await this.flush();
    await this.fh.truncate(this.size);
    await this.writeback.settle();
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) {
      if (!this.flushing) this.pendingFrom = undefined;
      return;
    }
    const bufs = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.flushing = true;
    try {
      await writevAll(this.fh, bufs, bytes, this.written);
    } finally {
      this.flushing = false;
    }
    this.written += bytes;
    this.writeback.wrote(this.written);
    if (this.pendingBytes === 0) this.pendingFrom = undefined;
  }

  private queue(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.size += chunk.length;
  }
}
