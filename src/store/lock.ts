/**
 * Cross-process lock files created with O_EXCL (`wx`). A lock names its holder (pid, start time, host,
 * token); it is stale when its holder is gone (same host) or its mtime is older than `staleMs` —
 * holders touch it every staleMs/4 so a live but slow download never looks stale.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { ErrorCode, VmimgError } from '../errors.js';
import { currentOwner, isOwnerAlive, type Owner } from './owner.js';

export { isPidAlive } from './owner.js';

export interface LockInfo extends Owner {
  token: string;
  created: number;
}

export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Takes the lock, or returns null when someone else holds it (breaking it first if it is stale). */
export async function tryLock(path: string, staleMs: number): Promise<HeldLock | null> {
  const info: LockInfo = { ...currentOwner(), token: randomBytes(8).toString('hex'), created: Date.now() };
  let fh;
  try {
    fh = await fs.open(path, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await breakIfStale(path, staleMs);
    return null;
  }
  try {
    await fh.writeFile(JSON.stringify(info));
  } catch (err) {
    // e.g. ENOSPC: the file is ours (O_EXCL) and names no holder; left, it would block others until stale
    await fh.close();
    await fs.rm(path, { force: true });
    throw err;
  }
  await fh.close();
  const timer = setInterval(() => {
    const now = new Date();
    fs.utimes(path, now, now).catch(() => undefined);
  }, Math.max(10, Math.floor(staleMs / 4)));
  timer.unref();
  return {
    path,
    release: async () => {
      clearInterval(timer);
      // Only remove the lock if it is still ours (someone may have judged it stale and replaced it).
      await releaseLock(path, info.token, staleMs);
    },
  };
}

export interface WaitLockOptions {
  staleMs: number;
  signal?: AbortSignal | undefined;
  /** What the lock guards, for the abort message. */
  what: string;
}

/** Takes the lock, waiting (polling, up to 100 ms apart) while a live holder has it. */
export async function waitLock(path: string, opts: WaitLockOptions): Promise<HeldLock> {
  for (let delay = 2; ; delay = Math.min(100, delay * 2)) {
    if (opts.signal?.aborted) throw new VmimgError(ErrorCode.ABORTED, `waiting for ${opts.what}: aborted`, { cause: opts.signal.reason });
    const lock = await tryLock(path, opts.staleMs);
    if (lock) return lock;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** The holder a lock file names, if it is readable. */
export async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(path, 'utf8')) as LockInfo;
    return typeof parsed?.token === 'string' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

async function isStale(path: string, info: LockInfo | undefined, staleMs: number): Promise<boolean> {
  let mtime: number;
  try {
    mtime = (await fs.stat(path)).mtimeMs;
  } catch {
    return false; // gone already: not ours to break
  }
  if (Date.now() - mtime > staleMs) return true;
  return info !== undefined && info.host === hostname() && !isOwnerAlive(info);
}

/**
 * Breaks a stale lock. Every removal of a lock file (breaking it or releasing it) happens under a guard
 * file `<lock>.break` created with O_EXCL; a new lock can only be created once the old file is gone, so
 * under the guard the lock file cannot change between re-reading it and unlinking it. We never move a
 * lock aside and put it back: that left a window where a live holder was displaced and two processes
 * wrote one partial.
 */
async function breakIfStale(path: string, staleMs: number): Promise<void> {
  const judged = await readLock(path);
  if (!(await isStale(path, judged, staleMs))) return;
  await underGuard(path, staleMs, async () => {
    const now = await readLock(path);
    if (now?.token === judged?.token && (await isStale(path, now, staleMs))) await fs.rm(path, { force: true });
  });
}

/** Runs `fn` holding `<path>.break`; returns false (without running it) if another process holds the guard. */
async function underGuard(path: string, staleMs: number, fn: () => Promise<void>): Promise<boolean> {
  const guard = `${path}.break`;
  try {
    await (await fs.open(guard, 'wx')).close(); // empty: only its mtime is read, and a full disk still takes it
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await breakStaleGuard(guard, staleMs);
    return false;
  }
  try {
    await fn();
  } finally {
    await fs.rm(guard, { force: true });
  }
  return true;
}

/** A guard is held for a few milliseconds; one older than staleMs was left by a process that died holding it. */
async function breakStaleGuard(guard: string, staleMs: number): Promise<void> {
  const st = await fs.stat(guard).catch(() => undefined);
  if (st === undefined || Date.now() - st.mtimeMs <= staleMs) return;
  const aside = `${guard}.${process.pid}.${randomBytes(4).toString('hex')}`;
  // rename: of several breakers only one moves it; a fresh guard taken meanwhile is at worst dropped (it guards a re-check, not data)
  if (await fs.rename(guard, aside).then(() => true, () => false)) await fs.rm(aside, { force: true });
}

/** Removes our own lock, under the guard (waiting briefly for a breaker to finish). */
async function releaseLock(path: string, token: string, staleMs: number): Promise<void> {
  const removeIfOurs = async (): Promise<void> => {
    if ((await readLock(path))?.token === token) await fs.rm(path, { force: true });
  };
  for (let delay = 2; ; delay = Math.min(100, delay * 2)) {
    if (await underGuard(path, staleMs, removeIfOurs)) return;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
