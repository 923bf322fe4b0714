// Faults injected by a loopback proxy in front of the real docker-registry: retries, resume,
// oversized and wrong bodies, huge manifests, redirects across hosts, stalls.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { parseManifestDocument } from '../../src/manifest/index.js';
import type { Descriptor } from '../../src/manifest/types.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { RegistryBlobReader, listPlatforms } from '../../src/content/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { downloadBlob } from '../helpers/blob-download.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let manifestDigest: string;
let layer: Descriptor;
const clients: RegistryClient[] = [];

function client(extra: Partial<RegistryClientOptions> = {}): RegistryClient {
  const c = new RegistryClient({ retry: { attempts: 5, baseDelayMs: 5, maxDelayMs: 20 }, env: {}, ...extra });
  clients.push(c);
  return c;
}

const ref = () => ({ registry: proxy.host, repository: 'faults/busybox', tag: '1' });
const repo = () => ({ registry: proxy.host, repository: 'faults/busybox' });

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobPath = () => `/blobs/${layer.digest}`;
const manifestPath = '/manifests/';

describe('fault injection between client and real registry', () => {
  before(async () => {
    registry = await startRegistry();
    manifestDigest = await pushLayout(await buildBusyboxLayout({ arch: 'amd64' }), registry.host, 'faults/busybox:1');
    proxy = await startFaultProxy(registry.url);
    const c = client();
    const m = await c.fetchManifest(ref());
    const doc = parseManifestDocument(m.bytes, m.mediaType);
    assert.equal(doc.kind, 'manifest');
    layer = doc.kind === 'manifest' ? doc.manifest.layers[0]! : (undefined as never);
    assert.ok(layer.size > 100_000, 'the layer is big enough to cut in the middle');
    proxy.clear();
  });
  afterEach(() => proxy.clear());
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await proxy?.stop();
    await registry?.stop();
  });

  test('429 with Retry-After is retried after the pause', async () => {
    proxy.add({ path: manifestPath, fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } }, times: 1 });
    const m = await client().fetchManifest(ref());
    assert.equal(m.digest, manifestDigest);
    assert.deepEqual(proxy.requests.map((r) => r.fault ?? 'passed'), ['status', 'passed']);
  });

  test('503 a few times, then success', async () => {
    proxy.add({ path: manifestPath, fault: { kind: 'status', status: 503 }, times: 3 });
    assert.equal((await client().resolve(ref())).digest, manifestDigest);
    assert.equal(proxy.requests.length, 4);
  });

  test('503 past the retry budget is ERR_REGISTRY_UNAVAILABLE quoting the registry error', async () => {
    const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'down for maintenance' }] });
    proxy.add({ path: manifestPath, fault: { kind: 'status', status: 503, body } });
    await assert.rejects(client({ retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 10 } }).fetchManifest(ref()), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_REGISTRY_UNAVAILABLE'), String(err));
      assert.match(err.message, /UNAVAILABLE: down for maintenance/);
      return true;
    });
    assert.equal(proxy.requests.length, 3, 'first try + 2 retries, bounded');
  });

  test('a connection reset mid-blob resumes with Range from the bytes received', async () => {
    const cut = Math.floor(layer.size / 3);
    proxy.add({ path: blobPath(), fault: { kind: 'reset', afterBytes: cut }, times: 1 });
    const bytes = await downloadBlob(client(), repo(), layer);
    assert.equal(sha256(bytes), layer.digest);
    const gets = proxy.requests.filter((r) => r.path.endsWith(blobPath()));
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.range, undefined);
    // From the bytes that reached the partial file: up to the cut (what the socket still held is lost with it).
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    assert.ok(from > 0 && from <= cut, `resumed from ${gets[1]!.range}, cut at ${cut}`);
  });

  test('a server that ignores Range on resume: the bytes already received are skipped', async () => {
    const cut = Math.floor(layer.size / 4);
    proxy.add({ path: blobPath(), fault: { kind: 'reset', afterBytes: cut }, times: 1 });
    proxy.add({ path: blobPath(), fault: { kind: 'ignore-range' }, times: 1 });
    const bytes = await downloadBlob(client(), repo(), layer);
    assert.equal(bytes.length, layer.size);
    assert.equal(sha256(bytes), layer.digest);
    assert.deepEqual(proxy.requests.map((r) => r.fault), ['reset', 'ignore-range']);
  });

  test('aborting mid-blob ends the stream with ERR_ABORTED', async () => {
    proxy.add({ path: blobPath(), fault: { kind: 'stall', afterBytes: 1000 } });
    const ac = new AbortController();
    const download = downloadBlob(client(), repo(), layer, { signal: ac.signal, onProgress: (n) => n > 0 && ac.abort() });
    await assert.rejects(download, { code: 'ERR_ABORTED' });
  });

  test('a stalled body trips the idle timeout and resumes', async () => {
    const cut = Math.floor(layer.size / 2);
    proxy.add({ path: blobPath(), fault: { kind: 'stall', afterBytes: cut }, times: 1 });
    const bytes = await downloadBlob(client({ idleTimeoutMs: 300 }), repo(), layer);
    assert.equal(sha256(bytes), layer.digest);
    // resumed where the bytes stopped: at the cut, or (a test process held up 300 ms before reading
    // what had arrived, which the idle timeout rightly counts) somewhere before it
    const from = Number(/^bytes=(\d+)-$/.exec(proxy.requests.at(-1)!.range ?? '')?.[1]);
    assert.ok(from > 0 && from <= cut, `resumed from ${from}, the stall at ${cut}`);
  });

  test('a manifest body cut off once is fetched again', async () => {
    proxy.add({ method: 'GET', path: manifestPath, fault: { kind: 'reset', afterBytes: 50 }, times: 1 });
    assert.equal((await client().fetchManifest(ref())).digest, manifestDigest);
    assert.deepEqual(proxy.requests.map((r) => r.fault ?? 'passed'), ['reset', 'passed']);
  });

  test('a body that stalls every time ends in ERR_NETWORK saying it stalled', async () => {
    proxy.add({ path: manifestPath, fault: { kind: 'stall', afterBytes: 10 } });
    await assert.rejects(client({ idleTimeoutMs: 200, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 5 } }).fetchManifest(ref()), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_NETWORK'), String(err));
      assert.match(err.message, /stalled/);
      return true;
    });
  });

  for (const chunked of [false, true]) {
    test(`a blob body longer than its descriptor is ERR_TOO_LARGE (${chunked ? 'chunked' : 'Content-Length'})`, async () => {
      proxy.add({ path: blobPath(), fault: { kind: 'extend', extra: 1000, chunked } });
      await assert.rejects(downloadBlob(client(), repo(), layer), { code: 'ERR_TOO_LARGE' });
    });
  }

  test('wrong blob bytes are ERR_DIGEST_MISMATCH', async () => {
    proxy.add({ path: blobPath(), fault: { kind: 'corrupt' } });
    await assert.rejects(downloadBlob(client(), repo(), layer), { code: 'ERR_DIGEST_MISMATCH' });
  });

  test('a manifest by digest with wrong bytes is ERR_DIGEST_MISMATCH', async () => {
    proxy.add({ path: manifestPath, fault: { kind: 'corrupt' } });
    await assert.rejects(client().fetchManifest({ ...repo(), digest: manifestDigest }), { code: 'ERR_DIGEST_MISMATCH' });
  });

  for (const chunked of [false, true]) {
    test(`a 5 MiB manifest is refused with ERR_TOO_LARGE, not truncated (${chunked ? 'chunked' : 'Content-Length'})`, async () => {
      const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
      huge.write('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"');
      proxy.add({ method: 'GET', path: manifestPath, fault: { kind: 'body', body: huge, chunked } });
      await assert.rejects(client().fetchManifest(ref()), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_TOO_LARGE'), String(err));
        assert.match(err.message, /4194304-byte limit/);
        return true;
      });
    });
  }

  test('an image config over 4 MiB is refused with ERR_TOO_LARGE before any request', async () => {
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 4 * 1024 * 1024 + 1 };
    await assert.rejects(client().fetchBlobBytes(repo(), config), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_TOO_LARGE'), String(err));
      assert.match(err.message, /4194304-byte limit/);
      return true;
    });
    assert.equal(proxy.requests.length, 0);
    // The same through a manifest a registry serves: listing its platforms needs the config.
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] }));
    proxy.add({ path: manifestPath, fault: { kind: 'body', body: manifest } });
    await assert.rejects(listPlatforms(new RegistryBlobReader(client(), ref())), { code: 'ERR_TOO_LARGE' });
    assert.ok(proxy.requests.every((r) => !r.path.includes('/blobs/')), 'the config was never requested');
  });

  test('a config whose body runs past its (small) descriptor is refused, not buffered', async () => {
    const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
    proxy.add({ path: '/blobs/', fault: { kind: 'body', body: huge, chunked: true, contentType: 'application/octet-stream' } });
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'c'.repeat(64)}`, size: 1000 };
    await assert.rejects(client({ retry: { attempts: 1 } }).fetchBlobBytes(repo(), config), (err: unknown) => {
      assert.ok(isVmimgError(err), String(err));
      assert.ok(['ERR_TOO_LARGE', 'ERR_DIGEST_MISMATCH'].includes((err as { code: string }).code), String(err));
      return true;
    });
  });

  test('a redirect to another host drops Authorization there and redacts the query in errors', async () => {
    const storage = await startFaultProxy(registry.url, { bindAddress: '127.0.0.2' });
    try {
      proxy.add({ path: blobPath(), fault: { kind: 'redirect', to: storage.url, query: '?X-Signature=s3cr3t' } });
      const c = client({ credentials: { [proxy.host]: { registryToken: 'tok-123' } } });
      // A registry token is sent up front only after a challenge; teach the client one.
      proxy.add({ path: '/v2/faults/busybox/manifests/', fault: { kind: 'status', status: 401, headers: { 'www-authenticate': 'Bearer realm="http://127.0.0.1:1/token"' } }, times: 1 });
      await c.resolve(ref());
      const bytes = await downloadBlob(c, repo(), layer);
      assert.equal(sha256(bytes), layer.digest);
      const atRegistry = proxy.requests.filter((r) => r.path.endsWith(blobPath()));
      assert.equal(atRegistry[0]!.authorization, 'Bearer tok-123', 'the registry gets the token');
      assert.ok(storage.requests.length > 0);
      assert.ok(storage.requests.every((r) => r.authorization === undefined), 'the storage host never sees it');

      storage.add({ path: blobPath(), fault: { kind: 'status', status: 404 } });
      await assert.rejects(downloadBlob(c, repo(), layer), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_NOT_FOUND'), String(err));
        assert.doesNotMatch(err.message, /s3cr3t|tok-123/);
        assert.match(err.message, /127\.0\.0\.2/);
        return true;
      });
    } finally {
      await storage.stop();
    }
  });

  test('a redirect to plain HTTP on a non-loopback host is refused before connecting', async () => {
    proxy.add({ path: blobPath(), fault: { kind: 'redirect', to: 'http://storage.example.com' } });
    await assert.rejects(downloadBlob(client(), repo(), layer), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_REGISTRY_ERROR'), String(err));
      assert.match(err.message, /redirects to http:\/\/storage\.example\.com.*plain HTTP/);
      return true;
    });
    assert.equal(proxy.requests.length, 1, 'not retried');
  });

  test('a tag whose HEAD lacks Docker-Content-Digest is resolved by GET and hashing the manifest', async () => {
    // Stripped from the GET as well: the digest must come from hashing the bytes.
    proxy.add({ path: manifestPath, fault: { kind: 'strip-headers', headers: ['docker-content-digest'] } });
    const desc = await client().resolve(ref());
    assert.equal(desc.digest, manifestDigest);
    const m = await client().fetchManifest({ registry: proxy.host, repository: 'faults/busybox', digest: manifestDigest });
    assert.equal(desc.size, m.size);
    assert.equal(desc.mediaType, m.mediaType);
    assert.deepEqual(
      proxy.requests.slice(0, 2).map((r) => [r.method, r.fault ?? 'passed']),
      [
        ['HEAD', 'strip-headers'],
        ['GET', 'strip-headers'],
      ],
    );
  });

  test('more than 10 redirects is an error', async () => {
    proxy.add({ path: manifestPath, fault: { kind: 'redirect', to: proxy.url } });
    await assert.rejects(client().fetchManifest(ref()), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_REGISTRY_ERROR'), String(err));
      assert.match(err.message, /more than 10 redirects/);
      return true;
    });
  });

  test('HTTPS to a loopback host that speaks HTTP is ERR_NETWORK with a hint', async () => {
    const c = client({ mirrors: { [proxy.host]: [`https://${registry.host}`] }, originFallback: false });
    await assert.rejects(c.fetchManifest({ ...repo(), digest: manifestDigest }), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_NETWORK'), String(err));
      assert.match(err.hint ?? '', /plain HTTP/);
      return true;
    });
  });

  test('connection refused past the retry budget is ERR_NETWORK', async () => {
    const dead = await startFaultProxy(registry.url);
    const host = dead.host;
    await dead.stop();
    await assert.rejects(
      client({ retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 5 } }).fetchManifest({ registry: host, repository: 'x/y', tag: '1' }),
      (err: unknown) => isVmimgError(err, 'ERR_NETWORK') && /connection failed/.test(err.message),
    );
  });
});
