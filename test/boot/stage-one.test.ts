// The disk boot's stage-one initramfs (src/boot/stage-one.ts), judged by outside tools: GNU cpio lists
// and extracts it, binutils' readelf reads the kernel release from each module's .modinfo, and busybox sh
// parses the init. A real QEMU boot with a module the kernel refuses shows the slow path naming it.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { bootImage, ensureBusybox, ensureModules, writeStageOne } from '../../src/boot/index.js';
import { isVmimgError } from '../../src/errors.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { kernelDir, testKernel } from './kernels.js';

test('arm64: the stage one is a plain newc cpio of busybox, its applet links, and the modules under their release with a modules.dep', async () => {
  requireTools(['cpio', 'readelf']);
  const kernel = await testKernel('arm64');
  const modules = await ensureModules(dirname(kernel), basename(dirname(kernel)), 'arm64');
  const [busybox, dir] = await Promise.all([ensureBusybox('arm64', kernelDir()), tmpDir('vmimg-stage-one-')]);
  const cpio = join(dir, 'stage-one.cpio');
  await writeStageOne(cpio, busybox, modules);
  assert.equal(readFileSync(cpio).toString('latin1', 0, 6), '070701', 'not compressed: a newc header first');
  // the release the kernel checks (vermagic), as readelf prints the module's .modinfo strings
  const modinfo = await run('readelf', ['-p', '.modinfo', modules.files[0]!]);
  const release = /vermagic=(\S+)/.exec(modinfo)?.[1];
  assert.equal(release, basename(dirname(kernel)).replace(/^linux-image-/, ''), modinfo);
  const listing = (await run('sh', ['-c', `cpio -itv < '${cpio}'`])).split('\n');
  for (const applet of ['modprobe', 'insmod', 'mkdir', 'sleep']) {
    assert.ok(listing.some((l) => l.startsWith('l') && l.endsWith(`bin/${applet} -> busybox`)), `bin/${applet} links to busybox:\n${listing.join('\n')}`);
  }
  const out = join(dir, 'x');
  mkdirSync(out);
  await run('sh', ['-c', `cpio -id --quiet < '${cpio}'`], { cwd: out });
  const modDir = join(out, 'lib', 'modules', release!);
  assert.deepEqual(readdirSync(modDir).sort(), [...modules.files.map((f) => basename(f)), 'modules.dep'].sort());
  assert.equal(readFileSync(join(modDir, 'modules.dep'), 'utf8'), modules.files.map((f) => `${basename(f)}:\n`).join(''));
  const init = readFileSync(join(out, 'init'), 'utf8');
  assert.ok(init.includes(`modprobe -a ${modules.names.join(' ')} `), init);
  const hostBusybox = await ensureBusybox(process.arch === 'arm64' ? 'arm64' : 'amd64', kernelDir());
  await run(hostBusybox, ['sh', '-n', join(out, 'init')]); // busybox's own shell parses it
});

test('arm64: a module the kernel refuses fails the disk boot naming it (modprobe fails, insmod one by one finds it)', async () => {
  requireTools(['qemu-system-aarch64']);
  const [real, dir, cacheDir] = await Promise.all([testKernel('arm64'), tmpDir('vmimg-bad-module-'), tmpDir('vmimg-bad-module-cache-')]);
  const kdir = join(dir, 'custom-kernel');
  mkdirSync(join(kdir, 'modules'), { recursive: true });
  symlinkSync(real, join(kdir, 'vmlinuz'));
  for (const f of ['modules.dep', 'modules.builtin']) copyFileSync(join(dirname(real), f), join(kdir, f));
  for (const f of readdirSync(join(dirname(real), 'modules'))) copyFileSync(join(dirname(real), 'modules', f), join(kdir, 'modules', f));
  writeFileSync(join(kdir, 'modules', 'crc16.ko'), 'not an ELF module'); // ext4 needs it: the kernel says ENOEXEC
  const image = await loadFromTar(join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar'), { platform: parsePlatform('arm64'), cacheDir });
  await assert.rejects(bootImage(image, { kernel: join(kdir, 'vmlinuz'), kernelDir: kernelDir(), root: 'disk', timeoutMs: 300_000 }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_BOOT_FAILED'), String(e));
    assert.match(e.message, /cannot load kernel module crc16/);
    return true;
  });
});
