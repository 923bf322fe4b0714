/** Pull-based reader over an async iterator of chunks: exact reads, zero-copy body chunks, skips. */

export class ByteReader {
  private chunk: Buffer = Buffer.alloc(0);
  private pos = 0;
  private ended = false;
  /** Bytes handed out or skipped so far (the tar offset of the next byte). */
  offset = 0;

  /**
   * `copy`: `read()` returns copies, never views of the input (an input whose memory is reused once
   * the reader moved past it: the inflate ring). `take()` still yields views, valid until the next call.
   */
  constructor(private readonly it: AsyncIterator<Buffer>, private readonly copy = false) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      this.chunk = r.value;
      this.pos = 0;
    }
    return true;
  }

  /** Exactly `n` bytes; fewer (possibly 0) only at the end of input. */
  async read(n: number): Promise<Buffer> {
    if (!(await this.fill())) return Buffer.alloc(0);
    if (this.chunk.length - this.pos >= n) {
      const out = this.chunk.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return this.copy ? Buffer.from(out) : out;
    }
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n && (await this.fill())) {
      const take = Math.min(n - got, this.chunk.length - this.pos);
      parts.push(this.chunk.subarray(this.pos, this.pos + take));
      this.pos += take;
      got += take;
    }
    this.offset += got;
    return Buffer.concat(parts, got);
  }

  /** Yields the next `n` bytes as they arrive (views of the input chunks); stops early only at end of input. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0 && (await this.fill())) {
      const len = Math.min(left, this.chunk.length - this.pos);
      const out = this.chunk.subarray(this.pos, this.pos + len);
      this.pos += len;
      this.offset += len;
      left -= len;
      yield out;
    }
  }

  /** The next `n` bytes (n > 0) as a view when the current chunk holds them all, else undefined (nothing taken). */
  takeBuffered(n: number): Buffer | undefined {
    if (n <= 0 || this.chunk.length - this.pos < n) return undefined;
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** A view of the `n` bytes that start `skip` bytes ahead, when the current chunk holds them; nothing is consumed. */
  peek(skip: number, n: number): Buffer | undefined {
    const at = this.pos + skip;
    return this.chunk.length - at >= n ? this.chunk.subarray(at, at + n) : undefined;
  }

  /** `read(n)` when the current chunk holds the `n` bytes (a copy with `copy`), else undefined (nothing taken). */
  readBuffered(n: number): Buffer | undefined {
    const out = this.takeBuffered(n);
    return out !== undefined && this.copy ? Buffer.from(out) : out;
  }

  /** `skip(n)` when the current chunk holds the `n` bytes: true, else false (nothing skipped). */
  skipBuffered(n: number): boolean {
    if (this.chunk.length - this.pos < n) return false;
    this.pos += n;
    this.offset += n;
    return true;
  }

  /** Skips up to `n` bytes; returns how many were skipped. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0 && (await this.fill())) {
      const len = Math.min(left, this.chunk.length - this.pos);
      this.pos += len;
      this.offset += len;
      left -= len;
    }
    return n - left;
  }

  /** Reads and discards everything left (so hashes of the input cover every byte); `onChunk` sees the offset. */
  async drain(onChunk?: (offset: number) => void): Promise<void> {
    this.offset += this.chunk.length - this.pos;
    this.pos = this.chunk.length;
    while (await this.fill()) {
      this.offset += this.chunk.length - this.pos;
      this.pos = this.chunk.length;
      onChunk?.(this.offset);
    }
  }
}
