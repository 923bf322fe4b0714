// A lazy layer filled from its whole blob is held to the same expansion limits as an eager pull: a publisher
// can flatten a bomb with the limits raised and publish its index, but the reader's defaults still refuse it
// (ERR_TOO_LARGE naming --max-layer-ratio) instead of inflating it all. The bomb is python tarfile's, one
// 64 MiB file of zeros, `zstd -3` (~2 KiB: plain zstd layers are read whole), copied by skopeo to the CNCF
// registry on loopback.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO_ROOT } from '../helpers/cache.js';
import { expectExit, vmimg } from '../cli/run.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';

let registry: RunningRegistry;
let ref: string;

before(async () => {
  requireTools(['skopeo', 'python3', 'zstd']);
  const archive = join(await tmpDir('vmimg-lazybomb-'), 'bomb.tar');
  await run('python3', [join(REPO_ROOT, 'test', 'helpers', 'bombs.py'), archive, 'zeros', String(64 << 20), 'zstd']);
  registry = await startRegistry();
  ref = `${registry.host}/lazy/bomb:1`;
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archive}:latest`, `docker://${ref}`]);
});

after(async () => {
  await registry?.stop();
});

test("a published index over a bomb: the lazy reader's whole-blob fill is refused by its own limits", async () => {
  const publisher = await tmpDir('vmimg-lazybomb-pub-');
  await expectExit(0, ['--cache-dir', publisher, 'pull', '-q', '--max-layer-ratio', '1e6', ref]);
  await expectExit(0, ['--cache-dir', publisher, 'index', 'push', '-q', ref]);

  const cache = await tmpDir('vmimg-lazybomb-lazy-');
  await expectExit(0, ['--cache-dir', cache, 'pull', '-q', '--lazy', ref]);
  const r = await vmimg(['--cache-dir', cache, 'cat', ref, '/zeros']);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /ERR_TOO_LARGE.*expands past 1000× its compressed size[\s\S]*--max-layer-ratio/);
  assert.equal(r.stdoutBytes.length, 0, 'no bytes of the bomb were served');
});

// The reader's own configured limits apply too, the zstd window among them: the whole-blob fill decoded with
// the default 8 MiB window whatever config.json said, and `cat` passed the lazy reader no limits at all.
// python tarfile, 1 MiB of zeros, `zstd -3 --long=24` (a frame declaring a 16 MiB window, as bombs.test.ts).
test("a whole-blob fill takes the reader's config.json limits: a 16 MiB zstd window refused by default, read when allowed", async () => {
  const archive = join(await tmpDir('vmimg-lazywindow-'), 'window.tar');
  await run('python3', [join(REPO_ROOT, 'test', 'helpers', 'bombs.py'), archive, 'zeros', String(1 << 20), 'zstd', '--long=24']);
  const wref = `${registry.host}/lazy/window:1`;
  await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci-archive:${archive}:latest`, `docker://${wref}`]);
  const withLimits = async (): Promise<{ cache: string; env: Record<string, string> }> => {
    const cache = await tmpDir('vmimg-lazywindow-cache-');
    writeFileSync(join(cache, 'config.json'), JSON.stringify({ limits: { maxZstdWindow: '16M', maxLayerRatio: 1e6 } }));
    return { cache, env: { VMIMG_CONFIG: join(cache, 'config.json') } };
  };
  const publisher = await withLimits();
  await expectExit(0, ['--cache-dir', publisher.cache, 'pull', '-q', wref], { env: publisher.env });
  await expectExit(0, ['--cache-dir', publisher.cache, 'index', 'push', '-q', wref], { env: publisher.env });

  const plain = await tmpDir('vmimg-lazywindow-plain-');
  await expectExit(0, ['--cache-dir', plain, 'pull', '-q', '--lazy', wref]);
  const refusedRead = await vmimg(['--cache-dir', plain, 'cat', wref, '/zeros']);
  assert.equal(refusedRead.code, 6, refusedRead.stderr);
  assert.match(refusedRead.stderr, /16 MiB window[\s\S]*maxZstdWindow/);

  const allowed = await withLimits();
  await expectExit(0, ['--cache-dir', allowed.cache, 'pull', '-q', '--lazy', wref], { env: allowed.env });
  const r = await vmimg(['--cache-dir', allowed.cache, 'cat', wref, '/zeros'], { env: allowed.env });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(Buffer.alloc(1 << 20)), `${r.stdoutBytes.length} bytes of zeros`);
});
