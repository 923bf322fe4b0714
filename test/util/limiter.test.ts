import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settleAll } from '../../src/util/limiter.js';

test('settleAll rejects with the first failure in input order, and only after every promise settled', async () => {
  let slowDone = false;
  const slow = new Promise<number>((resolve) => setTimeout(() => ((slowDone = true), resolve(1)), 30));
  const early = Promise.reject(new Error('second'));
  const first = new Promise<number>((_, reject) => setTimeout(() => reject(new Error('first')), 10));
  await assert.rejects(settleAll([first, early, slow]), (err: Error) => {
    assert.equal(err.message, 'first'); // input order, not the order they failed in
    assert.equal(slowDone, true, 'a caller cleaning up after the failure must find nothing still running');
    return true;
  });
  assert.deepEqual(await settleAll([Promise.resolve(1), Promise.resolve(2)]), [1, 2]);
});
