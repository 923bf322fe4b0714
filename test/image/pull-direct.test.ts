/**
 * A layer blob of DIRECT_MIN_BYTES or more is downloaded by the direct GET (src/registry/direct-get.ts,
 * src/content/registry.ts `openRange`), not undici: the store's resumable fetch must behave the same
 * through it. Through the fault proxy: a reset mid-body resumes with a Range request, a corrupt prefix
 * cut by a reset is recovered, a server that ignores Range is realigned; every time the file's bytes
 * come out as written and the flattened layer matches the blob (diff_id checked by the pull).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pull, parsePlatform } from '../../src/index.js';
import { DIRECT_MIN_BYTES } from '../../src/registry/direct-get.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { buildBusyboxLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy, type Fault } from '../helpers/fault-proxy.js';
import { tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
let blobGet: RegExp;
let blobSize: number;
const data = randomBytes(DIRECT_MIN_BYTES + (2 << 20)); // incompressible: the gzip blob is as big
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const options = { platform: parsePlatform('amd64'), retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 } };

before(async () => {
  registry = await startRegistry();
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'direct', extraLayers: [{ populate: (dir) => writeFile(join(dir, 'big.bin'), data) }] });
  await pushLayout(image.ref, registry.host, 'busybox:direct');
  const manifest = JSON.parse(await readFile(join(image.layout, 'blobs', 'sha256', image.manifestDigest.slice(7)), 'utf8')) as { layers: { digest: string; size: number }[] };
  const big = manifest.layers.at(-1)!;
  assert.ok(big.size >= DIRECT_MIN_BYTES, `the layer blob (${big.size} bytes) is read by the direct GET`);
  blobGet = new RegExp(`/blobs/${big.digest}$`);
  blobSize = big.size;
  proxy = await startFaultProxy(registry.url);
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

/** Pulls through the proxy with `fault` on the big blob's first GET; returns its GETs' Range headers. */
async function pullWith(fault: Fault | undefined): Promise<(string | undefined)[]> {
  const cacheDir = await tmpDir('vmimg-direct-');
  proxy.clear();
  if (fault) proxy.add({ method: 'GET', path: blobGet, fault, times: 1 });
  const image = await pull(`${proxy.host}/busybox:direct`, { ...options, cacheDir });
  const fs = await ContainerFS.open(image.layers);
  try {
    assert.equal(sha(await fs.readFile('/big.bin')), sha(data), 'the file as written');
  } finally {
    await fs.close();
  }
  return proxy.requests.filter((r) => blobGet.test(r.path) && r.method === 'GET').map((r) => r.range);
}

describe('pull: a large blob through the direct GET', () => {
  it('arrives whole with no fault, in one GET', async () => {
    assert.deepEqual(await pullWith(undefined), [undefined]);
  });

  it('a reset mid-body resumes with a Range request from where the bytes stopped', async () => {
    const ranges = await pullWith({ kind: 'reset', afterBytes: 3 << 20 });
    assert.equal(ranges.length, 2, ranges.join(', '));
    const from = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
    assert.ok(from > 0 && from <= 3 << 20, `resumed at ${ranges[1]}`);
  });

  it('a corrupt prefix cut by a reset is recovered: the store starts over from byte 0', async () => {
    const ranges = await pullWith({ kind: 'corrupt-then-reset', at: 1000, afterBytes: 2 << 20 });
    assert.ok(ranges.length >= 3, ranges.join(', '));
    assert.equal(ranges.at(-1), undefined, 'the last GET starts over');
  });

  it('a server that ignores Range after a reset sends it all again, and the store realigns', async () => {
    proxy.clear();
    const cacheDir = await tmpDir('vmimg-direct-');
    proxy.add({ method: 'GET', path: blobGet, fault: { kind: 'reset', afterBytes: 1 << 20 }, times: 1 });
    proxy.add({ method: 'GET', path: blobGet, fault: { kind: 'ignore-range' }, times: 1 });
    const image = await pull(`${proxy.host}/busybox:direct`, { ...options, cacheDir });
    const fs = await ContainerFS.open(image.layers);
    try {
      assert.equal(sha(await fs.readFile('/big.bin')), sha(data));
    } finally {
      await fs.close();
    }
    assert.ok(blobSize > 0);
  });
});
