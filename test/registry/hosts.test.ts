// Hosts: schemes, insecure marking, mirrors (pure), then mirrors in front of a real registry:
// a failing mirror moves on, tags resolve only on trusted hosts, the origin is the fallback.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { parseManifestDocument } from '../../src/manifest/index.js';
import { RegistryClient, registryEndpoints, type HostOptions, type RegistryClientOptions } from '../../src/registry/index.js';
import { plainHttpPolicy } from '../../src/registry/hosts.js';
import { checkRedirectTarget } from '../../src/registry/transport.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { downloadBlob } from '../helpers/blob-download.js';

const endpointCases: [string, string, HostOptions, [string, boolean, boolean][]][] = [
  ['Docker Hub', 'docker.io', {}, [['https://registry-1.docker.io', true, false]]],
  ['plain host', 'ghcr.io', {}, [['https://ghcr.io', true, false]]],
  ['loopback IPv4 with port', '127.0.0.1:5000', {}, [['http://127.0.0.1:5000', true, false]]],
  ['127/8', '127.1.2.3:80', {}, [['http://127.1.2.3:80', true, false]]],
  ['localhost', 'localhost:5000', {}, [['http://localhost:5000', true, false]]],
  ['IPv6 loopback', '[::1]:5000', {}, [['http://[::1]:5000', true, false]]],
  ['not loopback', '10.0.0.1:5000', {}, [['https://10.0.0.1:5000', true, false]]],
  ['insecure by option', 'reg.lan:5000', { insecureRegistries: ['reg.lan:5000'] }, [['http://reg.lan:5000', true, false]]],
  ['insecure by host without port', 'reg.lan:5000', { insecureRegistries: ['reg.lan'] }, [['http://reg.lan:5000', true, false]]],
  ['insecure by env', 'reg.lan', { env: { VMIMG_INSECURE_REGISTRIES: 'other, reg.lan' } }, [['http://reg.lan', true, false]]],
  [
    'mirrors first, pull only, then the origin',
    'docker.io',
    { mirrors: { 'docker.io': ['mirror.example', { url: 'http://127.0.0.1:5001', resolve: true }] } },
    [
      ['https://mirror.example', false, true],
      ['http://127.0.0.1:5001', true, true],
      ['https://registry-1.docker.io', true, false],
    ],
  ],
  ['mirrors from VMIMG_MIRRORS', 'docker.io', { env: { VMIMG_MIRRORS: '{"docker.io": ["http://localhost:5002"]}' } }, [
    ['http://localhost:5002', false, true],
    ['https://registry-1.docker.io', true, false],
  ]],
  ['origin fallback off', 'quay.io', { mirrors: { 'quay.io': ['https://m.example'] }, originFallback: false }, [['https://m.example', false, true]]],
];

for (const [name, registry, options, expected] of endpointCases) {
  test(`registryEndpoints: ${name}`, () => {
    const got = registryEndpoints(registry, { env: {}, ...options }).map((e) => [e.url, e.capabilities.resolve, e.mirror]);
    assert.deepEqual(got, expected);
  });
}

test('registryEndpoints: plain HTTP to a non-loopback mirror needs it marked insecure', () => {
  assert.throws(() => registryEndpoints('docker.io', { env: {}, mirrors: { 'docker.io': ['http://mirror.lan'] } }), (err: unknown) => {
    assert.ok(isVmimgError(err, 'ERR_INVALID_ARGUMENT'));
    assert.match(err.hint ?? '', /--insecure-registry mirror\.lan/);
    return true;
  });
  const ok = registryEndpoints('docker.io', { env: {}, mirrors: { 'docker.io': ['http://mirror.lan'] }, insecureRegistries: ['mirror.lan'] });
  assert.equal(ok[0]!.url, 'http://mirror.lan');
});

test('registryEndpoints: bad VMIMG_MIRRORS is ERR_INVALID_ARGUMENT', () => {
  assert.throws(() => registryEndpoints('docker.io', { env: { VMIMG_MIRRORS: '[not json' } }), { code: 'ERR_INVALID_ARGUMENT' });
});

const redirectCases: [string, string, HostOptions, boolean][] = [
  ['https anywhere', 'https://storage.example.com/blob', {}, true],
  ['plain HTTP to a public host', 'http://storage.example.com/blob', {}, false],
  ['plain HTTP to a private address', 'http://10.0.0.1:9000/blob', {}, false],
  ['plain HTTP to loopback', 'http://127.0.0.2:9000/blob', {}, true],
  ['plain HTTP to localhost', 'http://localhost/blob', {}, true],
  ['plain HTTP to a host marked insecure', 'http://reg.lan:5000/blob', { insecureRegistries: ['reg.lan:5000'] }, true],
  ['plain HTTP to a host marked insecure without port', 'http://reg.lan:9000/blob', { insecureRegistries: ['reg.lan'] }, true],
  ['plain HTTP to a host marked insecure in the env', 'http://reg.lan:5000/blob', { env: { VMIMG_INSECURE_REGISTRIES: 'reg.lan:5000' } }, true],
  ['plain HTTP to another host than the insecure one', 'http://other.lan:5000/blob', { insecureRegistries: ['reg.lan:5000'] }, false],
  ['a non-http scheme', 'file:///etc/passwd', {}, false],
];
for (const [name, to, options, allowed] of redirectCases) {
  test(`checkRedirectTarget: ${name} is ${allowed ? 'followed' : 'refused'}`, () => {
    const check = () => checkRedirectTarget('https://reg.example.com/v2/x/blobs/sha256:1', new URL(to), plainHttpPolicy({ env: {}, ...options }));
    if (allowed) check();
    else assert.throws(check, (err: Error) => isVmimgError(err, 'ERR_REGISTRY_ERROR') && /redirects to/.test(err.message));
  });
}

