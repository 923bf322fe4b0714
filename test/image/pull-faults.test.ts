/**
 * pull() through the fault proxy, where the flattener reads bytes still being verified (issue 10 item 8;
 * attacks N04, N09): one outcome every time. A corrupt blob is ERR_DIGEST_MISMATCH whatever the flattener
 * hit first; a corrupt prefix cut by a reset is recovered by the store, and the layer converts from the
 * verified blob. Retry waits reach the progress listener as events naming the layer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pull, isVmimgError, parsePlatform, type ProgressEvent } from '../../src/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
const RUNS = 5;
const options = { platform: parsePlatform('amd64'), retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 } };
let blobGet: RegExp; // the layer's blob (not the config's)

before(async () => {
  registry = await startRegistry();
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'faults' });
  await pushLayout(image.ref, registry.host, 'busybox:faults');
  const manifest = JSON.parse(await readFile(join(image.layout, 'blobs', 'sha256', image.manifestDigest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
  assert.equal(manifest.layers.length, 1);
  blobGet = new RegExp(`/blobs/${manifest.layers[0]!.digest}$`);
  proxy = await startFaultProxy(registry.url);
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

const list = (dir: string) => readdir(dir).catch(() => [] as string[]);

describe('pull: the store\'s verdict wins over the flattener\'s', () => {
  it(`a blob with one flipped byte (N04) is ERR_DIGEST_MISMATCH in ${RUNS} of ${RUNS} runs, nothing cached`, async () => {
    for (let run = 0; run < RUNS; run++) {
      const cacheDir = await tmpDir('vmimg-n04-');
      proxy.clear();
      proxy.add({ method: 'GET', path: blobGet, fault: { kind: 'corrupt' } });
      await assert.rejects(pull(`${proxy.host}/busybox:faults`, { ...options, cacheDir }), (err: unknown) => {
        assert.ok(isVmimgError(err, 'ERR_DIGEST_MISMATCH'), `run ${run + 1}: ${String(err)}`);
        return true;
      });
      assert.deepEqual(await list(join(cacheDir, 'layers', 'sha256')), [], `run ${run + 1}: no layer`);
      assert.deepEqual(await list(join(cacheDir, 'images')), []);
    }
  });

  it(`a corrupt prefix cut by a reset (N09) is recovered by the store in ${RUNS} of ${RUNS} runs`, async () => {
    for (let run = 0; run < RUNS; run++) {
      const cacheDir = await tmpDir('vmimg-n09-');
      proxy.clear();
      proxy.add({ method: 'GET', path: blobGet, fault: { kind: 'corrupt-then-reset', at: 100, afterBytes: 200_000 }, times: 1 });
      const image = await pull(`${proxy.host}/busybox:faults`, { ...options, cacheDir });
      assert.equal(image.config.layers.length, 1, `run ${run + 1}`);
      const gets = proxy.requests.filter((r) => blobGet.test(r.path) && r.method === 'GET');
      assert.ok(gets.length >= 3, `run ${run + 1}: resumed, then refetched from 0 (${gets.map((g) => g.range ?? 'all').join(', ')})`);
      assert.equal(gets.at(-1)!.range, undefined, 'the last fetch starts over from byte 0');
    }
  });

  it('a retry wait reaches the listener as an event naming the layer', async () => {
    const cacheDir = await tmpDir('vmimg-retry-event-');
    proxy.clear();
    proxy.add({ method: 'GET', path: blobGet, fault: { kind: 'status', status: 429, headers: { 'retry-after': '1' } }, times: 1 });
    const events: ProgressEvent[] = [];
    await pull(`${proxy.host}/busybox:faults`, { ...options, cacheDir, onProgress: (e) => events.push(e) });
    const retry = events.find((e) => e.type === 'retry');
    assert.ok(retry !== undefined && retry.type === 'retry', JSON.stringify(events.filter((e) => e.type !== 'layer' && e.type !== 'image')));
    assert.equal(retry.layer, 0);
    assert.equal(retry.count, 1);
    assert.equal(retry.delaySeconds, 1);
    assert.match(retry.message, /^retrying in 1 s: HTTP 429 from 127\.0\.0\.1:\d+$/);
  });
});
