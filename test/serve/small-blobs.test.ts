/**
 * Small blobs kept in memory by `vmimg serve` (src/serve/small-blobs.ts): once a small blob (here the
 * image's config) is stored, hits on it read no file, so they are still answered, whole, by Range and
 * by HEAD, after its file is gone from the cache; a large blob is not kept (its file gone, it is a miss
 * fetched again). Upstream: Debian's docker-registry; client: curl. The LRU's bounds, directly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServe, type RunningServe } from '../../src/serve/index.js';
import { SmallBlobs, SMALL_BLOB_BYTES } from '../../src/serve/small-blobs.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { curl } from '../helpers/curl.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let serve: RunningServe;
let cacheDir: string;
let config: { digest: string; bytes: Buffer };
let layer: { digest: string; size: number };

const blobGets = (digest: string) => registry.accessLog().filter((l) => l.method === 'GET' && l.path.endsWith(`/blobs/${digest}`)).length;
const stored = (digest: string) => join(cacheDir, 'blobs', 'sha256', digest.slice(7));

before(async () => {
  registry = await startRegistry({ accessLog: true });
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-small' });
  const digest = await pushLayout(image.ref, registry.host, 'lib/small:1');
  const manifest = JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  config = { digest: manifest.config.digest, bytes: readFileSync(join(image.layout, 'blobs', 'sha256', manifest.config.digest.slice(7))) };
  layer = manifest.layers[0]!;
  assert.ok(config.bytes.length <= SMALL_BLOB_BYTES && layer.size > SMALL_BLOB_BYTES, 'a small config and a large layer');
  cacheDir = await tmpDir('vmimg-serve-small-');
  serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url, prefetch: 0 });
});

after(async () => {
  await serve?.shutdown();
  await registry?.stop();
});

describe('serve: small blobs kept in memory', () => {
  it('a stored small blob is answered without its file (whole, by Range, HEAD); a large one is fetched again', async () => {
    const url = (d: string) => `${serve.url}/v2/lib/small/blobs/${d}`;
    const first = await curl(url(config.digest));
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-vmimg-cache'], 'miss');
    assert.deepEqual(first.body, config.bytes);
    assert.equal((await curl(url(layer.digest))).status, 200);
    await serve.idle();
    rmSync(stored(config.digest));
    rmSync(stored(layer.digest));

    const whole = await curl(url(config.digest));
    assert.deepEqual([whole.status, whole.headers['x-vmimg-cache']], [200, 'hit']);
    assert.deepEqual(whole.body, config.bytes);
    const part = await curl(url(config.digest), ['-H', 'Range: bytes=10-19']);
    assert.deepEqual([part.status, part.headers['content-range']], [206, `bytes 10-19/${config.bytes.length}`]);
    assert.deepEqual(part.body, config.bytes.subarray(10, 20));
    const beyond = await curl(url(config.digest), ['-H', `Range: bytes=${config.bytes.length}-`]);
    assert.equal(beyond.status, 416);
    const head = await curl(url(config.digest), ['-I']);
    assert.deepEqual([head.status, Number(head.headers['content-length']), head.headers['docker-content-digest']], [200, config.bytes.length, config.digest]);
    assert.equal(blobGets(config.digest), 1, 'the small blob came from the upstream once');

    const again = await curl(url(layer.digest));
    assert.deepEqual([again.status, again.headers['x-vmimg-cache']], [200, 'miss']);
    assert.equal(blobGets(layer.digest), 2, 'a large blob is not kept in memory');
  });

  it('a small blob read from the store on a hit is kept too', async () => {
    // its file went in the test before: a server stores it again; a new one (nothing in memory) hits the store
    const url = (sv: RunningServe) => `${sv.url}/v2/lib/small/blobs/${config.digest}`;
    const filler = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url, prefetch: 0 });
    try {
      assert.equal((await curl(url(filler))).status, 200);
      await filler.idle();
    } finally {
      await filler.shutdown();
    }
    const fresh = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url, prefetch: 0 });
    try {
      const hit = await curl(url(fresh));
      assert.deepEqual([hit.status, hit.headers['x-vmimg-cache']], [200, 'hit']);
      rmSync(stored(config.digest));
      const kept = await curl(url(fresh));
      assert.deepEqual([kept.status, kept.headers['x-vmimg-cache']], [200, 'hit']);
      assert.deepEqual(kept.body, config.bytes);
    } finally {
      await fresh.shutdown();
    }
  });

  it('keeps blobs up to its size bound, and drops the least recently used past its total', () => {
    const kept = new SmallBlobs(4, 10);
    kept.put('a', Buffer.from('aaaa'));
    kept.put('big', Buffer.from('bbbbb'));
    assert.equal(kept.get('big'), undefined, 'larger than the bound');
    kept.put('b', Buffer.from('bbbb'));
    assert.deepEqual(kept.get('a'), Buffer.from('aaaa')); // a is now the most recent
    kept.put('c', Buffer.from('cccc')); // 12 bytes: b, the least recently used, goes
    assert.equal(kept.get('b'), undefined);
    assert.deepEqual([kept.get('a')?.toString(), kept.get('c')?.toString()], ['aaaa', 'cccc']);
    assert.deepEqual(kept.size, { blobs: 2, bytes: 8 });
  });
});
