// `pull --lazy` edges found by session 13's breaker, against the real registry (docker-registry on
// loopback) through the fault proxy, with images written by python's tarfile and GNU tar and pushed by
// skopeo: a layer holding a sparse file is pulled whole (lazy reads place tar bytes by offset, which a
// sparse file's stored segments do not fit); an index whose entries name no platform starts no
// referrers lookup for the manifests the pull does not choose; a pull that fails while its early
// referrers lookup hangs fails at once instead of waiting for that request to time out.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pull } from '../../src/image/pull.js';
import type { Image } from '../../src/image/image-dir.js';
import { openLazyImage } from '../../src/lazy/open-image.js';
import { publishIndex } from '../../src/lazy/publish.js';
import type { Platform } from '../../src/platform/types.js';
import { parseReference } from '../../src/reference/index.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { writeSparseFile } from '../helpers/layers.js';
import { OCI_MANIFEST, writeIndexIntoLayout } from '../helpers/oci-index.js';
import { pyBuild, type PyReport } from '../helpers/pyimage.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
let registry: RunningRegistry;
let proxy: FaultProxy;
let src: string;
let report: PyReport;

/** Pulls `ref` whole with checkpoints into a cache of its own and publishes its lazy index (what `pull --index-build` + `index push` do). */
async function publish(ref: string): Promise<Image> {
  const cacheRoot = await tmpDir('vmimg-edges-seed-');
  const image = await pull(ref, { cacheDir: cacheRoot, checkpoints: true, platform: AMD64 });
  const layers = image.config.layerDetails.map((l, i) => ({ digest: l.digest!, diffId: l.diffId, indexPath: image.layers[i]!.indexPath }));
  await publishIndex(parseReference(ref), image.config.source.manifestDigest!, layers, { cacheRoot });
  return image;
}

before(async () => {
  requireTools(['skopeo', 'tar']);
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  const work = await tmpDir('vmimg-edges-');
  src = join(work, 'src');
  await run('mkdir', ['-p', src]);
  writeSparseFile(join(src, 'sparse.img'));
  writeFileSync(join(src, 'after'), 'after the sparse file\n');
  writeFileSync(join(src, 'noise'), randomBytes(64 << 10)); // keeps the layer inside the 1000× expansion limit
  const sparseTar = join(work, 'sparse.tar');
  await run('tar', ['-c', '--sparse', '--format=gnu', '-f', sparseTar, '-C', src, 'sparse.img', 'after', 'noise']);
  const layout = join(work, 'layout');
  report = await pyBuild({
    layers: { base: [{ name: 'etc', type: 'dir' }, { name: 'etc/os-release', data: 'ID=edge\n' }] },
    layerFiles: { sparse: sparseTar },
    layout: { dir: layout, images: [{ layers: ['base', 'sparse'], tag: 'sparse', arch: 'amd64' }, { layers: ['base'], tag: 'arm', arch: 'arm64' }] },
  });
  // an index whose entries say no platform: the walk reads each manifest's config to learn it
  const entry = (i: number) => {
    const digest = report.layout![i]!.manifestDigest!;
    return { mediaType: OCI_MANIFEST, digest, size: statSync(join(layout, 'blobs', 'sha256', digest.slice(7))).size };
  };
  writeIndexIntoLayout(layout, 'multi', [entry(1), entry(0)]);
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:sparse`, `docker://${registry.host}/edge/sparse:1`]);
  await run('skopeo', ['copy', '-q', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${registry.host}/edge/multi:1`]);
  await publish(`${registry.host}/edge/sparse:1`);
  await publish(`${registry.host}/edge/multi:1`);
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

describe('pull --lazy edges', () => {
  test('a layer holding a sparse file is pulled whole, with a warning; its bytes are the file\'s', async () => {
    const warnings: string[] = [];
    const image = await pull(`${proxy.host}/edge/sparse:1`, { cacheDir: await tmpDir('vmimg-edges-sparse-'), lazy: true, platform: AMD64, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /layer 2 .* holds sparse files, which are not read lazily: pulling it whole/);
    assert.deepEqual(image.config.layerDetails.map((l) => l.lazy === true), [true, false]);
    const lazy = await openLazyImage(image);
    const fs = await ContainerFS.open(lazy);
    try {
      for (const name of ['sparse.img', 'after', 'noise', 'etc/os-release']) {
        const ino = fs.resolvePath(`/${name}`, 'open');
        const want = name === 'etc/os-release' ? Buffer.from('ID=edge\n') : readFileSync(join(src, name));
        assert.ok((await fs.read(ino, 0, fs.getattr(ino).size)).equals(want), name);
      }
    } finally {
      await fs.close();
      await lazy.close();
    }
  });

  test('an index without platforms: the referrers are looked up for the chosen manifest only', async () => {
    const from = proxy.requests.length;
    const image = await pull(`${proxy.host}/edge/multi:1`, { cacheDir: await tmpDir('vmimg-edges-multi-'), lazy: true, platform: AMD64 });
    const chosen = report.layout![0]!.manifestDigest!;
    const other = report.layout![1]!.manifestDigest!;
    assert.equal(image.config.source.manifestDigest, chosen);
    const lookups = proxy.requests.slice(from).filter((r) => r.path.includes('/referrers/') || r.path.includes('/manifests/sha256-'));
    assert.ok(lookups.some((r) => r.path.includes(chosen.slice(7))), 'the chosen manifest\'s referrers were looked up');
    assert.deepEqual(lookups.filter((r) => r.path.includes(other.slice(7))).map((r) => r.path), [], 'none for the other manifest');
  });

  test('a pull failing while its early referrers lookup hangs fails at once, not when that request times out', async () => {
    const config = report.layout![0]!.configDigest;
    proxy.add({ method: 'GET', path: '/referrers/', times: 1, fault: { kind: 'slow-headers', everyMs: 1000 } });
    proxy.add({ method: 'GET', path: `/blobs/${config}`, times: 1, fault: { kind: 'status', status: 404, body: '{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}' } });
    const t = Date.now();
    try {
      await assert.rejects(pull(`${proxy.host}/edge/sparse:1`, { cacheDir: await tmpDir('vmimg-edges-fail-'), lazy: true, platform: AMD64 }), { code: 'ERR_NOT_FOUND' });
      // a hang bound, not a timing: the lookup's request would hold the client's close for its 30 s header timeout
      assert.ok(Date.now() - t < 15_000, `the pull took ${Date.now() - t} ms to fail`);
    } finally {
      proxy.clear();
    }
  });
});
