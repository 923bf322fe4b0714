/**
 * serve on a full (or read-only) cache disk: a miss is answered at once, 507 with the spec's error body
 * naming the cause (ENOSPC, EDQUOT, EROFS), never retried (util/retry.ts), and leaves nothing behind —
 * a download that ran out of space has its partial file removed, so the bytes it held do not keep every
 * later miss failing. A blob whose size is known and larger than the free space is refused before its
 * first upstream byte. The answer is not a relay of the blob uncached: clients with more than one
 * endpoint (containerd's mirrors, `vmimg pull`'s) go on to the next at once, and an operator sees the
 * code in the access log (docs/DECISIONS.md).
 */
import { promises as fs } from 'node:fs';
import { ErrorCode, VmimgError } from '../errors.js';
import { tryLock, readLock } from '../store/lock.js';
import { errnoOf } from '../util/retry.js';

/** Errnos meaning the cache cannot take more bytes, with what each means. */
const STORAGE_ERRNO: Record<string, string> = {
  ENOSPC: 'the disk holding the cache is full',
  EDQUOT: 'the disk quota of the cache is exhausted',
  EROFS: 'the cache is on a read-only file system',
};

/** The errno behind `err` when it is one of STORAGE_ERRNO (our own ERR_IO carries it in details). */
export function storageErrno(err: unknown): string | undefined {
  const own = err instanceof VmimgError ? err.details?.errno : undefined;
  const errno = typeof own === 'string' ? own : errnoOf(err);
  return errno !== undefined && errno in STORAGE_ERRNO ? errno : undefined;
}

/** ERR_IO for `what` that the cache could not store, naming the errno and its meaning. */
export function cannotStore(what: string, errno: string, cause?: unknown): VmimgError {
  return new VmimgError(ErrorCode.IO, `cannot store ${what} in the cache: ${errno} (${STORAGE_ERRNO[errno] ?? errno})`, {
    ...(cause !== undefined ? { cause } : {}),
    details: { errno },
  });
}

/** ERR_IO (ENOSPC) unless the file system of `dir` has `bytes` free for `what`. */
export async function checkSpace(dir: string, what: string, bytes: number): Promise<void> {
  const st = await fs.statfs(dir);
  const free = st.bavail * st.bsize;
  if (bytes > free) throw cannotStore(`${what} (${bytes} bytes, ${free} free)`, 'ENOSPC');
}

/**
 * Removes a failed download's partial file unless another process holds its lock (it may be resuming
 * it). On a disk too full for the lock file itself, the lock is taken as free unless it names a holder.
 */
export async function dropPartial(partialPath: string, staleMs = 60_000): Promise<void> {
  const lockPath = `${partialPath}.lock`;
  let lock;
  try {
    lock = await tryLock(lockPath, staleMs);
  } catch (err) {
    if (storageErrno(err) === undefined || (await readLock(lockPath)) !== undefined) return;
    await fs.rm(partialPath, { force: true });
    // an empty lock file is what a create that could not write its holder leaves: no one holds it
    if ((await fs.stat(lockPath).catch(() => undefined))?.size === 0) await fs.rm(lockPath, { force: true });
    return;
  }
  if (lock === null) return;
  try {
    await fs.rm(partialPath, { force: true });
  } finally {
    await lock.release();
  }
}
