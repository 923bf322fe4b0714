/**
 * Follows tar headers through a stream of tar bytes to tell the checkpoint builder where large files'
 * data begins. Best effort by design: anything it cannot parse (GNU sparse extension blocks, odd
 * numbers, oversized PAX headers) only stops it, since a checkpoint is valid at any block boundary.
 */

const BLOCK = 512;
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
/** PAX header data larger than this is skipped unread (only its `size` record matters here). */
const MAX_PAX = 64 * 1024;

/** Feeds on tar bytes in order; reports where regular files of at least `minSize` bytes start their data. */
export class TarFollower {
  /** Tar offset of the next header block, or -1 once stopped. */
  private next = 0;
  /** Bytes of the block (or PAX data) being gathered, and where it started. */
  private gather: Buffer | undefined;
  /** The header block, reused (PAX data gets a buffer of its own). */
  private readonly block = Buffer.allocUnsafe(BLOCK);
  private gathered = 0;
  private paxSize: number | undefined;
  /** The gathered bytes are PAX data rather than a header. */
  private inPax = false;

  constructor(private readonly minSize: number) {}

  /**
   * Feeds the tar bytes `[at, at + chunk.length)` (contiguous with the previous call) and returns the
   * tar offsets where the data of a regular file of at least `minSize` bytes begins, in order.
   */
  feed(chunk: Uint8Array, at: number): number[] {
    const found: number[] = [];
    let pos = at;
    const end = at + chunk.length;
    while (this.next >= 0 && pos < end) {
      if (this.gather === undefined) {
        if (this.next >= end) break;
        if (this.next > pos) pos = this.next;
        this.gather = this.inPax ? Buffer.allocUnsafe(this.paxLen) : this.block;
        this.gathered = 0;
      }
      const take = Math.min(this.gather.length - this.gathered, end - pos);
      this.gather.set(chunk.subarray(pos - at, pos - at + take), this.gathered);
      this.gathered += take;
      pos += take;
      if (this.gathered === this.gather.length) this.complete(found);
    }
    return found;
  }

  private paxLen = 0;

  private complete(found: number[]): void {
    const buf = this.gather!;
    this.gather = undefined;
    if (this.inPax) {
      this.inPax = false;
      this.paxSize = paxSizeRecord(buf);
      this.next += roundUp(buf.length); // data started at next; header was already passed
      return;
    }
    if (allZero(buf)) return this.stop(); // end of archive
    const size = parseNumber(buf.subarray(124, 136));
    const type = String.fromCharCode(buf[156]!);
    if (size === undefined || type === 'S') return this.stop();
    const dataAt = this.next + BLOCK;
    if (type === 'x') {
      if (size > MAX_PAX) return this.stop();
      this.next = dataAt;
      if (size === 0) return;
      this.inPax = true;
      this.paxLen = size;
      return;
    }
    if (type === 'g' || type === 'L' || type === 'K') {
      this.next = dataAt + roundUp(size); // metadata of the next entry (a PAX size still applies to it)
      return;
    }
    const realSize = this.paxSize ?? size;
    this.paxSize = undefined;
    // As the layer's tar reader (and Go's archive/tar): links, devices, dirs and fifos carry no data.
    const dataSize = HEADER_ONLY.has(type) ? 0 : realSize;
    if ((type === '0' || type === '\0' || type === '7') && realSize >= this.minSize) found.push(dataAt);
    this.next = dataAt + roundUp(dataSize);
  }

  private stop(): void {
    this.next = -1;
  }
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

/** A tar numeric field: octal text, or base-256 with the high bit set; undefined when unreadable. */
function parseNumber(field: Uint8Array): number | undefined {
  if (field[0]! & 0x80) {
    let v = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) v = v * 256 + field[i]!;
    return Number.isSafeInteger(v) ? v : undefined;
  }
  // octal digits, spaces before them, NULs or spaces after (a header per entry: no string made)
  let i = 0;
  while (i < field.length && field[i] === 0x20) i++;
  let v = 0;
  for (; i < field.length && field[i]! >= 0x30 && field[i]! <= 0x37; i++) v = v * 8 + field[i]! - 0x30;
  for (; i < field.length; i++) if (field[i] !== 0 && field[i] !== 0x20) return undefined;
  return v;
}

function allZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** The `size` record of PAX data (`"%d size=%d\n"`), if any. */
function paxSizeRecord(data: Buffer): number | undefined {
  const m = /(?:^|\n)\d+ size=(\d+)\n/.exec(data.toString('latin1'));
  return m ? Number(m[1]) : undefined;
}
