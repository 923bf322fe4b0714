/**
 * serve's LeaseHolder (src/serve/held.ts) batches the lease's writes: digests asked while a write runs
 * wait for it when it has them (not a second write), the rest go in the next write; a failed write's
 * digests are tried again by the next add. The lease is a recording stand-in whose writes end when the
 * test says (what is tested is the batching; test/image/lease tests cover the lease file itself).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CacheLease } from '../../src/image/lease.js';
import { LeaseHolder } from '../../src/serve/held.js';

/** A lease whose `add` calls are recorded and resolved (or failed) by the test. */
function recordingLease(): { lease: CacheLease; writes: { digests: string[]; end: (err?: Error) => void }[] } {
  const writes: { digests: string[]; end: (err?: Error) => void }[] = [];
  const lease = {
    add: (digests: Iterable<string>) =>
      new Promise<void>((resolve, reject) => writes.push({ digests: [...digests], end: (err) => (err ? reject(err) : resolve()) })),
    release: async () => undefined,
  } as unknown as CacheLease;
  return { lease, writes };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('serve: the lease holder', () => {
  it('digests asked again while their write runs wait for it; new ones go in one next write', async () => {
    const { lease, writes } = recordingLease();
    const held = new LeaseHolder(lease);
    const first = held.add(['a', 'b']);
    await tick();
    assert.deepEqual(writes.map((w) => w.digests), [['a', 'b']]);
    let againDone = false;
    const again = held.add(['b', 'a']).then(() => (againDone = true));
    const mixed = held.add(['a', 'c']);
    const more = held.add(['d']);
    await tick();
    assert.equal(writes.length, 1, 'nothing new is written while the first write runs');
    writes[0]!.end();
    await first;
    await again;
    assert.ok(againDone, 'the digests of the running write were held once it ended');
    await tick();
    assert.deepEqual(writes.map((w) => w.digests), [['a', 'b'], ['c', 'd']], 'one more write, for the digests the first lacked');
    writes[1]!.end();
    await Promise.all([mixed, more]);
    await held.add(['a', 'b', 'c', 'd']);
    assert.equal(writes.length, 2, 'held digests need no write');
  });

  it('a failed write fails its callers, and its digests go in the next add', async () => {
    const { lease, writes } = recordingLease();
    const held = new LeaseHolder(lease);
    const first = held.add(['a']);
    await tick();
    const waiting = held.add(['a']);
    writes[0]!.end(new Error('EIO'));
    await assert.rejects(first, /EIO/);
    await assert.rejects(waiting, /EIO/, 'who waited on the running write shares its failure');
    const retry = held.add(['b']);
    await tick();
    assert.deepEqual(writes[1]!.digests.sort(), ['a', 'b']);
    writes[1]!.end();
    await retry;
  });
});
