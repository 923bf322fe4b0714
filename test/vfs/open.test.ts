// ContainerFS.open sources and their failures.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';
import { REPO_ROOT } from '../helpers/cache.js';

const MULTIARCH_TAR = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');

const root = tmpDirSync('vmimg-vfs-open-');
let n = 0;
function imageDir(config: unknown): string {
  const dir = join(root, `img${n++}`);
  mkdirSync(dir);
  if (config !== undefined) writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}
const code = (c: string) => (err: unknown) => isVmimgError(err) && err.code === c;

test('an image directory that is not one fails with ERR_INVALID_IMAGE', async () => {
  await assert.rejects(ContainerFS.open(imageDir(undefined)), code('ERR_INVALID_IMAGE'), 'no config.json');
  await assert.rejects(ContainerFS.open(imageDir('{not json')), code('ERR_INVALID_IMAGE'), 'bad JSON');
  await assert.rejects(ContainerFS.open(imageDir({ layers: 'x' })), code('ERR_INVALID_IMAGE'), 'layers not a list');
  await assert.rejects(ContainerFS.open(imageDir({ layers: ['sha256:../../etc'] })), code('ERR_INVALID_IMAGE'), 'digest as path');
});

test('a missing layer index fails with ERR_NOT_FOUND', async () => {
  const dir = imageDir({ layers: [`sha256:${'ab'.repeat(32)}`] });
  await assert.rejects(ContainerFS.open(dir), code('ERR_NOT_FOUND'));
  await assert.rejects(ContainerFS.open([{ indexPath: join(dir, 'nope.idx'), contentsPath: join(dir, 'nope.contents') }]), code('ERR_NOT_FOUND'));
});

test('an image with no layers is an empty root; in-memory layers open through open() too', async () => {
  const empty = await ContainerFS.open(imageDir({ layers: [] }));
  assert.deepEqual(empty.readdir('/'), []);
  assert.equal(empty.lstat('/').mode, 0o040755);
  const mem = await ContainerFS.open([layer().file('hello', 'hi').build(root)]);
  assert.equal((await mem.readFile('/hello')).toString(), 'hi');
});

test('a truncated .contents file is an error, not short data', async () => {
  const l = layer().file('f', 'x'.repeat(100)).build(root);
  writeFileSync(l.contentsPath, 'x'.repeat(10));
  const fs = await ContainerFS.open([l]);
  await assert.rejects(fs.readFile('/f'), code('ERR_INVALID_INDEX'));
});

test('cached lookups keep stat / lstat semantics for symlinks', () => {
  const fs = ContainerFS.fromLayers([layer().dir('usr/lib').symlink('lib', 'usr/lib').symlink('usr/lib/cur', '.').build(root)]);
  for (let i = 0; i < 3; i++) {
    assert.ok(fs.stat('/lib').isDirectory());
    assert.ok(fs.lstat('/lib').isSymbolicLink());
    assert.ok(fs.lstat('/lib/cur').isSymbolicLink());
    assert.ok(fs.stat('/lib/cur').isDirectory());
    assert.ok(fs.lstat('/usr/lib').isDirectory());
    assert.throws(() => fs.lstat('/usr/lib/nope'), { code: 'ENOENT' });
  }
  assert.equal(fs.realpath('/lib/cur/cur'), '/usr/lib');
});

test('a loaded Image opens as it is: its layers name the .idx/.contents pairs', async () => {
  const image = await loadFromTar(MULTIARCH_TAR, { platform: parsePlatform('linux/arm64'), cacheDir: join(root, 'cache') });
  const fs = await ContainerFS.open(image);
  try {
    assert.equal((await fs.readFile('/etc/arch')).toString().trim(), 'arm64');
    const byDir = await ContainerFS.open(image.dir);
    assert.deepEqual(fs.readdir('/bin'), byDir.readdir('/bin'));
    await byDir.close();
  } finally {
    await fs.close();
  }
  await assert.rejects(ContainerFS.open({} as never), code('ERR_INVALID_ARGUMENT'));
});