describe('mirrors in front of a real registry', () => {
  let registry: RunningRegistry;
  let origin: FaultProxy;
  let m1: FaultProxy;
  let m2: FaultProxy;
  let digest: string;
  const clients: RegistryClient[] = [];
  const client = (extra: Partial<RegistryClientOptions> = {}) => {
    const c = new RegistryClient({
      retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 10 },
      idleTimeoutMs: 500,
      env: {},
      mirrors: { [origin.host]: [m1.url, m2.url] },
      ...extra,
    });
    clients.push(c);
    return c;
  };
  const ref = () => ({ registry: origin.host, repository: 'mirrored/busybox', tag: '1' });
  const manifestRequests = (p: FaultProxy) => p.requests.filter((r) => r.path.includes('/manifests/'));

  before(async () => {
    registry = await startRegistry();
    digest = await pushLayout(await buildBusyboxLayout({ arch: 'amd64' }), registry.host, 'mirrored/busybox:1');
    [origin, m1, m2] = await Promise.all([startFaultProxy(registry.url), startFaultProxy(registry.url), startFaultProxy(registry.url)]);
  });
  afterEach(() => [origin, m1, m2].forEach((p) => p.clear()));
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([origin, m1, m2].map((p) => p?.stop()));
    await registry?.stop();
  });

  test('tags resolve on the origin only; content by digest comes from the first working mirror', async () => {
    m1.add({ path: '/v2/', fault: { kind: 'status', status: 503 } });
    const c = client();
    const desc = await c.resolve(ref());
    assert.equal(desc.digest, digest);
    assert.equal(manifestRequests(m1).length + manifestRequests(m2).length, 0, 'mirrors never asked for a tag');
    assert.equal(manifestRequests(origin).length, 1);
    origin.clear();
    const m = await c.fetchManifest({ ...ref(), tag: undefined, digest });
    const doc = parseManifestDocument(m.bytes, m.mediaType);
    assert.equal(doc.kind, 'manifest');
    if (doc.kind !== 'manifest') return;
    await downloadBlob(c, ref(), doc.manifest.layers[0]!);
    assert.equal(manifestRequests(m1).length, 1, 'the 503 mirror is asked once, not retried');
    assert.equal(manifestRequests(m2).length, 1);
    assert.ok(m2.requests.some((r) => r.path.includes('/blobs/')));
    assert.equal(origin.requests.length, 0, 'the origin is not needed');
  });

  test('a mirror that stalls or lacks the content moves on to the origin', async () => {
    m1.add({ path: '/manifests/', fault: { kind: 'stall', afterBytes: 0 } });
    m2.add({ path: '/manifests/', fault: { kind: 'status', status: 404 } });
    const m = await client().fetchManifest({ ...ref(), tag: undefined, digest });
    assert.equal(m.digest, digest);
    assert.deepEqual([m1, m2, origin].map((p) => manifestRequests(p).length), [1, 1, 1]);
  });

  test('a mirror trusted to resolve (VMIMG_MIRRORS) answers tags itself', async () => {
    const env = { VMIMG_MIRRORS: JSON.stringify({ [origin.host]: [{ url: m2.url, resolve: true }] }) };
    const c = client({ env, mirrors: {} });
    assert.equal((await c.resolve(ref())).digest, digest);
    assert.equal(manifestRequests(m2).length, 1);
    assert.equal(origin.requests.length, 0);
  });

  test('without origin fallback and no trusted mirror, tags cannot be resolved', async () => {
    await assert.rejects(client({ originFallback: false }).resolve(ref()), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_INVALID_ARGUMENT'), String(err));
      assert.match(err.message, /resolve tags/);
      return true;
    });
  });

  test('without origin fallback, the last mirror error is reported', async () => {
    m1.add({ path: '/manifests/', fault: { kind: 'status', status: 503 } });
    m2.add({ path: '/manifests/', fault: { kind: 'status', status: 404 } });
    await assert.rejects(client({ originFallback: false }).fetchManifest({ ...ref(), tag: undefined, digest }), { code: 'ERR_NOT_FOUND' });
    assert.equal(origin.requests.length, 0);
  });
});
