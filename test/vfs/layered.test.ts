// LayeredContainerFS: extra layers stacked on a live ContainerFS with the same merge rules.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { ContainerFS, LayeredContainerFS } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

const dir = tmpDirSync('vmimg-vfs-layered-');
const baseFs = () =>
  ContainerFS.fromLayers([
    layer()
      .dir('etc', { mode: 0o755 })
      .file('etc/passwd', 'root:x:0:0\n')
      .file('etc/apt/sources.list.d/x.list', 'deb x')
      .file('etc/apt/apt.conf', 'conf')
      .file('usr/bin/a', 'A')
      .hardlink('usr/bin/b', 'usr/bin/a')
      .dir('tmp', { mode: 0o1777 })
      .build(dir),
  ]);

test('stacked layers see base content and apply whiteouts, opaque dirs and replacement', async () => {
  const base = baseFs();
  const top = new LayeredContainerFS(base, [
    layer().whiteout('etc/apt/sources.list.d/x.list').opaque('usr/bin').file('usr/bin/c', 'C').build(dir),
    layer().file('etc/passwd', 'root:x:0:0\nme:x:1000:1000\n').file('tmp/new', 'n').build(dir),
  ]);
  assert.equal(top.base(), base);
  assert.deepEqual(top.readdir('/etc/apt'), ['apt.conf', 'sources.list.d'], 'ancestors of a deep whiteout stay');
  assert.deepEqual(top.readdir('/etc/apt/sources.list.d'), []);
  assert.deepEqual(top.readdir('/usr/bin'), ['c']);
  assert.equal((await top.readFile('/etc/apt/apt.conf')).toString(), 'conf', 'base content through the stack');
  const confSha = createHash('sha256').update('conf').digest('hex');
  assert.equal(top.contentSha256(top.lookupPath('/etc/apt/apt.conf')), confSha, 'base digests carried over');
  assert.match((await top.readFile('/etc/passwd')).toString(), /me:x:1000/);
  assert.equal(top.lstat('/tmp').mode, 0o041777, 'base directory metadata kept');
  // the base is untouched
  assert.deepEqual(base.readdir('/usr/bin'), ['a', 'b']);
  assert.equal((await base.readFile('/etc/passwd')).toString(), 'root:x:0:0\n');
  await top.close();
  assert.equal((await base.readFile('/usr/bin/b')).toString(), 'A', 'closing the stack leaves the base open');
  await base.close();
});

test('hardlinks from the base stay one inode; whiting out one name drops nlink', async () => {
  const base = baseFs();
  const keep = new LayeredContainerFS(base, []);
  assert.equal(keep.lstat('/usr/bin/a').ino, keep.lstat('/usr/bin/b').ino);
  assert.equal(keep.lstat('/usr/bin/a').nlink, 2);
  const top = new LayeredContainerFS(base, [layer().whiteout('usr/bin/a').build(dir)]);
  assert.equal(top.lstat('/usr/bin/b').nlink, 1);
  assert.equal((await top.readFile('/usr/bin/b')).toString(), 'A');
  const relinked = new LayeredContainerFS(base, [layer().hardlink('usr/bin/c', 'usr/bin/a').build(dir)]);
  assert.equal(relinked.lstat('/usr/bin/c').nlink, 3, 'a new name for a base inode');
  await base.close();
});

test('a stack on a stack; reading base content after the base is closed is ERR_CLOSED', async () => {
  const base = baseFs();
  const one = new LayeredContainerFS(base, [layer().file('one', '1').build(dir)]);
  const two = await LayeredContainerFS.stack(one, [layer().file('two', '2').whiteout('one').build(dir)]);
  assert.deepEqual(two.readdir('/').sort(), ['etc', 'tmp', 'two', 'usr']);
  assert.equal((await two.readFile('/two')).toString(), '2');
  await base.close();
  await assert.rejects(two.readFile('/usr/bin/a'), (err) => isVmimgError(err, 'ERR_CLOSED'));
  assert.equal((await two.readFile('/two')).toString(), '2', 'its own layers still read');
  await two.close();
  await one.close();
});
