// Booting from an ext4 disk (virtio-blk) under QEMU: vmimg's ext4 export, a stage-one initramfs of
// Debian's busybox-static and the linux-image package's own modules, switch_root into the guest init.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bootImage, chooseRoot } from '../../src/boot/index.js';
import { isVmimgError } from '../../src/errors.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTools, tmpDir } from '../helpers/tools.js';
import { expectExit } from '../cli/run.js';
import { testKernel } from './kernels.js';

const SAMPLE = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');

test('the default root is a disk when the image would take over 3/4 of the RAM as an initramfs, or a disk is given', () => {
  assert.equal(chooseRoot(300, 512, {}), 'initramfs');
  assert.equal(chooseRoot(400, 512, {}), 'disk');
  assert.equal(chooseRoot(10, 512, { disk: 'x.img' }), 'disk');
  assert.equal(chooseRoot(900, 512, { root: 'initramfs' }), 'initramfs');
});

test('amd64: the busybox sample boots from an ext4 disk at 512 MiB and prints its entrypoint output', async () => {
  requireTools(['qemu-system-x86_64']);
  const [kernel, cacheDir] = await Promise.all([testKernel('amd64'), tmpDir('vmimg-disk-boot-')]);
  const image = await loadFromTar(SAMPLE, { platform: parsePlatform('amd64'), cacheDir });
  const r = await bootImage(image, { kernel, root: 'disk', timeoutMs: 300_000 });
  assert.equal(r.root, 'disk');
  assert.equal(r.guestOutput, 'amd64\nWelcome to the vmimg sample (amd64).\n', r.output);
  assert.equal(r.exitStatus, 0, r.output);
});

test('arm64 via the CLI: boot --disk of an exported ext4 runs the command, and a guest write leaves the file unchanged', async () => {
  requireTools(['qemu-system-aarch64']);
  const [kernel, dir] = await Promise.all([testKernel('arm64'), tmpDir('vmimg-disk-cli-')]);
  const c = (...args: string[]): string[] => ['--cache-dir', join(dir, 'cache'), ...args];
  const disk = join(dir, 'root.img');
  await expectExit(0, c('export', disk, SAMPLE, '--arch', 'arm64', '--format', 'ext4', '-q'));
  const sha = (): string => createHash('sha256').update(readFileSync(disk)).digest('hex');
  const before = sha();
  // the stage one makes the guest init's mounts (busybox, before switch_root): the command sees them all
  const mounts = 'while read -r dev dir type rest; do echo "$dir $type"; done < /proc/mounts | grep -E "^/(proc|sys|dev|dev/pts|tmp) " | sort';
  const cmd = `echo written > /written && sync && cat /written /etc/arch; hostname; stat -c %a /tmp; ${mounts}; exit 5`;
  const r = await expectExit(5, c('boot', SAMPLE, '--arch', 'arm64', '--kernel', kernel, '--disk', disk, '--json', '--entrypoint', '', '--', '/bin/sh', '-c', cmd));
  const result = JSON.parse(r.stdout) as { exitStatus: number; root: string; output: string };
  const output = 'written\narm64\nvmimg\n1777\n/dev devtmpfs\n/dev/pts devpts\n/proc proc\n/sys sysfs\n/tmp tmpfs\n';
  assert.deepEqual({ exitStatus: result.exitStatus, root: result.root, output: result.output }, { exitStatus: 5, root: 'disk', output });
  assert.equal(sha(), before, 'QEMU snapshot=on: the disk image is unchanged');
});

test('a kernel whose modules lack virtio_blk is refused before QEMU, naming the module', async () => {
  const [real, dir, cacheDir] = await Promise.all([testKernel('arm64'), tmpDir('vmimg-no-modules-'), tmpDir('vmimg-no-modules-cache-')]);
  const kdir = join(dir, 'custom-kernel');
  mkdirSync(join(kdir, 'modules'), { recursive: true });
  symlinkSync(real, join(kdir, 'vmlinuz'));
  writeFileSync(join(kdir, 'modules.dep'), 'kernel/fs/ext4/ext4.ko:\nkernel/drivers/virtio/virtio_pci.ko:\n');
  writeFileSync(join(kdir, 'modules.builtin'), 'kernel/crypto/crc32c_generic.ko\nkernel/drivers/virtio/virtio_mmio.ko\n');
  for (const m of ['ext4', 'virtio_pci']) writeFileSync(join(kdir, 'modules', `${m}.ko`), '');
  const image = await loadFromTar(SAMPLE, { platform: parsePlatform('arm64'), cacheDir });
  await assert.rejects(bootImage(image, { kernel: join(kdir, 'vmlinuz'), root: 'disk' }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_NOT_FOUND'), String(e));
    assert.match(e.message, /kernel module virtio_blk .*neither a module file nor built in/);
    return true;
  });
});
