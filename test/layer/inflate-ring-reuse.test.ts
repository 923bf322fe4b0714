/**
 * The inflate worker's rings serve later layers (breaker6 M1: a ring per gzip layer piled up in the
 * workers, ~1.5 MiB of RSS per layer): a tar ring is reused once its hash stream ended and the inflate
 * worker let go of it — at the gzip stream's end, or at its confirmation of an early close — and the
 * bytes read through a reused ring still hash as sha256sum says. Input compressed by GNU gzip.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateToRing, InflatePool } from '../../src/layer/inflate-pool.js';
import { HashPool, type HashStream } from '../../src/util/hash-pool.js';
import { run, tmpDir } from '../helpers/tools.js';

let gz: Buffer;
let sum: string;
const hashes = new HashPool({ threads: 1 });
const inflaters = new InflatePool(1);

before(async () => {
  const dir = await tmpDir('vmimg-ring-reuse-');
  const file = join(dir, 'data');
  writeFileSync(file, randomBytes(3 << 20)); // more than the 2 MiB ring: it wraps
  await run('gzip', ['-1', '-k', file]);
  gz = readFileSync(`${file}.gz`);
  sum = (await run('sha256sum', [file])).split(' ')[0]!;
});
after(() => hashes.close());

const RING = 2 << 20;
const tarStream = (ringBytes = RING): HashStream => hashes.stream({ whole: true, ranges: true, shared: true, ringBytes });

/** Reads the gunzipped bytes through `out`'s ring; `stopAfter` chunks, then returns early. */
async function readThrough(out: HashStream, stopAfter = Infinity): Promise<void> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let at = 0; at < gz.length; at += 65_536) yield gz.subarray(at, at + 65_536);
  }
  let read = 0;
  let n = 0;
  const reader = { releaseTo: () => read, unblock: async () => undefined };
  for await (const chunk of inflateToRing(chunks(), out, reader, 1 << 20, inflaters)) {
    read += chunk.length;
    if (++n >= stopAfter) break;
  }
}

test('a tar ring is reused after its gzip stream ended, and hashes right again', async () => {
  const first = tarStream();
  await readThrough(first);
  assert.equal(await first.end(), sum);
  const second = tarStream();
  assert.equal(second.sharedRing.sab, first.sharedRing.sab, 'ended and let go by the inflate worker: reused');
  await readThrough(second);
  assert.equal(await second.end(), sum, 'the bytes through the reused ring');
});

test('a tar ring closed early is reused only once the inflate worker confirmed the close', async () => {
  const early = tarStream();
  await readThrough(early, 1);
  early.release(early.length);
  await early.end();
  // the close's confirmation comes before any later answer of the same worker: a whole other stream
  const other = tarStream(RING * 2);
  assert.notEqual(other.sharedRing.sab, early.sharedRing.sab);
  await readThrough(other);
  assert.equal(await other.end(), sum);
  assert.equal(tarStream().sharedRing.sab, early.sharedRing.sab, 'confirmed: reused');
});
