/** Bounding how much runs at once: layers flattened, index files read, file descriptors held. */
import { ErrorCode, VmimgError } from '../errors.js';

/** Runs `task` when a slot is free; resolves or rejects with it. */
export type Limiter = <T>(task: () => Promise<T>) => Promise<T>;

/** Runs at most `n` tasks at once, in submission order. ERR_INVALID_ARGUMENT unless n is a whole number ≥ 1. */
export function createLimiter(n: number): Limiter {
  if (!Number.isInteger(n) || n < 1) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `concurrency must be a whole number of at least 1, got ${n}`);
  }
  let active = 0;
  const queue: (() => void)[] = [];
  return async (task) => {
    if (active >= n) await new Promise<void>((resolve) => queue.push(resolve));
    else active++;
    try {
      return await task();
    } finally {
      const next = queue.shift();
      if (next) next(); // the slot passes straight to the next task: `active` never overshoots
      else active--;
    }
  };
}

/** `items.map(fn)` with at most `n` calls in flight; results in input order. */
export function mapLimit<T, R>(items: readonly T[], n: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const limit = createLimiter(n);
  return Promise.all(items.map((item, i) => limit(() => fn(item, i))));
}

/**
 * Waits for every promise to settle, then rejects with the first rejection in input order (else resolves
 * with the values): unlike `Promise.all`, nothing is still running when the caller cleans up after a failure.
 */
export async function settleAll<T>(promises: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
