/**
 * The tar export checks small files in the hash pool's workers while it writes them
 * (src/export/pool-verify.ts): one flipped byte in a small file (`/etc/passwd`, nothing else damaged)
 * still fails the export with ERR_DIGEST_MISMATCH naming that file, and with `verify: false` it
 * does not; the intact image exports.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ContainerFS } from '../../src/vfs/index.js';
import { exportTar } from '../../src/export/index.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { isVmimgError } from '../../src/errors.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { tmpDir } from '../helpers/tools.js';

let good: string;
let broken: string;

before(async () => {
  const work = await tmpDir('vmimg-tar-verify-');
  const image = await loadFromTar(join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar'), { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  good = image.dir;
  broken = join(work, 'broken');
  mkdirSync(broken);
  for (const f of readdirSync(good)) copyFileSync(join(good, f), join(broken, f)); // copies: the cache stays intact
  const contents = readdirSync(broken).filter((f) => f.endsWith('.contents')).find((f) => readFileSync(join(broken, f)).includes('root:x:0:0'));
  assert.ok(contents, 'a layer holds /etc/passwd');
  const path = join(broken, contents);
  const at = readFileSync(path).indexOf('root:x:0:0');
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from('R'), 0, 1, at);
  closeSync(fd);
});

const discard = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });

test('a flipped byte in a small file fails the tar export naming it; verify: false lets it through', async () => {
  const fs = await ContainerFS.open(broken);
  try {
    await assert.rejects(exportTar(fs, discard()), (err: Error) => isVmimgError(err) && /\/etc\/passwd: content does not match/.test(err.message));
    const r = await exportTar(fs, discard(), { verify: false });
    assert.ok(r.entries > 10);
  } finally {
    await fs.close();
  }
  const intact = await ContainerFS.open(good);
  try {
    assert.ok((await exportTar(intact, discard())).entries > 10);
  } finally {
    await intact.close();
  }
});
