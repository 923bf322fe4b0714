/**
 * Leases (src/image/lease.ts): each `add` appends one line of new digests to the lease file, never
 * rewriting what is there (a long-lived serve adds thousands); prune's scan reads every whole line,
 * survives an append cut short, still honours an older version's single-record `.json` lease, and
 * removes a dead owner's lease of either kind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CacheLayout } from '../../src/image/cache.js';
import { openLease, scanLeases } from '../../src/image/lease.js';
import { processStartTime } from '../../src/store/owner.js';
import { tmpDir } from '../helpers/tools.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

/** A pid no process has now (a child that already exited). */
function deadPid(): number {
  return spawnSync('true').pid!;
}

async function onlyLease(cache: CacheLayout): Promise<string> {
  const names = await readdir(cache.leasesDir);
  assert.equal(names.length, 1, names.join(' '));
  return join(cache.leasesDir, names[0]!);
}

describe('leases', () => {
  it('an add appends one line of the digests it has not added before; earlier bytes are never rewritten', async () => {
    const cache = new CacheLayout(await tmpDir('vmimg-lease-'));
    const lease = await openLease(cache, [d('a')]);
    const path = await onlyLease(cache);
    assert.ok(path.endsWith('.jsonl'), path);
    const ino = (await stat(path)).ino;
    let before = await readFile(path, 'utf8');
    assert.equal(before.split('\n').length, 3, 'the owner line, one line of digests, the final newline');
    for (const [add, lines] of [[[d('b'), d('c')], 4], [[d('c'), d('d'), d('d')], 5], [[d('a'), d('b')], 5]] as const) {
      await lease.add(add);
      const now = await readFile(path, 'utf8');
      assert.ok(now.startsWith(before), 'appended, not rewritten');
      assert.equal(now.split('\n').length, lines);
      assert.equal((await stat(path)).ino, ino, 'the same file, not a renamed copy');
      before = now;
    }
    assert.equal(before.split('\n')[3], JSON.stringify([d('d')]), 'only what was new, once');
    const scan = await scanLeases(cache);
    assert.deepEqual([...scan.digests].sort(), [d('a'), d('b'), d('c'), d('d')]);
    assert.deepEqual(scan.owners, [process.pid]);
    await lease.release();
    assert.deepEqual(await readdir(cache.leasesDir), []);
  });

  it('an append cut short (a process killed mid-write) loses only that line; the next add still reads back', async () => {
    const cache = new CacheLayout(await tmpDir('vmimg-lease-'));
    const lease = await openLease(cache, [d('a')]);
    const path = await onlyLease(cache);
    await appendFile(path, `["${d('9').slice(0, 30)}`);
    assert.deepEqual([...(await scanLeases(cache)).digests], [d('a')], 'the whole lines; the lease is still live');
    await lease.add([d('b')]);
    assert.deepEqual([...(await scanLeases(cache)).digests].sort(), [d('a'), d('b')]);
    await lease.release();
  });

  it("an older version's .json lease is honoured; a dead owner's lease of either kind is removed", async () => {
    const cache = new CacheLayout(await tmpDir('vmimg-lease-'));
    const start = processStartTime(process.pid);
    const me = { pid: process.pid, host: hostname(), ...(start !== undefined ? { start } : {}), created: Date.now() };
    const dead = { pid: deadPid(), host: hostname(), created: Date.now() };
    await mkdir(cache.leasesDir, { recursive: true });
    await writeFile(join(cache.leasesDir, `${me.pid}-old.json`), JSON.stringify({ ...me, digests: [d('e')] }));
    await writeFile(join(cache.leasesDir, `${dead.pid}-old.json`), JSON.stringify({ ...dead, digests: [d('f')] }));
    await writeFile(join(cache.leasesDir, `${dead.pid}-new.jsonl`), `${JSON.stringify(dead)}\n${JSON.stringify([d('f')])}\n`);
    const scan = await scanLeases(cache);
    assert.deepEqual([...scan.digests], [d('e')]);
    assert.deepEqual(scan.owners, [process.pid]);
    assert.deepEqual(await readdir(cache.leasesDir), [`${me.pid}-old.json`]);
  });
});
