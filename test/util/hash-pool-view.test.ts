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

test('released bytes no part reads are reused at once: 10 MiB of headers pass a 64 KiB ring without a worker answer', () => {
  // the tar export's empty files: header bytes only, released when `out` calls back; a synchronous loop
  // gets no worker message, so every tryPush that succeeds did not wait on the worker
  const s = pool.stream({ ranges: true, ringBytes: RING, flushDelayMs: 20 });
  const header = randomBytes(512);
  for (let i = 0; i < (10 << 20) / 512; i++) {
    assert.equal(s.tryPush(header), true, `header ${i} waited for the worker`);
    s.release(s.length);
  }
  s.destroy();
});

test('bytes a part reads stay until the worker answered, released or not; digests over a reused ring are right', async () => {
  const s = pool.stream({ ranges: true, ringBytes: RING, flushDelayMs: 20 });
  const a = randomBytes(40 * 1024);
  assert.equal(s.tryPush(a), true);
  const pa = s.part();
  pa.range(0, a.length);
  s.release(a.length);
  assert.equal(s.tryPush(randomBytes(30 * 1024)), false, 'a range not yet hashed holds its bytes');
  assert.equal(await pa.digest(), createHash('sha256').update(a).digest('hex'));
  assert.equal(s.tryPush(randomBytes(30 * 1024)), true, 'hashed and released: free');
  // headers and bodies mixed, each released at once: every body's digest is over its own bytes
  const want: Promise<[string, string]>[] = [];
  for (let i = 0; i < 400; i++) {
    const chunk = randomBytes(i % 3 === 0 ? 512 : 1 + ((i * 7919) % 9000));
    const start = s.length;
    if (!s.tryPush(chunk)) await s.push(chunk);
    if (i % 3 !== 0) {
      const p = s.part();
      p.range(start, s.length);
      want.push(p.digest().then((d) => [d, createHash('sha256').update(chunk).digest('hex')]));
    }
    s.release(s.length);
  }
  for (const [got, expected] of await Promise.all(want)) assert.equal(got, expected);
  s.destroy();
});
