/**
 * The tar export checks every file in the hash pool's workers while it writes it
 * (src/export/tar-sink.ts): one flipped byte in a small file (`/etc/passwd`) or in a large one read in
 * 1 MiB chunks (`/bin/busybox`, ~2 MiB), nothing else damaged, still fails the export with
 * ERR_DIGEST_MISMATCH naming that file, and with `verify: false` it does not; the intact image exports.
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
let brokenLarge: string;

/** A copy of image dir `from` with one byte of the `.contents` holding `needle` flipped at `skip` bytes past it. */
function damagedCopy(from: string, to: string, needle: Buffer, skip: number): void {
  mkdirSync(to);
  for (const f of readdirSync(from)) copyFileSync(join(from, f), join(to, f)); // copies: the cache stays intact
  const contents = readdirSync(to).filter((f) => f.endsWith('.contents')).find((f) => readFileSync(join(to, f)).includes(needle));
  assert.ok(contents, `a layer holds ${needle.toString('latin1')}`);
  const path = join(to, contents);
  const bytes = readFileSync(path);
  const at = bytes.indexOf(needle) + skip;
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from([bytes[at]! ^ 0xff]), 0, 1, at);
  closeSync(fd);
}

before(async () => {
  const work = await tmpDir('vmimg-tar-verify-');
  const image = await loadFromTar(join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar'), { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  good = image.dir;
  broken = join(work, 'broken');
  damagedCopy(good, broken, Buffer.from('root:x:0:0'), 0);
  // a byte of busybox-static's second 1 MiB chunk, found in its layer by the 64 bytes around it
  const fs = await ContainerFS.open(good);
  const busybox = await fs.readFile('/bin/busybox');
  await fs.close();
  assert.ok(busybox.length > (3 << 19), `/bin/busybox is ${busybox.length} bytes: more than 1.5 MiB`);
  brokenLarge = join(work, 'broken-large');
  damagedCopy(good, brokenLarge, busybox.subarray(3 << 19, (3 << 19) + 64), 32);
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
  const large = await ContainerFS.open(brokenLarge);
  try {
    await assert.rejects(exportTar(large, discard()), (err: Error) => isVmimgError(err) && /\/bin\/busybox: content does not match/.test(err.message));
  } finally {
    await large.close();
  }
  const intact = await ContainerFS.open(good);
  try {
    assert.ok((await exportTar(intact, discard())).entries > 10);
  } finally {
    await intact.close();
  }
});
