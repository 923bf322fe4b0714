// Persistent (test/.cache/, gitignored) and per-process caches for fixtures.
import { mkdirSync, mkdtempSync, renameSync, rmSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: this file is test/helpers/cache.ts, or its build under test/.cache/js/ (js-build.mjs). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)).replace(/\/test\/\.cache\/js(?=\/test\/helpers$)/, ''), '..', '..');

/** Persistent cache dir test/.cache/<sub> (override the root with VMIMG_TEST_CACHE). */
export function cacheDir(sub: string): string {
  const root = process.env.VMIMG_TEST_CACHE ?? join(REPO_ROOT, 'test', '.cache');
  const dir = join(root, sub);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const memos = new Map<string, Promise<unknown>>();

/**
 * Memoise an async builder by key within this process. A failed build is
 * forgotten so a later call can retry (and report its own error).
 */
export function memo<T>(key: string, build: () => Promise<T>): Promise<T> {
  const hit = memos.get(key);
  if (hit) return hit as Promise<T>;
  const p = build();
  memos.set(key, p);
  p.catch(() => memos.delete(key));
  return p;
}

/**
 * Fill `finalDir` atomically: `fill` writes into a sibling temp dir which is
 * then renamed into place. Parallel test processes may race; the loser's copy
 * is dropped and the winner's is used.
 */
export async function populateOnce(finalDir: string, fill: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(finalDir)) return finalDir;
  mkdirSync(dirname(finalDir), { recursive: true });
  const tmp = mkdtempSync(`${finalDir}.tmp-`);
  try {
    await fill(tmp);
    try {
      renameSync(tmp, finalDir);
    } catch (e) {
      if (!existsSync(finalDir)) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return finalDir;
}

/**
 * How a test runs a module of its own tree in a child node: the caller's own form. Built (`npm test`
 * runs test/.cache/js/, js-build.mjs) it is `NAME.js` under plain node; from its source, `NAME.ts` under
 * tsx. `script(dir, name)` gives node's arguments for the module `name` in `dir`.
 */
export function childNode(callerUrl: string): { ext: '.js' | '.ts'; execArgv: string[]; script: (dir: string, name: string) => string[] } {
  const built = !callerUrl.endsWith('.ts');
  const ext = built ? '.js' : '.ts';
  const execArgv = built ? [] : ['--import', 'tsx'];
  return { ext, execArgv, script: (dir, name) => [...execArgv, join(dir, `${name}${ext}`)] };
}
