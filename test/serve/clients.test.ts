/**
 * Real clients pulling through `vmimg serve` from Debian's docker-registry: skopeo (its copy unpacked
 * by umoci equals the original's), `vmimg pull` with serve as a mirror in its config file (and a pull
 * on serve's own cache dir is a hit: no blob, config included, reaches the upstream), and containerd's
 * `ctr images pull --plain-http`. Upstream requests are counted from the upstream's access log.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServe, type RunningServe } from '../../src/serve/index.js';
import { buildBusyboxLayout, pushLayout, type BuiltImage } from '../helpers/busybox.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { describeTree, diffTrees, umociRootfs } from '../export/compare.js';
import { expectExit } from '../cli/run.js';

let registry: RunningRegistry;
let serve: RunningServe;
let cacheDir: string;
let image: BuiltImage;
let layers: string[];

const blobGets = () => registry.accessLog().filter((l) => l.method === 'GET' && /\/blobs\/sha256:/.test(l.path));

before(async () => {
  registry = await startRegistry({ accessLog: true });
  image = await buildBusyboxLayout({ arch: 'amd64', tag: 'serve-clients', extraLayers: [{ files: { 'etc/motd': 'through the cache\n' } }] });
  await pushLayout(image.ref, registry.host, 'lib/busybox:1');
  const manifest = (await import('node:fs')).readFileSync(join(image.layout, 'blobs', 'sha256', image.manifestDigest.slice(7)), 'utf8');
  layers = (JSON.parse(manifest) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
  cacheDir = await tmpDir('vmimg-serve-clients-');
  serve = await startServe({ cacheDir, listen: '127.0.0.1:0', upstream: registry.url });
});

after(async () => {
  await serve?.shutdown();
  await registry?.stop();
});

describe('serve: real clients', () => {
  it('skopeo copies through serve; umoci unpacks the copy to the same tree as the original', async () => {
    requireTools(['skopeo', 'umoci']);
    const layout = join(await tmpDir('vmimg-serve-skopeo-'), 'layout');
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${serve.host}/lib/busybox:1`, `oci:${layout}:copy`]);
    const copied = await umociRootfs({ ...image, layout, tag: 'copy', ref: `${layout}:copy` });
    const original = await umociRootfs(image);
    assert.deepEqual(diffTrees(describeTree(copied), describeTree(original)), []);
    const gets = blobGets();
    for (const d of layers) assert.equal(gets.filter((g) => g.path.endsWith(d)).length, 1, `one upstream GET of ${d}`);
  });

  it('vmimg pull with serve as a mirror in its config file goes through serve; a pull on serve\'s cache dir is a hit', async () => {
    const config = join(await tmpDir('vmimg-serve-config-'), 'config.json');
    writeFileSync(config, JSON.stringify({ mirrors: { [registry.host]: [{ url: serve.url, resolve: true }] }, originFallback: false }));
    const before = blobGets().length;
    const manifestsBefore = registry.accessLog().filter((l) => l.path.includes('/manifests/')).length;
    const mirrored = await expectExit(0, ['pull', `${registry.host}/lib/busybox:1`, '--arch', 'amd64', '--json', '--cache-dir', await tmpDir('vmimg-serve-pull-')], {
      env: { VMIMG_CONFIG: config },
    });
    assert.equal((JSON.parse(mirrored.stdout) as { manifestDigest: string }).manifestDigest, image.manifestDigest);
    assert.equal(blobGets().length, before, 'every blob came from serve\'s cache');
    assert.equal(registry.accessLog().filter((l) => l.path.includes('/manifests/')).length, manifestsBefore, 'the tag too (within its TTL)');
    await serve.idle(); // blobs are committed just after their last byte went out
    await expectExit(0, ['pull', `${registry.host}/lib/busybox:1`, '--arch', 'amd64', '--json', '--cache-dir', cacheDir]);
    assert.deepEqual(blobGets().slice(before), [], 'a pull on serve\'s cache dir fetched no blob, the config neither');
  });

  it('containerd\'s ctr pulls through serve with --plain-http', async () => {
    requireTools(['ctr', 'containerd']);
    const dir = await tmpDir('vmimg-serve-ctr-');
    const sock = join(dir, 'containerd.sock');
    const daemon: ChildProcess = spawn('containerd', ['--root', join(dir, 'root'), '--state', join(dir, 'state'), '--address', sock], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100; i++) {
        const up = await run('ctr', ['--address', sock, 'version']).then(() => true, () => false);
        if (up) break;
        await sleep(100);
      }
      const out = await run('ctr', ['--address', sock, 'images', 'pull', '--plain-http', '--platform', 'linux/amd64', `${serve.host}/lib/busybox:1`]);
      assert.match(out, /done/);
      const listed = await run('ctr', ['--address', sock, 'images', 'ls', '-q']);
      assert.match(listed, new RegExp(`${serve.host}/lib/busybox:1`));
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
  });
});
