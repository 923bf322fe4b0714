// One retry policy with one budget (issue 10 items 4, 5; attacks N12, N13, N20, N21): through the
// loopback fault proxy in front of the real registry. Retries never nest, each wait is announced, a
// Retry-After the budget cannot afford fails at once, and a trickling body is cut and resumed.
// Thresholds are small so nothing waits long; bounds on time are generous.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { parseManifestDocument } from '../../src/manifest/index.js';
import type { Descriptor } from '../../src/manifest/types.js';
import { RegistryClient, type NetworkNotice, type RegistryClientOptions } from '../../src/registry/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { downloadBlob } from '../helpers/blob-download.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let layer: Descriptor;
const clients: RegistryClient[] = [];

function client(extra: Partial<RegistryClientOptions> = {}): RegistryClient {
  const c = new RegistryClient({ retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 }, env: {}, ...extra });
  clients.push(c);
  return c;
}

const ref = () => ({ registry: proxy.host, repository: 'budget/busybox', tag: '1' });
const repo = () => ({ registry: proxy.host, repository: 'budget/busybox' });
const blobPath = () => `/blobs/${layer.digest}`;
const blobGets = () => proxy.requests.filter((r) => r.path.endsWith(blobPath()));
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('one retry budget, visible waits, a minimum throughput', () => {
  before(async () => {
    registry = await startRegistry();
    await pushLayout(await buildBusyboxLayout({ arch: 'amd64' }), registry.host, 'budget/busybox:1');
    proxy = await startFaultProxy(registry.url);
    const m = await client().fetchManifest(ref());
    const doc = parseManifestDocument(m.bytes, m.mediaType);
    layer = doc.kind === 'manifest' ? doc.manifest.layers[0]! : (undefined as never);
    assert.ok(layer.size > 200_000, 'the layer is big enough to trickle');
  });
  afterEach(() => proxy.clear());
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await proxy?.stop();
    await registry?.stop();
  });

  for (const [what, path, call] of [
    ['a layer blob (N13)', () => blobPath(), () => downloadBlob(client(), repo(), layer)],
    ['a manifest (N12)', () => '/manifests/', () => client().fetchManifest(ref())],
  ] as const) {
    test(`429 with Retry-After: 3600 on ${what} fails at once, saying the time asked for`, async () => {
      proxy.add({ path: path(), fault: { kind: 'status', status: 429, headers: { 'retry-after': '3600' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}' } });
      const started = Date.now();
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_REGISTRY_UNAVAILABLE'), String(err));
        assert.match(err.message, /HTTP 429 from 127\.0\.0\.1:\d+ with Retry-After 3600 s \(1 h\).*more than the 5 min left of the retry budget/);
        assert.match(err.hint ?? '', /retryBudgetSeconds/);
        return true;
      });
      assert.equal(proxy.requests.filter((r) => r.fault === 'status').length, 1, 'asked once, not 30 times');
      assert.ok(Date.now() - started < 20_000);
    });
  }

  test('each wait is announced before it starts, with the status and host', async () => {
    proxy.add({ path: blobPath(), fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } }, times: 1 });
    proxy.add({ path: '/manifests/', fault: { kind: 'status', status: 503 }, times: 1 });
    const notices: NetworkNotice[] = [];
    const c = client({ onNotice: (n) => notices.push(n) });
    await c.fetchManifest(ref());
    assert.equal(sha256(await downloadBlob(c, repo(), layer, { onNotice: (n) => notices.push(n) })), layer.digest);
    assert.deepEqual(
      notices.map((n) => n.kind),
      ['retry', 'retry'],
    );
    assert.match(notices[0]!.message, /^retrying in [\d.]+ s: HTTP 503 from 127\.0\.0\.1:\d+$/);
    assert.match(notices[0]!.what, /manifest .*budget\/busybox:1/);
    assert.match(notices[1]!.message, /^retrying in 1 s: HTTP 429 from 127\.0\.0\.1:\d+$/);
    assert.match(notices[1]!.what, new RegExp(layer.digest.slice(0, 19)));
  });

  test('retries do not nest: 503 on a blob is asked `attempts` times in all', async () => {
    proxy.add({ path: blobPath(), fault: { kind: 'status', status: 503 } });
    await assert.rejects(downloadBlob(client({ retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 5 } }), repo(), layer), (err: unknown) => {
      assert.ok(isVmimgError(err, 'ERR_REGISTRY_UNAVAILABLE'), String(err));
      assert.match(err.message, /gave up after 3 attempts/);
      return true;
    });
    assert.equal(blobGets().length, 3);
  });

  test('a budget spent by waits ends the operation before the attempts do', async () => {
    proxy.add({ path: '/manifests/', fault: { kind: 'status', status: 503 } });
    const c = client({ retry: { attempts: 100, baseDelayMs: 100, maxDelayMs: 100, budgetMs: 400 } });
    await assert.rejects(c.fetchManifest(ref()), (err: unknown) => isVmimgError(err, 'ERR_REGISTRY_UNAVAILABLE') && /retry budget is spent/.test(err.message));
    assert.ok(proxy.requests.length < 20, `${proxy.requests.length} requests`);
  });

  test('headers sent 1 byte at a time (N21): each attempt ends at the idle timeout, attempts bounded', async () => {
    proxy.add({ path: blobPath(), fault: { kind: 'slow-headers', everyMs: 50 } });
    const notices: NetworkNotice[] = [];
    const c = client({ idleTimeoutMs: 400, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 5 }, throughput: { stallNoticeMs: 100 }, onNotice: (n) => notices.push(n) });
    await assert.rejects(downloadBlob(c, repo(), layer, { onNotice: (n) => notices.push(n) }), (err: unknown) => isVmimgError(err, 'ERR_NETWORK') && /stalled/.test(err.message));
    assert.equal(blobGets().length, 2);
    assert.match(notices.find((n) => n.kind === 'stall')?.message ?? '', /^no answer from 127\.0\.0\.1:\d+ for 0\.1 s$/);
    assert.match(notices.find((n) => n.kind === 'retry')?.message ?? '', /^retrying in [\d.]+ s: no headers in time from 127\.0\.0\.1:\d+$/);
  });

  test('a body trickling at 20 B/s (N20) is cut by the throughput rule and resumed from the verified partial', async () => {
    const fast = 100_000;
    proxy.add({ path: blobPath(), fault: { kind: 'trickle', afterBytes: fast, bytes: 1, everyMs: 50 }, times: 1 });
    const notices: NetworkNotice[] = [];
    const c = client({ throughput: { minBytesPerSecond: 2048, windowMs: 600, stallNoticeMs: 5000 } });
    const started = Date.now();
    const bytes = await downloadBlob(c, repo(), layer, { onNotice: (n) => notices.push(n) });
    assert.equal(sha256(bytes), layer.digest);
    assert.ok(Date.now() - started < 30_000);
    const gets = blobGets();
    assert.equal(gets.length, 2);
    const from = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    assert.ok(from > 0 && from <= fast + 100, `resumed from ${gets[1]!.range}`);
    const retry = notices.find((n) => n.kind === 'retry');
    assert.match(retry?.message ?? '', /^retrying in [\d.]+ s: too slow \([\d.]+ B\/s\) from 127\.0\.0\.1:\d+$/);
  });

  test('a body that stops is announced as stalled, then cut and resumed', async () => {
    const cut = Math.floor(layer.size / 2);
    proxy.add({ path: blobPath(), fault: { kind: 'stall', afterBytes: cut }, times: 1 });
    const notices: NetworkNotice[] = [];
    const c = client({ throughput: { minBytesPerSecond: 1024, windowMs: 800, stallNoticeMs: 150 } });
    assert.equal(sha256(await downloadBlob(c, repo(), layer, { onNotice: (n) => notices.push(n) })), layer.digest);
    const stall = notices.find((n) => n.kind === 'stall');
    assert.match(stall?.message ?? '', /^no data from 127\.0\.0\.1:\d+ for [\d.]+ s$/);
    assert.equal(blobGets().length, 2);
  });

  test('a consumer that holds the stream back is not blamed on the network', async () => {
    // The store awaits onData: pauses of the consumer far longer than the rule's window must not count.
    // (the stall notice is 600 ms, not less: a test process held up by the suite's load that long would
    // read the socket late and be right to call it a stall)
    const c = client({ throughput: { minBytesPerSecond: 100_000, windowMs: 1000, stallNoticeMs: 600 } });
    const notices: NetworkNotice[] = [];
    let chunks = 0;
    const bytes = await downloadBlob(c, repo(), layer, {
      onNotice: (n) => notices.push(n),
      onData: () => (++chunks === 2 || chunks === 6 ? new Promise((r) => setTimeout(r, 1500)) : undefined),
    });
    assert.equal(sha256(bytes), layer.digest);
    assert.equal(blobGets().length, 1, 'one request: never cut');
    assert.deepEqual(notices, []);
  });
});
