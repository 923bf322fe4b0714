// A lazy layer filled from its whole blob is held to the same expansion limits as an eager pull: a publisher
// can flatten a bomb with the limits raised and publish its index, but the reader's defaults still refuse it
// (ERR_TOO_LARGE naming --max-layer-ratio) instead of inflating it all. The bomb is python tarfile's, one
// 64 MiB file of zeros, `zstd -3` (~2 KiB: plain zstd layers are read whole), copied by skopeo to the CNCF
// registry on loopback.
import assert from 'node:assert/strict';
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
