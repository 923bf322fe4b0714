/**
 * `vmimg serve --prepare`: an image pulled through (skopeo, or only its manifest by curl) is flattened
 * into serve's cache under the tag's name, so `vmimg pull` on that cache converts nothing and fetches no
 * blob; its layer indexes (`.idx` per layer, `.zran` for the 10+ MiB gzip layer) are answered on the
 * referrers endpoint as vmimg's lazy-index artifact, fetched through serve by digest, and the artifact
 * keeps its digest across a restart. Upstream: Debian's docker-registry, its access log counting.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pull, type ProgressEvent } from '../../src/index.js';
import { openLazyImage } from '../../src/lazy/open-image.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { startServe, type RunningServe } from '../../src/serve/index.js';
import type { AccessRecord, PrepareRecord } from '../../src/serve/server.js';
import { buildBusyboxLayout, buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { curl } from '../helpers/curl.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { expectExit } from '../cli/run.js';

const ARTIFACT_TYPE = 'application/vnd.vmimg.lazy-index.v1'; // docs/FORMAT.md
let registry: RunningRegistry;
let serve: RunningServe;
let cacheDir: string;
let big: { manifest: string; config: string; layers: { digest: string; size: number }[]; diffIds: string[] };
const prepared: PrepareRecord[] = [];
const access: AccessRecord[] = [];

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobGets = () => registry.accessLog().filter((l) => l.method === 'GET' && l.path.includes('/blobs/'));
type Desc = { digest: string; size: number; mediaType: string; artifactType?: string; annotations?: Record<string, string> };

before(async () => {
  registry = await startRegistry({ accessLog: true });
  const multi = await buildMultiArchLayout('serve-prepare');
  await pushLayout(multi.ref, registry.host, 'lib/multi:1', { all: true });
  // random bytes do not compress: a gzip layer over 10 MiB, which gets gzip checkpoints (.zran)
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-prepare-big', extraLayers: [{ populate: (dir) => writeFileSync(join(dir, 'big.bin'), randomBytes(11 << 20)) }] });
  big = { manifest: await pushLayout(image.ref, registry.host, 'lib/big:1'), config: '', layers: [], diffIds: [] };
  const m = JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', big.manifest.slice(7)), 'utf8')) as { config: { digest: string }; layers: { digest: string; size: number }[] };
  big.layers = m.layers;
  big.config = m.config.digest;
  big.diffIds = (JSON.parse(readFileSync(join(image.layout, 'blobs', 'sha256', m.config.digest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
  cacheDir = await tmpDir('vmimg-serve-prepare-');
  serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url, prepare: true, onPrepare: (r) => prepared.push(r), onAccess: (r) => access.push(r) });
});

after(async () => {
  await serve?.shutdown();
  await registry?.stop();
});

describe('serve --prepare', () => {
  it('an image skopeo pulls through is flattened under its tag\'s name; vmimg pull on that cache converts nothing', async () => {
    requireTools(['skopeo']);
    const layout = join(await tmpDir('vmimg-serve-prepare-skopeo-'), 'layout');
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${serve.host}/lib/multi:1`, `oci:${layout}:copy`]);
    await serve.idle();
    const name = `${registry.host}/lib/multi:1`;
    assert.deepEqual(prepared.map((r) => [r.event, r.name]), [['prepared', name]], JSON.stringify(prepared));
    const images = await expectExit(0, ['images', '--json', '--cache-dir', cacheDir]);
    assert.match(images.stdout, new RegExp(`${registry.host}/lib/multi:1`));
    const gets = blobGets().length;
    const states: string[] = [];
    const onProgress = (e: ProgressEvent) => void (e.type === 'layer' && states.push(e.state));
    await pull(name, { cacheDir, platform: { os: 'linux', architecture: 'amd64' }, onProgress });
    assert.ok(states.length > 0 && states.every((s) => s === 'cached'), `every layer cached: ${states.join(' ')}`);
    assert.deepEqual(blobGets().slice(gets), [], 'no blob fetched upstream');
  });

  it('the layer indexes are a referrer of the image (an .idx per layer, a .zran for the big gzip layer), fetched through serve', async () => {
    const m = await curl(`${serve.url}/v2/lib/big/manifests/1`, ['-H', 'Accept: application/vnd.oci.image.manifest.v1+json']);
    assert.equal(m.headers['docker-content-digest'], big.manifest);
    await serve.idle(); // no client fetched a blob: the prepare fetched them, once each
    const afterPrepare = blobGets().length;
    for (const d of [big.config, ...big.layers.map((l) => l.digest)]) assert.equal(blobGets().filter((l) => l.path.endsWith(d)).length, 1, `one upstream GET of ${d} in all`);
    const r = await curl(`${serve.url}/v2/lib/big/referrers/${big.manifest}?artifactType=${encodeURIComponent(ARTIFACT_TYPE)}`);
    assert.equal(r.status, 200);
    const refs = r.json<{ manifests: Desc[] }>().manifests;
    assert.equal(refs.length, 1, JSON.stringify(refs));
    assert.equal(refs[0]!.artifactType, ARTIFACT_TYPE);
    const a = await curl(`${serve.url}/v2/lib/big/manifests/${refs[0]!.digest}`);
    assert.equal(sha(a.body), refs[0]!.digest);
    const artifact = a.json<{ subject: Desc; layers: Desc[] }>();
    assert.equal(artifact.subject.digest, big.manifest);
    const idx = artifact.layers.filter((l) => l.mediaType.includes('idx'));
    const zran = artifact.layers.filter((l) => l.mediaType.includes('zran'));
    assert.deepEqual(idx.map((l) => l.annotations?.['dev.vmimg.layer.digest']), big.layers.map((l) => l.digest));
    assert.deepEqual(zran.map((l) => l.annotations?.['dev.vmimg.layer.digest']), big.layers.filter((l) => l.size > 10 << 20).map((l) => l.digest));
    for (const [i, l] of idx.entries()) {
      const b = await curl(`${serve.url}/v2/lib/big/blobs/${l.digest}`);
      assert.equal(b.status, 200);
      assert.ok(b.body.equals(readFileSync(join(cacheDir, 'layers', 'sha256', `${big.diffIds[i]!.slice(7)}.idx`))), 'the cache\'s .idx');
    }
    const z = await curl(`${serve.url}/v2/lib/big/blobs/${zran[0]!.digest}`);
    assert.ok(z.body.equals(readFileSync(join(cacheDir, 'checkpoints', 'sha256', `${zran[0]!.annotations!['dev.vmimg.layer.digest']!.slice(7)}.zran`))));
    assert.equal(blobGets().length, afterPrepare, 'the artifact came from serve, not the upstream');
  });

  it('vmimg pull --lazy through serve finds the layer indexes: no whole layer blob is sent, a file read lazily equals the prepared one', async () => {
    const cache = await tmpDir('vmimg-serve-prepare-lazy-');
    const warnings: string[] = [];
    const from = access.length;
    const image = await pull(`${serve.host}/lib/big:1`, { cacheDir: cache, lazy: true, onProgress: (e) => e.type === 'warning' && warnings.push(e.message) });
    assert.deepEqual(warnings, [], 'a published index was found');
    assert.ok(image.config.layerDetails.every((l) => l.lazy === true), 'every layer lazy');
    const wholeLayers = () => access.slice(from).filter((r) => r.status === 200 && big.layers.some((l) => r.path.endsWith(`/blobs/${l.digest}`)));
    assert.deepEqual(wholeLayers(), [], 'no layer blob sent whole');
    const lazy = await openLazyImage(image);
    const eager = await pull(`${registry.host}/lib/big:1`, { cacheDir });
    const [lfs, efs] = [await ContainerFS.open(lazy), await ContainerFS.open(eager)];
    try {
      const read = async (fs: ContainerFS) => sha(await fs.readFile('/big.bin'));
      assert.equal(await read(lfs), await read(efs));
    } finally {
      await lfs.close();
      await efs.close();
      await lazy.close();
    }
    assert.deepEqual(wholeLayers(), [], 'the read fetched ranges');
  });

  it('a client that HEADs the tag and GETs the digest (as containerd does) gets the image prepared under the tag\'s name', async () => {
    const cache = await tmpDir('vmimg-serve-prepare-ctr-');
    const records: PrepareRecord[] = [];
    const s2 = await startServe({ cacheDir: cache, listen: '127.0.0.1:0', upstream: registry.url, prepare: true, onPrepare: (r) => records.push(r) });
    try {
      const accept = ['-H', 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json'];
      const h = await curl(`${s2.url}/v2/lib/multi/manifests/1`, ['-I', ...accept]);
      const index = await curl(`${s2.url}/v2/lib/multi/manifests/${h.headers['docker-content-digest']}`, accept);
      const amd64 = index.json<{ manifests: { digest: string; platform: { architecture: string } }[] }>().manifests.find((d) => d.platform.architecture === 'amd64')!;
      await curl(`${s2.url}/v2/lib/multi/manifests/${amd64.digest}`, accept);
      await s2.idle();
      assert.deepEqual(records.map((r) => [r.event, r.name, r.manifest]), [['prepared', `${registry.host}/lib/multi:1`, amd64.digest]]);
    } finally {
      await s2.shutdown();
    }
  });

  it('a layer failing its digest fails the prepare (a log record and a metric, no image recorded); the next request prepares it', async () => {
    const proxy = await startFaultProxy(registry.url);
    const cache = await tmpDir('vmimg-serve-prepare-bad-');
    const records: PrepareRecord[] = [];
    const s2 = await startServe({ cacheDir: cache, listen: '127.0.0.1:0', upstream: proxy.url, prepare: true, onPrepare: (r) => records.push(r) });
    try {
      const layer = big.layers[big.layers.length - 1]!.digest;
      proxy.add({ method: 'GET', path: `/blobs/${layer}`, fault: { kind: 'corrupt' }, times: 1 });
      const url = `${s2.url}/v2/lib/big/manifests/1`;
      const accept = ['-H', 'Accept: application/vnd.oci.image.manifest.v1+json'];
      assert.equal((await curl(url, accept)).status, 200, 'the client is answered whatever the prepare does');
      await s2.idle();
      assert.deepEqual(records.map((r) => r.event), ['prepare-failed']);
      assert.match(records[0]!.error ?? '', /digest/i);
      assert.equal(s2.metrics.prepared.failed, 1);
      assert.doesNotMatch((await expectExit(0, ['images', '--json', '--cache-dir', cache])).stdout, /lib\/big/);
      assert.equal((await curl(url, accept)).status, 200);
      await s2.idle();
      assert.deepEqual(records.map((r) => r.event), ['prepare-failed', 'prepared']);
      assert.match((await expectExit(0, ['images', '--json', '--cache-dir', cache])).stdout, /lib\/big:1/);
    } finally {
      await s2.shutdown();
      await proxy.stop();
    }
  });

  it('after a restart the same artifact (same digest) is answered without preparing again', async () => {
    const first = (await curl(`${serve.url}/v2/lib/big/referrers/${big.manifest}`)).json<{ manifests: Desc[] }>().manifests;
    const again = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url, prepare: true });
    try {
      const r = (await curl(`${again.url}/v2/lib/big/referrers/${big.manifest}`)).json<{ manifests: Desc[] }>().manifests;
      assert.deepEqual(r.map((d) => d.digest), first.map((d) => d.digest));
      assert.equal(again.metrics.prepared.ok, 0);
    } finally {
      await again.shutdown();
    }
  });

  it('without --prepare nothing is flattened and no artifact is answered', async () => {
    const plainCache = await tmpDir('vmimg-serve-noprepare-');
    const plain = await startServe({ cacheDir: plainCache, listen: '127.0.0.1:0', upstream: registry.url });
    try {
      await curl(`${plain.url}/v2/lib/big/manifests/1`, ['-H', 'Accept: application/vnd.oci.image.manifest.v1+json']);
      const r = (await curl(`${plain.url}/v2/lib/big/referrers/${big.manifest}`)).json<{ manifests: Desc[] }>().manifests;
      assert.deepEqual(r, []);
      const images = await expectExit(0, ['images', '--json', '--cache-dir', plainCache]);
      assert.doesNotMatch(images.stdout, /lib\/big/);
    } finally {
      await plain.shutdown();
    }
  });
});
