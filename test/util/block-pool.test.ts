// The reference-counted block pool (src/util/block-pool.ts): a block is reused only once every holder
// of a view of it let go; buffers from elsewhere are ignored; the free list is bounded.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BlockPool } from '../../src/util/block-pool.js';

describe('block pool', () => {
  test('a block comes back only after its last reference, and is then handed out again', () => {
    const pool = new BlockPool(1024, 4, { scrub: true });
    const a = pool.take();
    a.fill(1);
    const view = a.subarray(100, 200);
    pool.hold(view); // a second holder (a socket write of part of it)
    pool.release(a); // the taker lets go
    assert.equal(pool.freeBlocks, 0, 'still held through the view');
    const b = pool.take();
    assert.notEqual(b.buffer, a.buffer, 'a held block is not handed out');
    assert.ok(view.every((x) => x === 1), 'the held bytes stay as they were');
    pool.release(view);
    assert.equal(pool.freeBlocks, 1);
    assert.ok(a.every((x) => x === 0xdd), 'scrubbed when it came back');
    assert.equal(pool.take().buffer, a.buffer, 'then reused');
  });

  test('buffers not from the pool are ignored; the free list keeps at most maxFree blocks', () => {
    const pool = new BlockPool(1024, 2);
    const outsider = Buffer.alloc(1024);
    pool.hold(outsider);
    pool.release(outsider);
    pool.release(outsider);
    assert.equal(pool.freeBlocks, 0);
    const blocks = [pool.take(), pool.take(), pool.take()];
    for (const b of blocks) pool.release(b);
    assert.equal(pool.freeBlocks, 2);
    pool.release(blocks[0]!); // released twice: the second is not counted (the block is no longer handed out)
    assert.equal(pool.freeBlocks, 2);
  });
});
