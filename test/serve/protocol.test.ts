/**
 * `vmimg serve`, the read side of the distribution protocol, with curl as the client and Debian's
 * docker-registry as the upstream (its access log counts what reached it): /v2/, manifests by tag and
 * digest (HEAD headers, exact bytes, Accept), blobs with one Range on hits and misses (206, 416),
 * tags/list and referrers passed through, and spec-shaped coded errors for hostile paths.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServe, type RunningServe } from '../../src/serve/index.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { buildBusyboxLayout, buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { curl } from '../helpers/curl.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let serve: RunningServe;
let cacheDir: string;
let manifestBytes: Buffer;
let manifestDigest: string;
let layer: { digest: string; size: number; bytes: Buffer };
let indexDigest: string;

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobGets = (digest: string) => registry.accessLog().filter((l) => l.method === 'GET' && l.path.endsWith(`/blobs/${digest}`)).length;

before(async () => {
  registry = await startRegistry({ accessLog: true });
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve' });
  manifestDigest = await pushLayout(image.ref, registry.host, 'lib/busybox:1');
  const multi = await buildMultiArchLayout('serve-multi');
  indexDigest = await pushLayout(multi.ref, registry.host, 'lib/multi:1', { all: true });
  manifestBytes = readFileSync(join(image.layout, 'blobs', 'sha256', manifestDigest.slice(7)));
  const l = (JSON.parse(manifestBytes.toString()) as { layers: { digest: string; size: number }[] }).layers[0]!;
  layer = { ...l, bytes: readFileSync(join(image.layout, 'blobs', 'sha256', l.digest.slice(7))) };
  cacheDir = await tmpDir('vmimg-serve-');
  serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url, prefetch: 0 }); // misses here are the clients' own
});

after(async () => {
  await serve?.shutdown();
  await registry?.stop();
});

describe('serve: protocol read side', () => {
  it('GET /v2/ answers 200 with the API version header', async () => {
    const r = await curl(`${serve.url}/v2/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('HEAD of a tag carries Content-Type, Docker-Content-Digest and Content-Length; GET the exact bytes', async () => {
    const h = await curl(`${serve.url}/v2/lib/busybox/manifests/1`, ['-I', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json']);
    assert.equal(h.status, 200);
    assert.equal(h.headers['docker-content-digest'], manifestDigest);
    assert.equal(h.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(Number(h.headers['content-length']), manifestBytes.length);
    const g = await curl(`${serve.url}/v2/lib/busybox/manifests/${manifestDigest}`);
    assert.equal(g.status, 200);
    assert.ok(g.body.equals(manifestBytes), 'the stored bytes, not a re-encoding');
  });

  it('an index tag is served as the index; an Accept without its type is MANIFEST_UNKNOWN, its digest is always served', async () => {
    const g = await curl(`${serve.url}/v2/lib/multi/manifests/1`, ['-H', 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json']);
    assert.equal(g.status, 200);
    assert.equal(g.headers['docker-content-digest'], indexDigest);
    assert.equal(sha(g.body), indexDigest);
    const refused = await curl(`${serve.url}/v2/lib/multi/manifests/1`, ['-H', 'Accept: application/vnd.docker.distribution.manifest.v2+json']);
    assert.equal(refused.status, 404);
    assert.equal(refused.json<{ errors: { code: string }[] }>().errors[0]!.code, 'MANIFEST_UNKNOWN');
    const byDigest = await curl(`${serve.url}/v2/lib/multi/manifests/${indexDigest}`, ['-H', 'Accept: application/vnd.docker.distribution.manifest.v2+json']);
    assert.equal(byDigest.status, 200);
  });

  it('a blob miss answers Range from the arriving download (206), then hits answer Range too; one upstream GET', async () => {
    const before = blobGets(layer.digest);
    const miss = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer.digest}`, ['-r', '100-199']);
    assert.equal(miss.status, 206);
    assert.equal(miss.headers['x-vmimg-cache'], 'miss');
    assert.equal(miss.headers['content-range'], `bytes 100-199/${layer.size}`);
    assert.ok(miss.body.equals(layer.bytes.subarray(100, 200)));
    const whole = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer.digest}`);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers['docker-content-digest'], layer.digest);
    assert.equal(sha(whole.body), layer.digest);
    const suffix = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer.digest}`, ['-H', 'Range: bytes=-10']);
    assert.equal(suffix.status, 206);
    assert.ok(suffix.body.equals(layer.bytes.subarray(layer.size - 10)));
    await serve.idle(); // the download's answers end once verified; its commit follows
    const open = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer.digest}`, ['-r', `${layer.size - 5}-`]);
    assert.equal(open.headers['x-vmimg-cache'], 'hit');
    assert.ok(open.body.equals(layer.bytes.subarray(layer.size - 5)));
    const past = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer.digest}`, ['-r', `${layer.size}-`]);
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], `bytes */${layer.size}`);
    const head = await curl(`${serve.url}/v2/lib/busybox/blobs/${layer.digest}`, ['-I']);
    assert.equal(Number(head.headers['content-length']), layer.size);
    assert.equal(head.headers['accept-ranges'], 'bytes');
    assert.equal(blobGets(layer.digest) - before, 1, 'one upstream GET for all of them');
  });

  it('what the upstream does not have is BLOB_UNKNOWN / MANIFEST_UNKNOWN, and nothing is cached', async () => {
    const missing = `sha256:${'0'.repeat(64)}`;
    const blob = await curl(`${serve.url}/v2/lib/busybox/blobs/${missing}`);
    assert.equal(blob.status, 404);
    assert.equal(blob.json<{ errors: { code: string }[] }>().errors[0]!.code, 'BLOB_UNKNOWN');
    const tag = await curl(`${serve.url}/v2/lib/busybox/manifests/nope`);
    assert.equal(tag.status, 404);
    assert.equal(tag.json<{ errors: { code: string }[] }>().errors[0]!.code, 'MANIFEST_UNKNOWN');
    const head = await curl(`${serve.url}/v2/lib/busybox/manifests/${missing}`, ['-I']);
    assert.equal(head.status, 404);
    assert.ok(!readdirSync(join(cacheDir, 'blobs', 'sha256')).includes('0'.repeat(64)));
    assert.ok(!readdirSync(join(cacheDir, 'partial')).some((n) => n.startsWith('0'.repeat(64))), 'no partial left');
  });

  it('tags/list is passed through (n, last and Link as the upstream answers them)', async () => {
    await pushLayout((await buildBusyboxLayout({ arch: 'amd64', tag: 'serve' })).ref, registry.host, 'lib/busybox:2');
    for (const query of ['', '?n=1', '?n=1&last=1']) {
      const r = await curl(`${serve.url}/v2/lib/busybox/tags/list${query}`);
      const direct = await curl(`${registry.url}/v2/lib/busybox/tags/list${query}`);
      assert.equal(r.status, 200, query);
      assert.deepEqual(r.json(), direct.json(), query);
      assert.equal(r.headers.link, direct.headers.link, query);
    }
  });

  it('referrers: an empty index when there are none; else the fallback tag of an upstream without the API, filtered by artifactType', async () => {
    const none = await curl(`${serve.url}/v2/lib/busybox/referrers/${manifestDigest}`);
    assert.equal(none.status, 200);
    assert.equal(none.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(none.json<{ manifests: unknown[] }>().manifests, []);
    // distribution 2.8 has no referrers API: a referrer is listed under the spec's fallback tag (pushed with curl)
    const entry = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifestBytes.length, artifactType: 'application/vnd.example.test' };
    const file = join(await tmpDir('vmimg-serve-referrers-'), 'index.json');
    writeFileSync(file, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry] }));
    const put = await curl(`${registry.url}/v2/lib/busybox/manifests/sha256-${manifestDigest.slice(7)}`, ['-X', 'PUT', '-H', 'Content-Type: application/vnd.oci.image.index.v1+json', '--data-binary', `@${file}`]);
    assert.equal(put.status, 201, put.body.toString());
    const listed = await curl(`${serve.url}/v2/lib/busybox/referrers/${manifestDigest}`);
    assert.deepEqual(listed.json<{ manifests: unknown[] }>().manifests, [entry]);
    const other = await curl(`${serve.url}/v2/lib/busybox/referrers/${manifestDigest}?artifactType=application/vnd.example.other`);
    assert.deepEqual(other.json<{ manifests: unknown[] }>().manifests, []);
    assert.equal(other.headers['oci-filters-applied'], 'artifactType');
    // entries that are not descriptors are left out, not an ERR_INTERNAL (breaker, session 14)
    // (the registry refuses such a list: a fault proxy in front of it answers one)
    const junk = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [null, 5, { digest: 7 }, entry] }));
    const proxy = await startFaultProxy(registry.url);
    proxy.add({ method: 'GET', path: `/manifests/sha256-${manifestDigest.slice(7)}`, fault: { kind: 'body', body: junk, contentType: 'application/vnd.oci.image.index.v1+json' } });
    const proxied = await startServe({ cacheDir: await tmpDir('vmimg-serve-junk-'), listen: '127.0.0.1:0', upstream: proxy.url, prefetch: 0 });
    try {
      const filtered = await curl(`${proxied.url}/v2/lib/busybox/referrers/${manifestDigest}?artifactType=application/vnd.example.test`);
      assert.equal(filtered.status, 200, filtered.body.toString());
      assert.deepEqual(filtered.json<{ manifests: unknown[] }>().manifests, [entry]);
    } finally {
      await proxied.shutdown();
      await proxy.stop();
    }
  });

  it('hostile paths and methods are coded JSON errors and reach neither the upstream nor the cache', async () => {
    const logged = registry.accessLog().length;
    const blobsBefore = readdirSync(join(cacheDir, 'blobs', 'sha256')).length;
    const cases: [string, string[], number, string][] = [
      ['/v2/../../etc/passwd/manifests/latest', [], 400, 'NAME_INVALID'],
      ['/v2/lib/%2e%2e/busybox/manifests/1', [], 400, 'NAME_INVALID'],
      ['/v2/lib/busybox/blobs/sha256:../../../../etc/passwd', [], 404, 'NOT_FOUND'],
      ['/v2/lib/busybox/blobs/sha256:..%2f..%2fetc%2fpasswd', [], 400, 'DIGEST_INVALID'],
      [`/v2/lib/busybox/blobs/sha256:${'a'.repeat(63)}`, [], 400, 'DIGEST_INVALID'],
      ['/v2/lib/busybox/manifests/..', [], 400, 'TAG_INVALID'],
      [`/v2/${'a/'.repeat(130)}x/manifests/1`, [], 400, 'NAME_INVALID'],
      ['/v2/lib/busybox/manifests/1?ns=evil.example', [], 404, 'NAME_UNKNOWN'],
      ['/v2/lib/busybox/blobs/uploads/', ['-X', 'POST'], 405, 'UNSUPPORTED'],
      ['/v2/lib/busybox/manifests/1', ['-X', 'PUT', '--data', '{}'], 405, 'UNSUPPORTED'],
    ];
    for (const [path, args, status, code] of cases) {
      const r = await curl(`${serve.url}${path}`, args);
      assert.equal(r.status, status, path);
      const body = r.json<{ errors: { code: string; message: string }[] }>();
      assert.equal(body.errors[0]!.code, code, `${path}: ${body.errors[0]!.message}`);
    }
    assert.equal(registry.accessLog().length, logged, 'nothing reached the upstream');
    assert.equal(readdirSync(join(cacheDir, 'blobs', 'sha256')).length, blobsBefore, 'nothing cached');
  });

  it('routes: ?ns= names an upstream; --route PREFIX=URL strips the prefix; a repository outside every route is NAME_UNKNOWN', async () => {
    const ns = await curl(`${serve.url}/v2/lib/busybox/manifests/1?ns=${registry.host}`, ['-I']);
    assert.equal(ns.headers['docker-content-digest'], manifestDigest);
    const routedDir = await tmpDir('vmimg-serve-routed-');
    const routed = await startServe({ cacheDir: routedDir, listen: '127.0.0.1:0', routes: [`up=${registry.url}`] });
    try {
      const r = await curl(`${routed.url}/v2/up/lib/busybox/manifests/1`, ['-I']);
      assert.equal(r.headers['docker-content-digest'], manifestDigest);
      const logged = registry.accessLog().length;
      const outside = await curl(`${routed.url}/v2/lib/busybox/manifests/1`);
      assert.equal(outside.status, 404);
      assert.equal(outside.json<{ errors: { code: string }[] }>().errors[0]!.code, 'NAME_UNKNOWN');
      assert.equal(registry.accessLog().length, logged);
    } finally {
      await routed.shutdown();
    }
  });

  it('/metrics counts hits, misses and upstream bytes in Prometheus text', async () => {
    const r = await curl(`${serve.url}/metrics`);
    assert.equal(r.status, 200);
    const text = r.body.toString();
    const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    assert.ok(value('vmimg_serve_cache_hits_total\\{kind="blob"\\}') >= 3, text);
    assert.ok(value('vmimg_serve_cache_misses_total\\{kind="blob"\\}') >= 1);
    assert.ok(value('vmimg_serve_upstream_bytes_total') >= layer.size);
    assert.equal(value('vmimg_serve_downloads_in_flight'), 0);
  });
});
