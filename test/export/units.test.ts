// Writer details: newc header fields, device numbers, pax record lengths at digit boundaries with
// binary xattrs (read back by GNU tar), sh quoting of argv, and the export errors.
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { cpioHeader, exportImage, exportInitramfs, exportTar, kernelCmdParam, shWords, splitDev } from '../../src/export/index.js';
import type { Image } from '../../src/image/index.js';
import { ContainerFS, makedev } from '../../src/vfs/index.js';
import { xattrsOf } from '../helpers/layers.js';
import { assertSafeExport } from '../helpers/export-check.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

test('newc header fields', () => {
  const cases = [
    { h: { name: '.', ino: 1, mode: 0o40755, uid: 0, gid: 0, nlink: 2, mtime: 0, size: 0 }, fields: ['00000001', '000041ed', '00000000', '00000000', '00000002'], len: 112 },
    { h: { name: 'dev/sda', ino: 0x1234, mode: 0o60660, uid: 1000, gid: 65534, nlink: 1, mtime: 1_700_000_000, size: 0, rdevMajor: 8, rdevMinor: 0x10 }, fields: ['00001234', '000061b0', '000003e8', '0000fffe', '00000001', '6553f100'], len: 120 },
  ];
  for (const c of cases) {
    const buf = cpioHeader(c.h);
    assert.equal(buf.length, c.len, c.h.name);
    assert.equal(buf.length % 4, 0);
    const text = buf.toString('latin1');
    assert.equal(text.slice(0, 6), '070701');
    c.fields.forEach((f, i) => assert.equal(text.slice(6 + i * 8, 14 + i * 8), f, `${c.h.name} field ${i}`));
    assert.equal(text.slice(6 + 11 * 8, 6 + 12 * 8), (Buffer.byteLength(c.h.name) + 1).toString(16).padStart(8, '0'));
    assert.equal(text.slice(110, 110 + c.h.name.length + 1), `${c.h.name}\0`);
  }
  assert.equal(cpioHeader({ ...cases[1]!.h }).toString('latin1').slice(6 + 9 * 8, 6 + 11 * 8), '0000000800000010');
  assert.throws(() => cpioHeader({ ...cases[0]!.h, size: 2 ** 32 }), (e: unknown) => isVmimgError(e, 'ERR_INVALID_ARGUMENT'));
});

test('splitDev inverts makedev', () => {
  for (const [major, minor] of [[0, 0], [1, 3], [8, 16], [4095, 255], [4096, 256], [259, 1048575], [0xfffff, 0xfffff]] as const) {
    assert.deepEqual(splitDev(makedev(major, minor)), { major, minor });
  }
});

