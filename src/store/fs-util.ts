/** Small filesystem helpers for the store. */
import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { ErrorCode, VmimgError } from '../errors.js';

export { syncDir } from '../util/fs.js';

export async function fileSize(path: string): Promise<number | undefined> {
  try {
    const st = await fs.stat(path);
    return st.isFile() ? st.size : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function isAbortError(err: unknown): boolean {
  return (err as Error | undefined)?.name === 'AbortError' || (err as VmimgError | undefined)?.code === ErrorCode.ABORTED;
}

export function aborted(what: string, cause?: unknown): VmimgError {
  return new VmimgError(ErrorCode.ABORTED, `${what}: aborted`, cause === undefined ? {} : { cause });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw aborted(what, signal.reason);
}

/** `p`, or ERR_ABORTED (`what`: aborted) as soon as `signal` fires: for waits that an abort leaves unsettled. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(aborted(what, signal.reason));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Resolves after `ms`, or rejects with ERR_ABORTED when `signal` fires first. */
export function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(aborted(what, signal.reason));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(aborted(what, signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Drops a source stream we will not read (so its socket is freed). */
export function discard(source: unknown): void {
  const s = source as Partial<Readable>;
  if (typeof s?.destroy === 'function') s.destroy();
}
