/**
 * The `Range` header of a blob GET (RFC 9110 §14): one range `bytes=a-b`, `bytes=a-` or a suffix
 * `bytes=-n`. Several ranges, or a header that is not a bytes range, are answered with the whole blob
 * (200), as RFC 9110 allows; a single range starting past the end is 416.
 */

/** Bytes `start` to `end` inclusive. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** `undefined`: serve the whole blob; `'unsatisfiable'`: answer 416; else the one range to send (206). */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (m === null) return undefined; // multi-range or another unit: the whole blob
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  if (end < start) return undefined; // a-b with b < a is invalid: ignore the header
  return { start, end };
}
