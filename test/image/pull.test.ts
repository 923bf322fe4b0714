/**
 * pull() end to end against the real CNCF registry, with images made by umoci/skopeo from Debian's
 * busybox-static: multi-arch OCI index and Docker manifest list, platform choice, user resolution,
 * layer reuse across images, resume of an interrupted download, and what is left after failures.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pull, findImage, CacheLayout, ErrorCode, ContainerFS, parsePlatform, isVmimgError } from '../../src/index.js';
import type { ProgressEvent } from '../../src/index.js';
import { buildBusyboxLayout, buildMultiArchLayout, pushLayout } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let proxy: FaultProxy;
const FAST_RETRY = { retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 50 } };

before(async () => {
  registry = await startRegistry();
  const multi = await buildMultiArchLayout('pulltest');
  await pushLayout(multi.ref, registry.host, 'busybox:multi', { all: true });
  await pushLayout(multi.ref, registry.host, 'busybox:list', { all: true, format: 'v2s2' });
  const withUser = await buildBusyboxLayout({
    arch: 'arm64',
    tag: 'app',
    user: 'app',
    extraLayers: [{ files: { 'etc/app.conf': 'x=1\n' } }],
  });
  await pushLayout(withUser.ref, registry.host, 'busybox:app');
  const badUser = await buildBusyboxLayout({ arch: 'amd64', tag: 'baduser', user: 'nosuchuser' });
  await pushLayout(badUser.ref, registry.host, 'busybox:baduser');
  proxy = await startFaultProxy(registry.url);
});

after(async () => {
  await proxy?.stop();
  await registry?.stop();
});

async function readImageFile(dir: string, path: string): Promise<string> {
  const fs = await ContainerFS.open(dir);
  try {
    return (await fs.readFile(path)).toString('utf8');
  } finally {
    await fs.close();
  }
}

describe('pull', () => {
  for (const [tag, what] of [
    ['multi', 'OCI index'],
    ['list', 'Docker manifest list'],
  ] as const) {
    it(`chooses each architecture from a ${what}`, async () => {
      const cacheDir = await tmpDir('vmimg-pull-');
      for (const arch of ['amd64', 'arm64'] as const) {
        const image = await pull(`${registry.host}/busybox:${tag}`, { platform: parsePlatform(arch), cacheDir });
        assert.equal(image.config.architecture, arch);
        assert.equal((await readImageFile(image.dir, '/etc/arch')).trim(), arch);
        assert.equal(image.config.source.kind, 'registry');
        assert.match(image.config.source.indexDigest ?? '', /^sha256:/);
        assert.equal(image.config.layers.length, image.layers.length);
      }
    });
  }

  it('treats arm64, aarch64 and linux/arm64/v8 as the same platform', async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    const ids = new Set<string>();
    for (const p of ['arm64', 'aarch64', 'linux/arm64/v8']) {
      const image = await pull(`${registry.host}/busybox:multi`, { platform: parsePlatform(p), cacheDir });
      ids.add(image.config.source.configDigest);
    }
    assert.equal(ids.size, 1);
  });

  it('fails with ERR_PLATFORM_MISMATCH listing what the index offers', async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    await assert.rejects(pull(`${registry.host}/busybox:multi`, { platform: parsePlatform('riscv64'), cacheDir }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.PLATFORM_MISMATCH));
      assert.match(err.message, /linux\/riscv64/);
      assert.match(err.message, /linux\/amd64/);
      assert.match(err.message, /linux\/arm64\/v8/);
      return true;
    });
    assert.deepEqual(await readdir(cacheDir).then((d) => d.filter((n) => n === 'images')), []);
  });

  it('refuses a single-platform image of another architecture when one is asked for', async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    await assert.rejects(pull(`${registry.host}/busybox:app`, { platform: parsePlatform('amd64'), cacheDir }), {
      code: ErrorCode.PLATFORM_MISMATCH,
    });
  });

  it("resolves the image's user through its own /etc/passwd, and names a missing user at pull time", async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    const image = await pull(`${registry.host}/busybox:app`, { platform: parsePlatform('arm64'), cacheDir });
    assert.equal(image.config.user, 'app');
    assert.equal(image.config.uid, 1000);
    assert.equal(image.config.gid, 1000);
    await assert.rejects(pull(`${registry.host}/busybox:baduser`, { platform: parsePlatform('amd64'), cacheDir }), (err: unknown) => {
      assert.ok(isVmimgError(err, ErrorCode.UNKNOWN_USER));
      assert.match(err.message, /nosuchuser/);
      return true;
    });
  });

  it('converts a layer shared by two images once, and reports it as cached', async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    await pull(`${registry.host}/busybox:multi`, { platform: parsePlatform('arm64'), cacheDir });
    const events: ProgressEvent[] = [];
    const image = await pull(`${registry.host}/busybox:app`, { platform: parsePlatform('arm64'), cacheDir, onProgress: (e) => events.push(e) });
    const states = events.filter((e) => e.type === 'layer').map((e) => `${e.index}:${e.state}`);
    assert.ok(states.includes('0:cached'), `base layer should be cached: ${states.join(' ')}`);
    assert.ok(states.some((s) => s.endsWith(':done')), 'the new layer should be converted');
    const base = await stat(image.layers[0]!.indexPath);
    assert.ok(base.nlink >= 3, 'layer files are hard-linked into both image dirs');
  });

  it('resumes a layer download cut mid-blob and leaves only verified blobs', async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    proxy.clear();
    proxy.requests.length = 0;
    proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'reset', afterBytes: 100_000 }, times: 2 });
    const image = await pull(`${proxy.host}/busybox:multi`, { platform: parsePlatform('amd64'), cacheDir, ...FAST_RETRY });
    const seen = [...proxy.requests];
    proxy.clear();
    assert.equal((await readImageFile(image.dir, '/etc/arch')).trim(), 'amd64');
    const ranged = seen.filter((r) => r.range !== undefined);
    assert.ok(ranged.length >= 1, `a Range request resumed the download: ${JSON.stringify(seen)}`);
    const blobs = await readdir(join(cacheDir, 'blobs', 'sha256'));
    assert.ok(blobs.length > 0);
  });

  it('a rerun after a failed pull resumes the partial download and commits nothing before', async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    proxy.clear();
    proxy.add({ method: 'GET', path: /\/blobs\/sha256:/, fault: { kind: 'reset', afterBytes: 50_000 } });
    await assert.rejects(
      pull(`${proxy.host}/busybox:multi`, { platform: parsePlatform('arm64'), cacheDir, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } }),
      (err: unknown) => isVmimgError(err) && /ERR_NETWORK|ERR_REGISTRY_UNAVAILABLE/.test(err.code),
    );
    assert.deepEqual(await readdir(join(cacheDir, 'images')).catch(() => []), []);
    assert.deepEqual(await readdir(join(cacheDir, 'layers', 'sha256')).catch(() => []), []);
    const partials = await readdir(join(cacheDir, 'partial'));
    assert.ok(partials.some((p) => !p.endsWith('.lock')), 'the interrupted download is kept for the next run');
    proxy.clear();
    const image = await pull(`${proxy.host}/busybox:multi`, { platform: parsePlatform('arm64'), cacheDir });
    const seen = [...proxy.requests];
    assert.ok(seen.some((r) => r.range !== undefined && r.range !== 'bytes=0-'), `the rerun resumed with Range: ${JSON.stringify(seen)}`);
    assert.equal((await readImageFile(image.dir, '/etc/arch')).trim(), 'arm64');
  });

  it('records the image so findImage() finds it by reference and as the most recent', async () => {
    const cacheDir = await tmpDir('vmimg-pull-');
    const image = await pull(`${registry.host}/busybox:multi`, { platform: parsePlatform('arm64'), cacheDir });
    const cache = new CacheLayout(cacheDir);
    assert.equal((await findImage(cache, `${registry.host}/busybox:multi`)).dir, image.dir);
    assert.equal((await findImage(cache, undefined)).dir, image.dir);
    const config = JSON.parse(await readFile(join(image.dir, 'config.json'), 'utf8'));
    assert.equal(config.source.reference, `${registry.host}/busybox:multi`);
  });
});
