/**
 * `vmimg serve` fanning one download out to its clients: those keeping up are answered from the
 * download's newest bytes in memory (HOT_BYTES), those behind it from the partial file. A layer of
 * incompressible bytes larger than that window (umoci builds it) is held upstream part-way by the
 * fault relay, so a late client starts behind the window and catches up, and a paused one falls behind
 * it; every client must get exactly the blob, from one upstream GET. Hits read the stored blob into
 * reused buffers: many clients at once, some slow, must each get exactly the blob too. An image
 * manifest sent to a client starts its blobs' downloads ahead of it (`prefetch`), each once upstream.
 * The download's blocks and the file reads come from a scrubbing block pool: a block given back while a
 * client's write, the window or the store still read it shows as wrong bytes in some client's blob.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServe, type RunningServe } from '../../src/serve/index.js';
import { HOT_BYTES } from '../../src/serve/fill.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { curl } from '../helpers/curl.js';
import { body, firstBytes, request } from '../helpers/http.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';
import { BlockPool, POOL_BLOCK_BYTES, POOL_MAX_FREE, setSharedBlockPool } from '../../src/util/block-pool.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let layer: { digest: string; size: number };
let serve: RunningServe;
let manifest: { config: { digest: string }; layers: { digest: string; size: number }[] };

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  setSharedBlockPool(new BlockPool(POOL_BLOCK_BYTES, POOL_MAX_FREE, { scrub: true }));
  registry = await startRegistry();
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-fanout', extraLayers: [{ files: { 'big.bin': randomBytes(3 * HOT_BYTES) } }] });
  const manifestDigest = await pushLayout(image.ref, registry.host, 'lib/big:1');
  manifest = JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as typeof manifest;
  layer = manifest.layers[1]!;
  assert.ok(layer.size > 2 * HOT_BYTES, `the layer outgrows the in-memory window (${layer.size} bytes)`);
  proxy = await startFaultProxy(registry.url);
  serve = await startServe({ cacheDir: await tmpDir('vmimg-serve-fanout-'), listen: '127.0.0.1:0', upstream: proxy.url, shutdownGraceMs: 0, prefetch: 0 });
});

after(async () => {
  await serve?.shutdown();
  await proxy?.stop();
  await registry?.stop();
});

describe('serve: one download fanned out from memory and from the partial file', () => {
  it('a client starting behind the window, one keeping up and one falling behind all get the blob; one upstream GET', async () => {
    let release!: () => void;
    const heldAt = 2 * HOT_BYTES;
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'hold', afterBytes: heldAt, release: new Promise((r) => (release = r)) } });
    const url = `${serve.url}/v2/lib/big/blobs/${layer.digest}`;
    const first = await request(url);
    await firstBytes(first, heldAt - HOT_BYTES / 2); // the download is well past the window's size
    const late = await request(url); // starts at 0, behind the window: the partial file, then memory
    const paused = await request(url);
    await firstBytes(paused, 100_000);
    release();
    const [a, b] = await Promise.all([body(first), body(late)]);
    assert.equal(sha(a), layer.digest);
    assert.equal(sha(b), layer.digest);
    await serve.idle(); // the download is done and committed while `paused` still has most to read
    assert.equal(sha(await body(paused)), layer.digest);
    assert.equal(proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`)).length, 1);
  });

  it('a client answered from memory that stops reading gets the blob when it resumes: its pending writes hold their blocks', async () => {
    const s = await startServe({ cacheDir: await tmpDir('vmimg-serve-fanout-'), listen: '127.0.0.1:0', upstream: proxy.url, shutdownGraceMs: 0, prefetch: 0 });
    try {
      // the manifest first, as clients ask: its sizes send the layer's download over the direct GET, into pooled blocks
      await body(await request(`${s.url}/v2/lib/big/manifests/1`, { accept: 'application/vnd.oci.image.manifest.v1+json' }));
      let release!: () => void;
      proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'hold', afterBytes: 1 << 20, release: new Promise((r) => (release = r)) } });
      const stalled = await request(`${s.url}/v2/lib/big/blobs/${layer.digest}`);
      await firstBytes(stalled, 100_000); // at the download's front, then no more reads: its socket fills
      release();
      await s.idle(); // the download went on far past the window while serve's writes to it waited
      assert.equal(sha(await body(stalled)), layer.digest);
    } finally {
      await s.shutdown();
    }
  });

  it('hits: eight clients at once, half of them slow readers, each get exactly the stored blob', async () => {
    const url = `${serve.url}/v2/lib/big/blobs/${layer.digest}`;
    await body(await request(url));
    await serve.idle();
    const answers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const res = await request(url);
      assert.equal(res.headers['x-vmimg-cache'], 'hit');
      if (i % 2 === 0) return body(res);
      // a slow reader: its socket fills, so serve's writes queue behind it
      const parts: Buffer[] = [];
      for await (const chunk of res) {
        parts.push(chunk as Buffer);
        if (parts.length % 64 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      return Buffer.concat(parts);
    }));
    for (const a of answers) assert.equal(sha(a), layer.digest);
  });
});

describe('serve: prefetch', () => {
  const blobGets = (digest: string) => proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)).length;
  const digests = () => [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];

  it('an image manifest GET fetches each of its blobs once, ahead of the client, which then hits; a HEAD fetches nothing', async () => {
    const s = await startServe({ cacheDir: await tmpDir('vmimg-serve-prefetch-'), listen: '127.0.0.1:0', upstream: proxy.url, shutdownGraceMs: 0, prefetch: 1 });
    try {
      const before = digests().map(blobGets);
      const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
      assert.equal((await curl(`${s.url}/v2/lib/big/manifests/1`, ['-I', '-H', `Accept: ${accept.accept}`])).status, 200);
      await s.idle();
      assert.deepEqual(digests().map(blobGets), before, 'a HEAD fetches no blob');
      await body(await request(`${s.url}/v2/lib/big/manifests/1`, accept));
      await s.idle(); // no client asked for a blob yet
      const once = digests().map(() => 1);
      assert.deepEqual(digests().map((d, i) => blobGets(d) - before[i]!), once, 'each blob fetched once, ahead of the client');
      for (const d of digests()) {
        const res = await request(`${s.url}/v2/lib/big/blobs/${d}`);
        assert.equal(res.headers['x-vmimg-cache'], 'hit');
        assert.equal(sha(await body(res)), d);
      }
      assert.deepEqual(digests().map((d, i) => blobGets(d) - before[i]!), once);
    } finally {
      await s.shutdown();
    }
  });

  it('prefetch 0: a manifest GET fetches no blob', async () => {
    const s = await startServe({ cacheDir: await tmpDir('vmimg-serve-prefetch-'), listen: '127.0.0.1:0', upstream: proxy.url, shutdownGraceMs: 0, prefetch: 0 });
    try {
      const before = digests().map(blobGets);
      await body(await request(`${s.url}/v2/lib/big/manifests/1`, { accept: 'application/vnd.oci.image.manifest.v1+json' }));
      await s.idle();
      assert.deepEqual(digests().map(blobGets), before);
    } finally {
      await s.shutdown();
    }
  });
});
