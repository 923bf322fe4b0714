/**
 * `vmimg serve` caching under faults, with a relay (test/helpers/fault-proxy.ts) between serve and
 * Debian's docker-registry: one upstream GET for 20 concurrent clients of a cold blob, headers and
 * first bytes before a held upstream body goes on, a truncated body resumed by Range, a corrupted byte
 * cutting every client (whole-blob and Range) and caching nothing, a client leaving mid-blob, tag TTL and one HEAD to
 * revalidate, an upstream gone dead (stale tag with a Warning, blob hits still served), and a
 * download cut by shutdown resuming with Range at the next start, and a manifest's commit waiting for
 * the GC lock (a prune) not holding up shutdown.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { body, firstBytes, request } from '../helpers/http.js';
import { join } from 'node:path';
import { startServe, type AccessRecord, type RunningServe } from '../../src/serve/index.js';
import { CacheLayout } from '../../src/image/cache.js';
import { withGcLock } from '../../src/image/lease.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let layer: { digest: string; size: number };
let manifestDigest: string;
const servers: RunningServe[] = [];

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

before(async () => {
  registry = await startRegistry({ accessLog: true });
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-faults' });
  manifestDigest = await pushLayout(image.ref, registry.host, 'lib/busybox:1');
  const manifest = JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8')) as { layers: { digest: string; size: number }[] };
  layer = manifest.layers[0]!;
  assert.ok(layer.size > 500_000, `the layer is big enough to cut in the middle (${layer.size} bytes)`);
  proxy = await startFaultProxy(registry.url);
});

after(async () => {
  for (const s of servers) await s.shutdown();
  await proxy?.stop();
  await registry?.stop();
});

async function serveFresh(options: { tagTtlMs?: number; revalidateTimeoutMs?: number; downHoldMs?: number; upstream?: string; onAccess?: (r: AccessRecord) => void } = {}): Promise<{ serve: RunningServe; cacheDir: string }> {
  proxy.clear();
  const cacheDir = await tmpDir('vmimg-serve-faults-');
  // directFromBytes 0: the busybox layer (~1 MB) goes through the direct GET the bench image's big layer takes
  const serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: options.upstream ?? proxy.url, shutdownGraceMs: 0, directFromBytes: 0, ...options });
  servers.push(serve);
  return { serve, cacheDir };
}

const upstreamGets = (digest: string) => proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`));
const blobUrl = (s: RunningServe) => `${s.url}/v2/lib/busybox/blobs/${layer.digest}`;

describe('serve: one upstream fetch per blob, shared and verified', () => {
  it('20 concurrent clients of one cold blob cause exactly one upstream GET, and all get the blob', async () => {
    const { serve } = await serveFresh();
    const bodies = await Promise.all(Array.from({ length: 20 }, async () => body(await request(blobUrl(serve)))));
    for (const b of bodies) assert.equal(sha(b), layer.digest);
    assert.equal(upstreamGets(layer.digest).length, 1, JSON.stringify(proxy.requests));
  });

  it('a held upstream body: headers and the first bytes reach the client before the upstream goes on', async () => {
    const { serve } = await serveFresh();
    let release!: () => void;
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'hold', afterBytes: 100_000, release: new Promise((r) => (release = r)) } });
    const res = await request(blobUrl(serve)); // resolves on the status line and headers
    assert.equal(res.statusCode, 200);
    assert.equal(Number(res.headers['content-length']), layer.size);
    await firstBytes(res, 50_000); // while the upstream still holds the rest
    release();
    assert.equal(sha(await body(res)), layer.digest);
  });

  it('a body cut short upstream is resumed with Range; the client sees one whole answer', async () => {
    const { serve, cacheDir } = await serveFresh();
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'reset', afterBytes: 300_000 }, times: 1 });
    assert.equal(sha(await body(await request(blobUrl(serve)))), layer.digest);
    const gets = upstreamGets(layer.digest);
    assert.equal(gets.length, 2);
    assert.match(gets[1]!.range ?? '', /^bytes=\d+-$/);
    await serve.idle(); // the client's last byte goes once the blob is verified; the commit follows
    assert.ok(existsSync(join(cacheDir, 'blobs', 'sha256', layer.digest.slice(7))));
  });

  it('a corrupted byte cuts every client before the blob ends and caches nothing; the next request fetches again', async () => {
    const { serve, cacheDir } = await serveFresh();
    // the corrupted end arrives only once every client has all the bytes before it: the clients are at
    // the edge, so only the held-back last byte keeps them from a clean end
    const tail = 1000;
    let release!: () => void;
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'corrupt-tail', bytes: tail, release: new Promise((r) => (release = r)) }, times: 1 });
    const clients = await Promise.all([1, 2, 3].map(() => request(blobUrl(serve))));
    await Promise.all(clients.map((res) => firstBytes(res, layer.size - tail)));
    release();
    const results = await Promise.allSettled(clients.map(body));
    for (const r of results) {
      if (r.status === 'fulfilled') assert.fail(`a client got a complete body of ${r.value.length} bytes`);
    }
    assert.ok(!existsSync(join(cacheDir, 'blobs', 'sha256', layer.digest.slice(7))), 'not committed');
    assert.ok(!existsSync(join(cacheDir, 'partial', layer.digest.slice(7))), 'no partial kept');
    assert.equal(sha(await body(await request(blobUrl(serve)))), layer.digest);
    assert.equal(upstreamGets(layer.digest).length, 2);
  });

  it('a Range answer on a miss is cut, not ended, when the blob fails its digest', async () => {
    const { serve, cacheDir } = await serveFresh();
    let release!: () => void;
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'corrupt-tail', bytes: 1000, release: new Promise((r) => (release = r)) }, times: 1 });
    const res = await request(blobUrl(serve), { range: 'bytes=1000-1999' });
    assert.equal(res.statusCode, 206);
    assert.equal(res.headers['x-vmimg-cache'], 'miss');
    await firstBytes(res, 999); // all of the range but its last byte, which waits for the verification
    release();
    await assert.rejects(body(res), 'the Range client saw the connection cut');
    assert.ok(!existsSync(join(cacheDir, 'blobs', 'sha256', layer.digest.slice(7))), 'not committed');
  });

  it('a client leaving mid-blob does not stop the download for the others, and its log line has its address', async () => {
    const log: AccessRecord[] = [];
    const { serve } = await serveFresh({ onAccess: (r) => log.push(r) });
    let release!: () => void;
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'hold', afterBytes: 200_000, release: new Promise((r) => (release = r)) } });
    const leaving = await request(blobUrl(serve));
    await firstBytes(leaving, 100_000);
    const staying = await request(blobUrl(serve));
    leaving.destroy();
    await new Promise((r) => leaving.once('close', r));
    release();
    assert.equal(sha(await body(staying)), layer.digest);
    assert.equal(upstreamGets(layer.digest).length, 1);
    const cut = log.find((r) => r.status === 499);
    assert.ok(cut !== undefined, JSON.stringify(log));
    assert.equal(cut.remote, '127.0.0.1', 'the remote address is recorded at request start');
  });
});

describe('serve: shutdown', () => {
  it('a download cut by shutdown resumes with Range at the next start on the same cache', async () => {
    const { serve, cacheDir } = await serveFresh();
    let reached!: () => void;
    const held = new Promise<void>((r) => (reached = r));
    proxy.add({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'hold', afterBytes: 300_000, reached, release: new Promise(() => {}) }, times: 1 });
    const res = await request(blobUrl(serve));
    res.on('error', () => {});
    res.resume();
    await held;
    await firstPartialBytes(join(cacheDir, 'partial', layer.digest.slice(7)));
    const stopped = new Promise((r) => res.once('close', r));
    await stopNow(serve);
    await stopped;
    const again = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: proxy.url, directFromBytes: 0 });
    servers.push(again);
    assert.equal(sha(await body(await request(blobUrl(again)))), layer.digest);
    const gets = upstreamGets(layer.digest);
    assert.equal(gets.length, 2);
    assert.match(gets[1]!.range ?? '', /^bytes=[1-9]\d*-$/, 'the second start resumed from the partial file');
  });
});

describe('serve: a manifest committed after its answer', () => {
  it('a commit waiting for the GC lock (a prune running) does not hold up shutdown; a warning says the manifest was not stored', { timeout: 30_000 }, async () => {
    proxy.clear();
    const cacheDir = await tmpDir('vmimg-serve-faults-');
    const warnings: string[] = [];
    const serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: proxy.url, shutdownGraceMs: 0, prefetch: 0, onWarning: (m) => warnings.push(m) });
    let releaseLock!: () => void;
    let locked!: () => void;
    const lockHeld = new Promise<void>((r) => (locked = r));
    // what a prune does: hold the cache's GC lock, here until the test lets go
    const prune = withGcLock(new CacheLayout(cacheDir), () => new Promise<void>((r) => {
      releaseLock = r;
      locked();
    }));
    try {
      await lockHeld;
      const res = await request(`${serve.url}/v2/lib/busybox/manifests/1`, { accept: 'application/vnd.oci.image.manifest.v1+json' });
      assert.equal(res.statusCode, 200, 'answered before its commit');
      assert.equal(sha(await body(res)), manifestDigest);
      await serve.shutdown(); // hangs (the test times out) while the commit waits for the lock
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, new RegExp(`^manifest ${manifestDigest} of lib/busybox was served but not stored: .*(GC lock|shutting down)`));
      assert.equal(existsSync(join(cacheDir, 'blobs', 'sha256', manifestDigest.slice(7))), false);
    } finally {
      releaseLock?.();
      await prune;
    }
  });
});

/** Shuts a server down with its in-flight answers cut at once (a 0 s grace). */
async function stopNow(serve: RunningServe): Promise<void> {
  servers.splice(servers.indexOf(serve), 1);
  await serve.shutdown();
}

