/**
 * Cross-process lock files created with O_EXCL (`wx`). A lock names its holder (pid, host, token);
 * it is stale when its pid is gone (same host) or its mtime is older than `staleMs` — holders touch
 * it every staleMs/4 so a live but slow download never looks stale.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';

export interface LockInfo {
  pid: number;
  host: string;
  token: string;
  created: number;
}

export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Takes the lock, or returns null when someone else holds it (breaking it first if it is stale). */
export async function tryLock(path: string, staleMs: number): Promise<HeldLock | null> {
  const info: LockInfo = { pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex'), created: Date.now() };
  try {
    await fs.writeFile(path, JSON.stringify(info), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await breakIfStale(path, staleMs);
    return null;
  }
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
      const current = await readLock(path);
      if (current?.token === info.token) await fs.rm(path, { force: true });
    },
  };
}

export function isPidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLock(path: string): Promise<LockInfo | undefined> {
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
  return info !== undefined && info.host === hostname() && !isPidAlive(info.pid);
}

/**
 * Breaks a stale lock safely: move it aside under a private name (atomic; only one breaker wins),
 * then check it is the lock we judged. If a fresh lock was taken meanwhile, put it back with link()
 * (which never overwrites).
 */
async function breakIfStale(path: string, staleMs: number): Promise<void> {
  const judged = await readLock(path);
  if (!(await isStale(path, judged, staleMs))) return;
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await fs.rename(path, aside);
  } catch {
    return; // someone else broke or released it
  }
  const moved = await readLock(aside);
  if (moved?.token !== judged?.token) {
    await fs.link(aside, path).catch(() => undefined);
  }
  await fs.rm(aside, { force: true });
}
