// The tar and initramfs exports of the rich fixture (devices, fifo, setuid, xattrs, hardlinks, odd
// names, a 33 MiB file, whiteouts, opaque dir), extracted by GNU tar and GNU cpio, equal umoci unpack.
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportInitramfs, exportTar } from '../../src/export/index.js';
import type { RuntimeConfig } from '../../src/image/index.js';
import { buildBusyboxLayout } from '../helpers/busybox.js';
import { buildRichImage } from '../helpers/layers.js';
import { assertSafeExport } from '../helpers/export-check.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { describeTree, diffTrees, openFlattened, umociRootfs, xattrDiffs } from './compare.js';
import { treeCases } from '../helpers/tree-cases.js';

const rich = (async () => {
  const { image } = await buildRichImage();
  const [fs, rootfs] = await Promise.all([openFlattened(image), umociRootfs(image)]);
  return { fs, rootfs, want: describeTree(rootfs) };
})();

test.after(async () => (await rich).fs.close());

test('tar export: GNU tar lists and extracts it; the tree equals umoci unpack, xattrs included', async () => {
  requireTools(['tar', 'getfattr']);
  const { fs, rootfs, want } = await rich;
  const dir = await tmpDir('vmimg-export-tar-');
  const file = join(dir, 'root.tar');
  const { entries } = await exportTar(fs, createWriteStream(file));
  assert.equal((await assertSafeExport(file)).entries.length, entries);
  const listing = await run('tar', ['-tvf', file]);
  assert.equal(listing.trim().split('\n').length, entries);
  assert.match(listing, /^crw-rw-rw- 0\/0 +1,3 .* \.\/dev\/null$/m);
  const out = join(dir, 'x');
  mkdirSync(out);
  await run('tar', ['-x', '-p', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-f', file, '-C', out]);
  assert.deepEqual(diffTrees(describeTree(out), want), []);
  assert.deepEqual(await xattrDiffs(out, rootfs, ['usr/bin/ping', 'usr/bin/su', 'data/orig']), []);
  assert.ok(want.size > 40, `compared ${want.size} paths`);
});

test('initramfs export without init: GNU cpio lists and extracts it; the tree equals umoci unpack', async () => {
  requireTools(['cpio', 'gzip']);
  const { fs, want } = await rich;
  const dir = await tmpDir('vmimg-export-cpio-');
  const file = join(dir, 'root.cpio.gz');
  const r = await exportInitramfs(fs, createWriteStream(file), { init: false });
  assert.equal((await assertSafeExport(file)).entries.length, r.entries);
  const listing = await run('sh', ['-c', `gzip -dc '${file}' | cpio -t --quiet`]);
  assert.match(listing, /^dev\/sda$/m);
  assert.ok(listing.trim().split('\n').length >= r.entries, 'cpio -t lists every entry (one name holds a newline)');
  const out = join(dir, 'x');
  mkdirSync(out);
  await run('sh', ['-c', `gzip -dc '${file}' | cpio -idm --no-absolute-filenames --quiet`], { cwd: out });
  assert.deepEqual(diffTrees(describeTree(out), want), []);
});

test('initramfs export with the guest init adds exactly /.vmimg/{init,config}, /init and /dev/console', async () => {
  const { fs, want } = await rich;
  const config = { env: ['PATH=/bin', 'A=it\'s $HOME'], entrypoint: ['/bin/sh'], cmd: ['-c', 'echo hi'], workingDir: '/', uid: 0, gid: 0, user: '', architecture: 'amd64' } as unknown as RuntimeConfig;
  const dir = await tmpDir('vmimg-export-init-');
  const file = join(dir, 'root.cpio');
  const r = await exportInitramfs(fs, createWriteStream(file), { config, gzip: false });
  assert.equal((await assertSafeExport(file)).entries.length, r.entries);
  assert.deepEqual(r.argv, ['/bin/sh', '-c', 'echo hi']);
  assert.equal(r.hasOwnInit, false);
  const out = join(dir, 'x');
  mkdirSync(out);
  await run('cpio', ['-idm', '--no-absolute-filenames', '--quiet', '-F', file], { cwd: out });
  const extra = new Set(['.vmimg', '.vmimg/init', '.vmimg/config', 'init', 'dev/console']);
  const got = describeTree(out);
  assert.deepEqual(diffTrees(describeTree(out, (p) => extra.has(p)), want), []);
  assert.deepEqual(got.get('init'), { kind: 'symlink', mode: '777', uid: 0, gid: 0, link: '.vmimg/init' });
  assert.deepEqual(got.get('dev/console'), { kind: 'char', mode: '600', uid: 0, gid: 0, rdev: '5:1' });
  assert.equal(got.get('.vmimg/init')?.mode, '755');
  // the config is valid sh that reproduces the argv and env byte for byte
  const printed = await run('sh', ['-c', '. ./.vmimg/config; vmimg_env; eval "set -- $vmimg_argv"; printf "[%s]" "$@" "$A"'], { cwd: out });
  assert.equal(printed, "[/bin/sh][-c][echo hi][it's $HOME]");
});

test('hardlinks: the first name is the file, later names link to it (tar and cpio), as umoci unpack has them', async () => {
  const image = await buildBusyboxLayout({
    arch: 'amd64',
    tag: 'export-links',
    extraLayers: [
      { files: { 'h/a': 'shared\n', 'h/b': { hardlink: 'h/a' }, 'h/sub/c': { hardlink: 'h/a' }, 'e/x': '', 'e/y': { hardlink: 'e/x' } } },
      { files: { 'h/zz': 'later layer\n' } },
    ],
  });
  const [fs, rootfs] = await Promise.all([openFlattened(image), umociRootfs(image)]);
  try {
    const want = describeTree(rootfs);
    assert.equal(want.get('h/sub/c')?.links, 'h/a,h/b,h/sub/c');
    assert.equal(want.get('e/y')?.links, 'e/x,e/y');
    const dir = await tmpDir('vmimg-export-links-');
    await exportTar(fs, createWriteStream(join(dir, 'r.tar')));
    await exportInitramfs(fs, createWriteStream(join(dir, 'r.cpio.gz')), { init: false });
    for (const f of ['r.tar', 'r.cpio.gz']) await assertSafeExport(join(dir, f));
    const listing = await run('tar', ['-tvf', join(dir, 'r.tar')]);
    assert.match(listing, /^-rw-r--r-- 0\/0 +7 .* \.\/h\/a$/m);
    assert.match(listing, /^hrw-r--r-- .* \.\/h\/b link to \.\/h\/a$/m);
    assert.match(listing, /^hrw-r--r-- .* \.\/h\/sub\/c link to \.\/h\/a$/m);
    for (const [name, cmd] of [['t', `tar -xpf ../r.tar --numeric-owner`], ['c', 'gzip -dc ../r.cpio.gz | cpio -idm --no-absolute-filenames --quiet']]) {
      const out = join(dir, name!);
      mkdirSync(out);
      await run('sh', ['-c', cmd!], { cwd: out });
      assert.deepEqual(diffTrees(describeTree(out), want), [], `extracted with ${cmd}`);
    }
  } finally {
    await fs.close();
  }
});

test('tar and initramfs exports of the issue-9 cases (repeated layers, symlinked parents, hardlinks) are safe and equal umoci unpack', async () => {
  requireTools(['tar', 'cpio', 'gzip']);
  for (const c of await treeCases()) {
    const [fs, rootfs] = await Promise.all([openFlattened(c.image), umociRootfs(c.image)]);
    try {
      const skip = Object.keys(c.differs ?? {});
      const ignore = (p: string): boolean => skip.some((s) => p === s || p.startsWith(`${s}/`));
      const want = describeTree(rootfs, ignore);
      const dir = await tmpDir('vmimg-export-case-');
      await exportTar(fs, createWriteStream(join(dir, 'r.tar')));
      await exportInitramfs(fs, createWriteStream(join(dir, 'r.cpio.gz')), { init: false });
      // no entry below a symlink (A1.08-A1.11 write through same-layer symlinks), none escaping
      await assertSafeExport(join(dir, 'r.tar'));
      await assertSafeExport(join(dir, 'r.cpio.gz'));
      for (const [name, cmd] of [['t', 'tar -xpf ../r.tar --numeric-owner'], ['c', 'gzip -dc ../r.cpio.gz | cpio -idm --no-absolute-filenames --quiet']]) {
        const out = join(dir, name!);
        mkdirSync(out);
        await run('sh', ['-c', cmd!], { cwd: out });
        assert.deepEqual(diffTrees(describeTree(out, ignore), want), [], `${c.name}: extracted with ${cmd}`);
      }
    } finally {
      await fs.close();
    }
  }
});