/** Resolves once the partial file has bytes in it. */
async function firstPartialBytes(path: string): Promise<void> {
  const { stat } = await import('node:fs/promises');
  for (;;) {
    const size = await stat(path).then((s) => s.size, () => 0);
    if (size > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('serve: hostile upstream answers', () => {
  it('an oversized manifest is a coded JSON error and nothing is cached', async () => {
    const { serve, cacheDir } = await serveFresh();
    const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
    proxy.add({ method: 'GET', path: '/manifests/big', fault: { kind: 'body', body: huge, chunked: true } });
    const res = await request(`${serve.url}/v2/lib/busybox/manifests/big`);
    assert.equal(res.statusCode, 502);
    const err = (JSON.parse((await body(res)).toString()) as { errors: { code: string; detail: { vmimg: string } }[] }).errors[0]!;
    assert.equal(err.code, 'MANIFEST_INVALID');
    assert.equal(err.detail.vmimg, 'ERR_TOO_LARGE');
    assert.ok(!existsSync(join(cacheDir, 'blobs')), 'no blob stored');
    assert.ok(!existsSync(join(cacheDir, 'serve', 'tags.json')), 'no tag recorded');
  });
});

describe('serve: tags/list pagination', () => {
  // Debian's docker-registry 2.8 ignores `n` (every tag, no Link), so comparing with it cannot show a
  // dropped query: the relay records what reached the upstream and answers one page with a Link
  it('n and last reach the upstream, and its Link comes back with the client\'s repository name', async () => {
    const { serve } = await serveFresh();
    const link = '</v2/lib/busybox/tags/list?n=1&last=1>; rel="next"';
    proxy.add({ method: 'GET', path: '/tags/list', fault: { kind: 'status', status: 200, headers: { link }, body: '{"name":"lib/busybox","tags":["1"]}' } });
    const res = await request(`${serve.url}/v2/lib/busybox/tags/list?n=1&last=0`);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(JSON.parse((await body(res)).toString()), { name: 'lib/busybox', tags: ['1'] });
    assert.equal(res.headers.link, link);
    assert.deepEqual(proxy.requests.filter((r) => r.path.includes('/tags/list')).map((r) => r.path), ['/v2/lib/busybox/tags/list?n=1&last=0']);
  });
});

describe('serve: tags', () => {
  const tagRequests = () => proxy.requests.filter((r) => r.path.endsWith('/manifests/1'));

  it('/metrics counts manifest hits and misses per request, as the access log does: concurrent cold requests are each a miss', async () => {
    const log: AccessRecord[] = [];
    const { serve } = await serveFresh({ onAccess: (r) => log.push(r) });
    const tag = `${serve.url}/v2/lib/busybox/manifests/1`;
    // the upstream GET is held until every client has been in serve a while: on a fast host the fetch
    // could otherwise end before the fifth request arrives, which is then rightly a hit
    let release!: () => void;
    const reached = new Promise<void>((resolve) => {
      proxy.add({ method: 'GET', path: '/manifests/1', fault: { kind: 'hold', afterBytes: 0, reached: resolve, release: new Promise<void>((r) => (release = r)) } });
    });
    const pending = Array.from({ length: 5 }, () => request(tag));
    await reached;
    await new Promise((r) => setTimeout(r, 200));
    // and a poll phase or two after the timer, so requests that arrived while the process was held up are read first
    for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
    release();
    const cold = await Promise.all(pending);
    for (const r of cold) assert.equal(r.headers['x-vmimg-cache'], 'miss');
    await Promise.all(cold.map((r) => body(r)));
    await body(await request(tag));
    await body(await request(`${serve.url}/v2/lib/busybox/manifests/${manifestDigest}`));
    const text = (await body(await request(`${serve.url}/metrics`))).toString();
    const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    assert.equal(value('vmimg_serve_cache_misses_total\\{kind="manifest"\\}'), 5, text);
    assert.equal(value('vmimg_serve_cache_hits_total\\{kind="manifest"\\}'), 2, text);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(log.filter((l) => l.path.includes('/manifests/')).map((l) => l.cache), ['miss', 'miss', 'miss', 'miss', 'miss', 'hit', 'hit']);
    assert.deepEqual(tagRequests().map((r) => r.method), ['GET'], 'one upstream fetch for the five');
  });

  it('within the TTL a tag is answered from the table: one upstream GET for three clients', async () => {
    const { serve } = await serveFresh();
    for (let i = 0; i < 3; i++) assert.equal((await request(`${serve.url}/v2/lib/busybox/manifests/1`)).headers['docker-content-digest'], manifestDigest);
    assert.deepEqual(tagRequests().map((r) => r.method), ['GET']);
  });

  it('past the TTL one HEAD revalidates; an upstream gone dead gets the last digest served with a Warning, and blob hits go on', async () => {
    const deadProxy = await startFaultProxy(registry.url);
    proxy.clear();
    const cacheDir = await tmpDir('vmimg-serve-stale-');
    const serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: deadProxy.url, tagTtlMs: 0 });
    servers.push(serve);
    const tag = `${serve.url}/v2/lib/busybox/manifests/1`;
    assert.equal((await request(tag)).statusCode, 200);
    assert.equal(sha(await body(await request(blobUrl(serve)))), layer.digest);
    await serve.idle(); // committed: the blob is a hit below
    const again = await request(tag);
    assert.equal(again.headers['docker-content-digest'], manifestDigest);
    assert.deepEqual(deadProxy.requests.filter((r) => r.path.endsWith('/manifests/1')).map((r) => r.method), ['GET', 'HEAD']);
    await deadProxy.stop();
    const stale = await request(tag);
    assert.equal(stale.statusCode, 200);
    assert.equal(stale.headers['docker-content-digest'], manifestDigest);
    assert.match(String(stale.headers.warning), /^110 /);
    const hit = await request(blobUrl(serve));
    assert.equal(hit.headers['x-vmimg-cache'], 'hit');
    assert.equal(sha(await body(hit)), layer.digest);
    const unknown = await request(`${serve.url}/v2/lib/busybox/manifests/never-seen`);
    assert.equal(unknown.statusCode, 503);
    assert.equal((JSON.parse((await body(unknown)).toString()) as { errors: { code: string }[] }).errors[0]!.code, 'UNAVAILABLE');
  });

  it('an upstream that hangs when a tag is revalidated is down too: the stale digest comes after revalidateTimeoutMs, not the idle timeout', { timeout: 20_000 }, async () => {
    const { serve } = await serveFresh({ tagTtlMs: 0, revalidateTimeoutMs: 500 });
    const tag = `${serve.url}/v2/lib/busybox/manifests/1`;
    assert.equal((await request(tag)).statusCode, 200);
    // headers that never end (a byte every 200 ms): the 30 s idle timeout, twice, without the bound
    proxy.add({ method: 'HEAD', path: '/manifests/1', fault: { kind: 'slow-headers', everyMs: 200 } });
    const stale = await request(tag);
    assert.equal(stale.statusCode, 200);
    assert.equal(stale.headers['docker-content-digest'], manifestDigest);
    assert.match(String(stale.headers.warning), /^110 /);
    assert.equal(stale.headers['x-vmimg-cache'], 'stale');
  });

  it('an upstream found down is left alone for downHoldMs: its known tags are stale at once, then one request asks again', { timeout: 20_000 }, async () => {
    const { serve } = await serveFresh({ tagTtlMs: 0, revalidateTimeoutMs: 500, downHoldMs: 1500 });
    const tag = `${serve.url}/v2/lib/busybox/manifests/1`;
    assert.equal((await request(tag)).statusCode, 200);
    proxy.add({ method: 'HEAD', path: '/manifests/1', fault: { kind: 'status', status: 503 } });
    const heads = () => proxy.requests.filter((r) => r.method === 'HEAD' && r.path.endsWith('/manifests/1')).length;
    const first = await request(tag);
    assert.equal(first.headers['x-vmimg-cache'], 'stale');
    const asked = heads();
    assert.ok(asked >= 1);
    // within the hold: stale without a request upstream (without the hold, each waited for 503s and retries)
    for (let i = 0; i < 3; i++) {
      const again = await request(tag);
      assert.equal(again.headers['x-vmimg-cache'], 'stale');
      assert.equal(again.headers['docker-content-digest'], manifestDigest);
      assert.match(String(again.headers.warning), /^110 /);
    }
    assert.equal(heads(), asked, 'the upstream was not asked during the hold');
    proxy.clear(); // the upstream is back
    await new Promise((r) => setTimeout(r, 1600));
    const back = await request(tag);
    assert.equal(back.headers['x-vmimg-cache'], 'revalidated');
    assert.equal(heads(), 1, 'one HEAD once the hold ended');
  });
});
