// RegistryClient against the real docker-registry, anonymous: resolve, manifests, blobs, platforms, 404s.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { parseManifestDocument } from '../../src/manifest/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { RegistryBlobReader, listPlatforms } from '../../src/content/index.js';
import { buildBusyboxLayout, buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { downloadBlob } from '../helpers/blob-download.js';

let registry: RunningRegistry;
let client: RegistryClient;
let manifestDigest: string;
let indexDigest: string;

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('RegistryClient, anonymous, real docker-registry', () => {
  before(async () => {
    registry = await startRegistry();
    const image = await buildBusyboxLayout({ arch: 'amd64' });
    manifestDigest = await pushLayout(image, registry.host, 'test/busybox:1');
    const multi = await buildMultiArchLayout();
    indexDigest = await pushLayout(multi, registry.host, 'test/multi:1', { all: true });
    await pushLayout(multi, registry.host, 'test/multi-docker:1', { all: true, format: 'v2s2' });
    client = new RegistryClient({ retry: { baseDelayMs: 10, maxDelayMs: 50 }, env: {} });
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
  });

  test('ping reports an open registry over plain HTTP on loopback', async () => {
    const ping = await client.ping(registry.host);
    assert.equal(ping.status, 200);
    assert.equal(ping.url, `http://${registry.host}/v2/`);
    assert.deepEqual(ping.authSchemes, []);
  });

  test('resolve a tag with HEAD gives the pushed digest', async () => {
    const desc = await client.resolve({ registry: registry.host, repository: 'test/busybox', tag: '1' });
    assert.equal(desc.digest, manifestDigest);
    assert.equal(desc.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.ok(desc.size > 0);
  });

  test('fetch a manifest by tag records its digest; by digest verifies it', async () => {
    const byTag = await client.fetchManifest({ registry: registry.host, repository: 'test/busybox', tag: '1' });
    assert.equal(byTag.digest, manifestDigest);
    assert.equal(`sha256:${createHash('sha256').update(byTag.bytes).digest('hex')}`, manifestDigest);
    const byDigest = await client.fetchManifest({ registry: registry.host, repository: 'test/busybox', digest: manifestDigest });
    assert.deepEqual(byDigest.bytes, byTag.bytes);
  });

  test('fetch every blob of the image, verified, and a blob from an offset with Range', async () => {
    const m = await client.fetchManifest({ registry: registry.host, repository: 'test/busybox', tag: '1' });
    const doc = parseManifestDocument(m.bytes, m.mediaType);
    assert.equal(doc.kind, 'manifest');
    if (doc.kind !== 'manifest') return;
    const repo = { registry: registry.host, repository: 'test/busybox' };
    for (const desc of [doc.manifest.config, ...doc.manifest.layers]) {
      const bytes = await downloadBlob(client, repo, desc);
      assert.equal(bytes.length, desc.size);
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, desc.digest);
    }
    const layer = doc.manifest.layers[0]!;
    const whole = await downloadBlob(client, repo, layer);
    const opened = await client.openBlob(repo, layer, { offset: 100 });
    assert.equal(opened.offset, 100, 'the registry honours Range with 206');
    assert.deepEqual(await collect(opened.stream), whole.subarray(100));
  });

  test('listPlatforms of an index and of a single manifest', async () => {
    const multi = await listPlatforms(new RegistryBlobReader(client, { registry: registry.host, repository: 'test/multi', tag: '1' }));
    assert.deepEqual(
      multi.map((e) => e.platform),
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ],
    );
    const resolved = await client.resolve({ registry: registry.host, repository: 'test/multi', tag: '1' });
    assert.equal(resolved.digest, indexDigest);
    const single = await listPlatforms(new RegistryBlobReader(client, { registry: registry.host, repository: 'test/busybox', tag: '1' }));
    assert.deepEqual(single.map((e) => e.platform), [{ os: 'linux', architecture: 'amd64' }]);
    assert.equal(single[0]!.descriptor.digest, manifestDigest);
  });

  test('a Docker manifest list is accepted and resolved too', async () => {
    const ref = { registry: registry.host, repository: 'test/multi-docker', tag: '1' };
    const desc = await client.resolve(ref);
    assert.equal(desc.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
    const entries = await listPlatforms(new RegistryBlobReader(client, ref));
    assert.deepEqual(entries.map((e) => e.platform?.architecture), ['amd64', 'arm64']);
    assert.ok(entries.every((e) => e.descriptor.mediaType === 'application/vnd.docker.distribution.manifest.v2+json'));
  });

  test('missing tag, repository and blob are ERR_NOT_FOUND naming what was asked for', async () => {
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['tag', () => client.resolve({ registry: registry.host, repository: 'test/busybox', tag: 'nope' }), /test\/busybox:nope/],
      ['repo', () => client.fetchManifest({ registry: registry.host, repository: 'no/such', tag: '1' }), /no\/such:1.*MANIFEST_UNKNOWN|no\/such:1.*NAME_UNKNOWN/],
      [
        'blob',
        () => client.openBlob({ registry: registry.host, repository: 'test/busybox' }, { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 }),
        /blob sha256:0{64}.*BLOB_UNKNOWN/,
      ],
    ];
    for (const [name, call, message] of cases) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_NOT_FOUND'), `${name}: ${String(err)}`);
        assert.match((err as Error).message, message, name);
        return true;
      });
    }
  });

  test('a manifest asked for by an unknown digest is ERR_NOT_FOUND', async () => {
    const wrong = `sha256:${'1'.repeat(64)}`;
    await assert.rejects(client.fetchManifest({ registry: registry.host, repository: 'test/busybox', digest: wrong }), { code: 'ERR_NOT_FOUND' });
  });

  test('an aborted signal stops a request with ERR_ABORTED', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      client.fetchManifest({ registry: registry.host, repository: 'test/busybox', tag: '1' }, { signal: ac.signal }),
      { code: 'ERR_ABORTED' },
    );
  });
});