test('pax records: lengths across digit boundaries, binary xattr values, long and unicode names survive GNU tar', async () => {
  requireTools(['tar', 'getfattr']);
  const dir = await tmpDir('vmimg-export-pax-');
  const b = layer().dir('x');
  const sizes = [1, 70, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 985, 986, 987, 988, 989, 990, 991];
  for (const n of sizes) b.file(`x/f${n}`, `${n}\n`, { xattrs: { 'user.v': Buffer.alloc(n, 0xfe).fill(0x00, 0, 1) } });
  const longName = `x/${'d'.repeat(150)}/${'é'.repeat(60)}.txt`;
  b.file(longName, 'long\n', { uid: 3_000_000, gid: 4_000_000 });
  b.symlink('x/ln', `/${'t'.repeat(200)}`);
  const fs = ContainerFS.fromLayers([b.build(dir)]);
  const file = join(dir, 'r.tar');
  await exportTar(fs, createWriteStream(file));
  await assertSafeExport(file);
  const out = join(dir, 'out');
  mkdirSync(out);
  await run('tar', ['-x', '-p', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-f', file, '-C', out]);
  for (const n of sizes) {
    const got = await xattrsOf(join(out, 'x', `f${n}`));
    assert.equal(got['user.v'], `00${'fe'.repeat(n - 1)}`, `xattr of ${n} bytes`);
  }
  const listing = await run('tar', ['-tvf', file, '--numeric-owner']);
  assert.match(listing, /3000000\/4000000 .*éé/);
  assert.match(listing, new RegExp(`x/ln -> /t{200}$`, 'm'));
  await fs.close();
});

test('argv survives sh quoting and the vmimg.cmd= base64 form', async () => {
  const argv = ['/bin/sh', '-c', `echo "$HOME" 'quoted' \\ back`, 'new\nline', '', "it's", '$(reboot)', '*'];
  const script = 'eval "set -- $W"; for a in "$@"; do printf "<%s>" "$a"; done';
  const want = argv.map((a) => `<${a}>`).join('');
  assert.equal(await run('sh', ['-c', script], { env: { ...process.env, W: shWords(argv) } }), want);
  const param = kernelCmdParam(argv);
  assert.match(param, /^vmimg\.cmd=[A-Za-z0-9+/=]+$/);
  const decoded = Buffer.from(param.slice('vmimg.cmd='.length), 'base64').toString('utf8');
  assert.equal(await run('sh', ['-c', script], { env: { ...process.env, W: decoded } }), want);
});

test('errors: no /bin/sh for the guest init, existing destination, unknown format', async () => {
  const dir = await tmpDir('vmimg-export-errors-');
  const fs = ContainerFS.fromLayers([layer().file('etc/motd', 'hi\n').symlink('bin/sh', '/nowhere').build(dir)]);
  const config = { env: [], entrypoint: [], cmd: ['true'], workingDir: '/', uid: 0, gid: 0, user: '', architecture: 'amd64' };
  await assert.rejects(exportInitramfs(fs, new PassThrough().resume(), { config: config as never }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_INVALID_IMAGE'));
    assert.match((e as Error).message, /no \/bin\/sh/);
    assert.match((e as { hint?: string }).hint ?? '', /--no-init/, 'the hint names the flag that leaves the init out');
    return true;
  });
  const r = await exportInitramfs(fs, new PassThrough().resume(), { init: false });
  assert.equal(r.entries, 5); // /, bin, bin/sh, etc, etc/motd
  await fs.close();
  const image = { dir, config, layers: [] } as unknown as Image;
  writeFileSync(join(dir, 'taken.tar'), 'x');
  await assert.rejects(exportImage(image, join(dir, 'taken.tar'), { format: 'tar' }), (e: unknown) => isVmimgError(e, 'ERR_DESTINATION_EXISTS'));
  await assert.rejects(exportImage(image, join(dir, 'y'), { format: 'qcow2' as never }), (e: unknown) => isVmimgError(e, 'ERR_INVALID_ARGUMENT'));
});

test('an image with its own /init keeps it; the guest init is still at /.vmimg/init', async () => {
  requireTools(['cpio']);
  const dir = await tmpDir('vmimg-export-own-init-');
  const fs = ContainerFS.fromLayers([layer().file('bin/sh', '#!\n', { mode: 0o755 }).file('init', 'own\n', { mode: 0o755 }).build(dir)]);
  const config = { env: [], entrypoint: [], cmd: ['true'], workingDir: '/', uid: 0, gid: 0, user: '', architecture: 'amd64' };
  const file = join(dir, 'r.cpio');
  const r = await exportInitramfs(fs, createWriteStream(file), { config: config as never, gzip: false });
  assert.equal(r.hasOwnInit, true);
  assert.equal(r.rdinit, '/.vmimg/init');
  await assertSafeExport(file);
  const listing = await run('cpio', ['-tv', '--quiet', '-F', file]);
  assert.match(listing, /^-rwxr-xr-x .* init$/m);
  assert.doesNotMatch(listing, /init -> /);
  assert.match(listing, /\.vmimg\/init$/m);
  await fs.close();
});

test('a truncated layer fails the tar and initramfs writers with ERR_INVALID_INDEX, small and streamed (> 1 MiB) files alike', async () => {
  const dir = await tmpDir('vmimg-export-trunc-');
  for (const size of [1000, 3 << 20]) {
    const l = layer().file('f', Buffer.alloc(size, 0x61)).build(dir);
    writeFileSync(l.contentsPath, Buffer.alloc(size >> 1, 0x61));
    for (const write of [exportTar, exportInitramfs]) {
      const fs = ContainerFS.fromLayers([l]);
      const sink = new PassThrough().resume();
      await assert.rejects(write(fs, sink, { init: false }), (e: unknown) => isVmimgError(e, 'ERR_INVALID_INDEX'), `${write.name} of ${size} bytes`);
      await fs.close();
    }
  }
});
