/**
 * When a lazy layer's reads walk its spans in order, fetch the next ones before they are asked for
 * (what Linux's page-cache readahead, soci and clip do). Pure decisions, no I/O: LazyContent asks
 * {@link ReadAhead.after} once per read and fetches what it returns as coalesced runs.
 *
 * A read that misses is *sequential* when the two spans before it are already here (forward) or the two
 * after it (backward: a walk that visits directories in reverse still reads each one in tar order), so
 * the first random reads of an image (`cat /etc/os-release`) never fetch more than they touch. While a
 * direction holds, every read keeps the spans ahead of it present or on their way, up to a window of
 * compressed bytes; a new batch is started only when half the window is missing, so each read-ahead
 * request carries several spans. A miss that is not sequential ends the read-ahead.
 */
import { documentLimits } from '../manifest/limits.js';

/** The window in force: compressed bytes fetched ahead of a sequential reader (default 16 MiB; config `"limits": {"lazyReadAheadBytes"}`). */
export function readAheadBytes(): number {
  return documentLimits().lazyReadAheadBytes;
}

/** Read-ahead state of one layer: its spans' compressed sizes and the window in bytes (0: off). */
export class ReadAhead {
  private direction: 1 | -1 | 0 = 0;

  constructor(
    private readonly spanBytes: (i: number) => number,
    private readonly spanCount: number,
    private readonly windowBytes: number,
  ) {}

  /**
   * The spans to fetch ahead after a read of spans `[lo, hi]`: `missed` when some of them were neither
   * here nor on their way; `have(i)` is true for a span present or being fetched. Sorted by index.
   */
  after(lo: number, hi: number, missed: boolean, have: (i: number) => boolean): number[] {
    if (this.windowBytes <= 0) return [];
    if (missed) {
      const both = (a: number, b: number): boolean => a >= 0 && b >= 0 && a < this.spanCount && b < this.spanCount && have(a) && have(b);
      this.direction = both(lo - 1, lo - 2) ? 1 : both(hi + 1, hi + 2) ? -1 : 0;
    }
    if (this.direction === 0) return [];
    const ahead: number[] = [];
    let missing = 0;
    let bytes = 0;
    for (let i = this.direction === 1 ? hi + 1 : lo - 1; i >= 0 && i < this.spanCount && bytes < this.windowBytes; i += this.direction) {
      bytes += this.spanBytes(i);
      ahead.push(i);
      if (!have(i)) missing++;
    }
    if (missing === 0 || (!missed && 2 * missing < ahead.length)) return [];
    return ahead.filter((i) => !have(i)).sort((a, b) => a - b);
  }
}
