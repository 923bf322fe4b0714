/**
 * A layer stream that fails before the flattener starts reading it (a download another process
 * finished, a reset connection) is an error of the pull, never an unhandled 'error' event that kills
 * the process (adversarial case C07's crash).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { CacheLayout, prepareImage, type ImageSource } from '../../src/index.js';
import { parseImageConfig } from '../../src/manifest/index.js';
import { tmpDir } from '../helpers/tools.js';

const DIFF_ID = `sha256:${'1'.repeat(64)}`;

function failingSource(): ImageSource {
  const config = parseImageConfig(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [DIFF_ID] }, config: {} })));
  return {
    info: { kind: 'registry', configDigest: `sha256:${'2'.repeat(64)}`, platform: 'linux/amd64' },
    config,
    layers: [
      {
        diffId: DIFF_ID,
        async open() {
          const stream = new PassThrough();
          // fails on the next turn: the flattener is still checking the cache, not reading yet
          setImmediate(() => stream.destroy(new Error('the blob arrived by another way')));
          return stream;
        },
      },
    ],
  };
}

describe('prepareImage and failing layer streams', () => {
  it('a stream that errors before it is read rejects the preparation, without an unhandled error', async () => {
    const cache = new CacheLayout(await tmpDir('vmimg-prepare-streams-'));
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < 5; i++) {
        await assert.rejects(prepareImage(failingSource(), { cache }), /the blob arrived by another way/);
      }
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    assert.deepEqual(uncaught, []);
  });
});
