/**
 * What the tar export uses of a hash stream (src/util/hash-pool.ts): `tryPush` copies a chunk only when
 * the ring has room for all of it (and then never waits), `view` shows pushed bytes in place (two views
 * at the wrap) until they are released, and parts over them still digest as node:crypto does.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { HashPool } from '../../src/util/hash-pool.js';

const pool = new HashPool({ threads: 1 });
after(() => pool.close());

const RING = 64 * 1024;

test('tryPush fills the ring and no further; view shows the bytes across the wrap; parts digest them', async () => {
  const s = pool.stream({ ranges: true, ringBytes: RING });
  const a = randomBytes(40 * 1024);
  const b = randomBytes(30 * 1024);
  assert.equal(s.tryPush(a), true);
  assert.equal(s.tryPush(b), false, '70 KiB do not fit a 64 KiB ring');
  assert.equal(s.length, a.length, 'a refused chunk copies nothing');
  assert.ok(Buffer.concat(s.view(0, a.length)).equals(a));
  const pa = s.part();
  pa.range(0, a.length);
  assert.equal(await pa.digest(), createHash('sha256').update(a).digest('hex'));
  s.release(a.length);
  await s.push(b); // waits for the worker to free what was released, then wraps
  const views = s.view(a.length, a.length + b.length);
  assert.equal(views.length, 2, 'the chunk wraps around the ring');
  assert.ok(Buffer.concat(views).equals(b));
  const pb = s.part();
  pb.range(a.length, a.length + b.length);
  assert.equal(await pb.digest(), createHash('sha256').update(b).digest('hex'));
  assert.throws(() => s.view(0, 10), RangeError, 'released bytes are no longer viewable');
  s.destroy();
});
