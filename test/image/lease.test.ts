/**
 * Leases (src/image/lease.ts): each `add` appends one line of new digests to the lease file, never
 * rewriting what is there (a long-lived serve adds thousands); prune's scan reads every whole line,
 * survives an append cut short (a full disk: a 64 KiB tmpfs, so it needs root), still honours an older version's single-record `.json` lease, and
 * removes a dead owner's lease of either kind.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CacheLayout } from '../../src/image/cache.js';
import { openLease, scanLeases } from '../../src/image/lease.js';
import { processStartTime } from '../../src/store/owner.js';
import { run, tmpDir } from '../helpers/tools.js';

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

  it('an append that fails (a full disk) adds nothing; the next one works, and the failed digests go in once there is room', async (t) => {
    const mnt = await tmpDir('vmimg-lease-full-');
    await run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).catch((err: Error) => {
      throw new Error(`mounting a 64 KiB tmpfs needs root (run the tests as root, as .ci/run does): ${err.message}`);
    });
    t.after(() => run('umount', ['--lazy', mnt]));
    const cache = new CacheLayout(join(mnt, 'cache'));
    const lease = await openLease(cache, [d('a')]);
    const filler = join(mnt, 'filler');
    await writeFile(filler, Buffer.alloc(256 << 10)).catch(() => undefined); // ENOSPC once the disk is full: what we want
    const many = Array.from({ length: 200 }, (_, i) => `sha256:${'7'.repeat(32)}${i.toString(16).padStart(32, '0')}`); // 14 KB: new pages
    await assert.rejects(lease.add(many), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
    await rm(filler);
    await lease.add([d('b')]);
    const lines = (await readFile(await onlyLease(cache), 'utf8')).split('\n');
    assert.deepEqual(lines.slice(1), [JSON.stringify([d('a')]), JSON.stringify([d('b')]), ''], 'nothing of the failed append'); // (were a write cut short, the next is written over it)
    await lease.add(many); // not counted as held when their append failed: written now
    assert.equal((await scanLeases(cache)).digests.size, 202);
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
