/**
 * Each span fetched once across processes: two processes reading one lazy image (a `vmimg cat` beside a
 * boot, two launchers) fetched the same spans. A process about to fetch a span claims it with a lock
 * file beside the layer's `.spans` (`<spans>.lock.<i>`, created exclusively, holding its pid); a span
 * another process holds is waited for until its bit appears in the `.spans` file (the other process
 * syncs the bytes before it saves the bit) or the lock goes (that fetch failed: claim it again). A lock
 * whose process is gone (a crash) is stale and removed. Waiting is bounded ({@link LOCK_WAIT_MS}): past
 * it the span is fetched anyway, which costs bytes, never correctness. Readers reaching the layer's
 * `.spans` by different paths (hard links) do not share locks.
 */
import { open, readFile, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SpanMap } from './span-map.js';

/** How often a waiting process looks at the `.spans` file and the lock (ms). */
const LOCK_POLL_MS = 20;
/** How long a span another process holds is waited for, at most (ms). */
export const LOCK_WAIT_MS = 60_000;
/** A lock file still empty after this long was left by a process that died while creating it (ms). */
const EMPTY_STALE_MS = 5_000;

/** The span locks of one layer's `.spans` file. */
export class SpanLocks {
  private readonly mine = new Set<number>();

  constructor(private readonly spansPath: string) {}

  private path(i: number): string {
    return `${this.spansPath}.lock.${i}`;
  }

  /** Claims span `i`: true when this process may fetch it (release it once its bit is saved). */
  async claim(i: number): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(this.path(i), 'wx');
        try {
          await fh.writeFile(String(process.pid));
        } finally {
          await fh.close();
        }
        this.mine.add(i);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return true; // no lock possible here: fetch unlocked
        if (!(await this.stale(i))) return false;
        await rm(this.path(i), { force: true });
      }
    }
    return false;
  }

  /** Removes this process's lock on span `i` (idempotent). */
  async release(i: number): Promise<void> {
    if (this.mine.delete(i)) await rm(this.path(i), { force: true });
  }

  /**
   * Waits while another process holds span `i`: true once `present()` (which re-reads the `.spans`
   * bits) says it landed; false when the lock went without it, or the wait ran out: then claim it.
   */
  async wait(i: number, present: () => Promise<boolean>, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      if (await present()) return true;
      if ((await this.stale(i)) || Date.now() > deadline) return false;
      await sleep(LOCK_POLL_MS, undefined, signal ? { signal } : {});
    }
  }

  /** The lock on span `i` is gone, or its process is (an empty lock: once it is older than a few seconds). */
  private async stale(i: number): Promise<boolean> {
    const text = await readFile(this.path(i), 'utf8').catch(() => undefined);
    if (text === undefined) return true;
    const pid = Number(text);
    if (text === '' || !Number.isInteger(pid) || pid <= 0) {
      const st = await stat(this.path(i)).catch(() => undefined);
      return st === undefined || Date.now() - st.mtimeMs > EMPTY_STALE_MS;
    }
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
}

/** What {@link fetchOnce} needs of a layer's reader. */
export interface SpanFetcher {
  map: SpanMap;
  locks: SpanLocks;
  /** Fetches spans `[first, last]` in one request, calling `placed(i)` as each lands, then saves their bits. */
  fetch(first: number, last: number, placed: (i: number) => void): Promise<void>;
  /** `n` spans are being fetched by another process, waited for. */
  waited(n: number): void;
}

/**
 * Spans `[first, last]` made present: those another process saved meanwhile are taken as they are,
 * those another process is fetching are waited for, the rest are claimed and fetched here.
 */
export async function fetchOnce(f: SpanFetcher, first: number, last: number, placed: (i: number) => void): Promise<void> {
  await f.map.refresh();
  const mine: number[] = [];
  const theirs: number[] = [];
  for (let i = first; i <= last; i++) {
    if (f.map.has(i)) placed(i);
    else if (await f.locks.claim(i)) mine.push(i);
    else theirs.push(i);
  }
  f.waited(theirs.length);
  await Promise.all([fetchClaimed(f, mine, placed), ...theirs.map((i) => awaitOther(f, i, placed))]);
}

/** A span another process is fetching: present once its bit is saved, else (that fetch failed) fetched here. */
async function awaitOther(f: SpanFetcher, i: number, placed: (i: number) => void): Promise<void> {
  const landed = async (): Promise<boolean> => {
    await f.map.refresh();
    return f.map.has(i);
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await f.locks.wait(i, landed)) return placed(i);
    if (await f.locks.claim(i)) return fetchClaimed(f, [i], placed);
  }
  return f.fetch(i, i, placed); // held by others three times over: fetch it anyway
}

/** Fetches the claimed `spans` (a request per run of adjacent ones), then lets go of their locks. */
async function fetchClaimed(f: SpanFetcher, spans: number[], placed: (i: number) => void): Promise<void> {
  try {
    for (let s = 0; s < spans.length; ) {
      let e = s;
      while (e + 1 < spans.length && spans[e + 1] === spans[e]! + 1) e++;
      await f.fetch(spans[s]!, spans[e]!, placed);
      s = e + 1;
    }
  } finally {
    for (const i of spans) await f.locks.release(i);
  }
}
