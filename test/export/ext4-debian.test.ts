// The ext4 export of a real distro userland (the Debian packages image of test/boot: glibc, dash,
// coreutils, util-linux; built with apt-get download, dpkg-deb, umoci and skopeo) judged by e2fsprogs:
// e2fsck -fn clean with the guest init added, and debugfs reads back every path, mode, owner, size,
// content, link target and hardlink group that `umoci unpack` of the same layout gives.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportExt4 } from '../../src/export/index.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { debianImage } from '../boot/debian-fixture.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { describeTree, diffTrees } from './compare.js';
import { describeExt4, e2fsckClean, requireE2fsprogs } from './ext4-read.js';

/** What the export adds to the image's tree (checked separately): lost+found, the guest init, /dev/console. */
const added = (p: string): boolean => p === 'lost+found' || p === '.vmimg' || p.startsWith('.vmimg/') || p === 'dev/console';

test('ext4 of the Debian packages image (amd64): e2fsck clean; debugfs reads back what umoci unpack gives', async () => {
  requireE2fsprogs();
  requireTools(['umoci']);
  const [{ ref, archive }, work] = await Promise.all([debianImage('amd64'), tmpDir('vmimg-ext4-debian-')]);
  const bundle = join(work, 'bundle');
  const [image] = await Promise.all([
    loadFromTar(archive, { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') }),
    run('umoci', ['unpack', '--image', ref, bundle]),
  ]);
  const img = join(work, 'debian.img');
  const r = await exportExt4(image, img);
  assert.deepEqual(r.argv, ['/bin/sh', '-c', 'echo "$(id -u):$(id -g) $(pwd) $FIXTURE $(readlink /proc/$$/exe)"; cat /etc/fixture']);
  await e2fsckClean(img);
  const want = describeTree(join(bundle, 'rootfs'));
  const dirs = ['', ...[...want].filter(([, d]) => d.kind === 'dir').map(([p]) => p)];
  const got = await describeExt4(img, [...dirs, '.vmimg'], added);
  assert.ok(want.size > 1000, `compared ${want.size} paths`);
  assert.ok([...want.values()].some((d) => d.kind === 'symlink'), 'the image has symlinks (/lib64, ...)');
  assert.deepEqual(diffTrees(got, want).slice(0, 20), []);
  const init = await describeExt4(img, ['.vmimg', 'dev'], (p) => !p.startsWith('.vmimg/') && p !== 'dev/console');
  assert.deepEqual([...init.keys()].sort(), ['.vmimg/config', '.vmimg/init', 'dev/console']);
  assert.equal(init.get('.vmimg/init')!.mode, '755');
  assert.equal(init.get('dev/console')!.rdev, '5:1');
});
