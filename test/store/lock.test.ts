// Lock files: breaking a stale lock while many contenders race must leave exactly one holder.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tryLock, type HeldLock } from '../../src/store/lock.js';

async function staleLock(path: string): Promise<void> {
  await writeFile(path, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'old', created: 0 }));
  const old = new Date(Date.now() - 3_600_000);
  await utimes(path, old, old);
}

describe('tryLock', () => {
  it('of many contenders breaking one stale lock, exactly one ends up holding it', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'vmimg-lock-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    for (let round = 0; round < 30; round++) {
      const path = join(dir, `r${round}.lock`);
      await staleLock(path);
      // Each contender tries a few times (the first try may only break the stale lock); nobody releases.
      const contender = async (): Promise<HeldLock[]> => {
        const got: HeldLock[] = [];
        for (let i = 0; i < 4; i++) {
          const lock = await tryLock(path, 60_000);
          if (lock) got.push(lock);
        }
        return got;
      };
      const held = (await Promise.all(Array.from({ length: 12 }, contender))).flat();
      assert.equal(held.length, 1, `round ${round}: ${held.length} holders`);
      const onDisk = JSON.parse(await readFile(path, 'utf8')) as { token: string };
      assert.notEqual(onDisk.token, 'old');
      await held[0]!.release();
      assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith(`r${round}.`)), [], 'lock and guard are gone after release');
    }
  });

  it('release leaves a lock that is no longer ours', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'vmimg-lock-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'x.lock');
    const lock = await tryLock(path, 60_000);
    assert.ok(lock);
    await writeFile(path, JSON.stringify({ pid: process.pid, host: 'h', token: 'someone-else', created: 0 }));
    await lock.release();
    assert.equal(JSON.parse(await readFile(path, 'utf8')).token, 'someone-else');
  });
});
