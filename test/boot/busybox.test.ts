// End to end: the shipped busybox sample (images/busybox-multiarch.oci.tar) loaded per arch, exported
// as an initramfs with the guest init, booted under QEMU (TCG) on a stock Debian kernel; the
// entrypoint's output and the exit-status line are read from the serial console.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { bootImage, ensureKernel, type BootOptions, type BootResult } from '../../src/boot/index.js';
import { kernelCmdParam } from '../../src/export/index.js';
import { loadFromTar, type Image } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { buildBusyboxLayout, toOciArchive } from '../helpers/busybox.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTools, tmpDir } from '../helpers/tools.js';
import { testKernel, type Arch } from './kernels.js';

const SAMPLE = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');
const QEMU: Record<Arch, string> = { amd64: 'qemu-system-x86_64', arm64: 'qemu-system-aarch64' };
const BOOT_TIMEOUT_MS = 300_000; // a hang guard: TCG boots take seconds here, never asserted

const cache = tmpDir('vmimg-boot-cache-');
const images: Partial<Record<Arch, Promise<Image>>> = {};
function sample(arch: Arch): Promise<Image> {
  images[arch] ??= cache.then((cacheDir) => loadFromTar(SAMPLE, { platform: parsePlatform(arch), cacheDir }));
  return images[arch]!;
}

async function boot(arch: Arch, options: BootOptions = {}, image: Promise<Image> = sample(arch)): Promise<BootResult> {
  requireTools([QEMU[arch]]);
  const [img, kernel] = await Promise.all([image, testKernel(arch)]);
  const r = await bootImage(img, { kernel, timeoutMs: BOOT_TIMEOUT_MS, ...options });
  assert.equal(r.timedOut, false, `QEMU ${arch} did not finish in ${BOOT_TIMEOUT_MS} ms; console:\n${r.output}`);
  return r;
}

test('arm64: a boot that ends without an exit status is ERR_BOOT_FAILED naming the kernel panic', async () => {
  requireTools([QEMU.arm64]);
  const [img, kernel] = await Promise.all([sample('arm64'), testKernel('arm64')]);
  // no init in the initramfs: the kernel falls back to a root device there is none of, and panics
  await assert.rejects(bootImage(img, { kernel, timeoutMs: BOOT_TIMEOUT_MS, append: 'rdinit=/no/such/init' }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_BOOT_FAILED'), String(e));
    assert.match(e.message, /^the guest stopped without reporting an exit status: .*Kernel panic - not syncing: VFS: Unable to mount root fs/);
    assert.match(String((e.details as { output: string }).output), /Kernel panic/);
    return true;
  });
});

test('a missing QEMU or kernel is an ERR_NOT_FOUND saying what to install', async () => {
  const image = await sample('arm64');
  const path = process.env.PATH;
  let pending: Promise<unknown>;
  process.env.PATH = '/nonexistent';
  try {
    pending = bootImage(image); // finds the binary synchronously, before its first await
  } finally {
    process.env.PATH = path;
  }
  await assert.rejects(pending, (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_NOT_FOUND'));
    assert.match((e as { hint: string }).hint, /apt-get install qemu-system-arm/);
    return true;
  });
  const empty = await tmpDir('vmimg-no-kernels-');
  await assert.rejects(ensureKernel('amd64', { kernelDir: empty, download: false }), (e: unknown) => {
    assert.ok(isVmimgError(e, 'ERR_NOT_FOUND'));
    assert.match((e as { hint: string }).hint, /--kernel PATH.*linux-image-amd64/);
    return true;
  });
  await assert.rejects(bootImage(image, { arch: 'amd64' }), (e: unknown) => isVmimgError(e, 'ERR_PLATFORM_MISMATCH'));
});

describe('busybox sample under QEMU', { concurrency: 2 }, () => {
  for (const arch of ['amd64', 'arm64'] as const) {
    test(`${arch}: the entrypoint prints /etc/arch and /etc/motd, then "vmimg: exit status 0"`, async () => {
      const r = await boot(arch);
      assert.equal(r.guestOutput, `${arch}\nWelcome to the vmimg sample (${arch}).\n`, r.output);
      assert.equal(r.exitStatus, 0, r.output);
      assert.match(r.output, /^vmimg: exit status 0\r?$/m);
      assert.equal(r.qemuExitCode, 0, 'the guest powered the VM off');
    });
  }

  test('amd64: a command given at export time runs with the image env and working dir, with /proc, /sys, /dev and /tmp mounted; its exit status comes back', async () => {
    const mounts = 'while read -r dev dir type rest; do echo "$dir $type"; done < /proc/mounts | grep -E "^/(proc proc|sys sysfs|dev devtmpfs|tmp tmpfs)$"';
    const r = await boot('amd64', { command: ['-c', `echo "uid=$(id -u) cwd=$(pwd) sample=$VMIMG_SAMPLE"; ${mounts}; exit 7`] });
    const [first, ...mounted] = (r.guestOutput ?? '').trimEnd().split('\n');
    assert.equal(first, 'uid=0 cwd=/ sample=1', r.output);
    assert.deepEqual(mounted.sort(), ['/dev devtmpfs', '/proc proc', '/sys sysfs', '/tmp tmpfs'], r.output);
    assert.equal(r.exitStatus, 7, r.output);
  });

  test('arm64: vmimg.cmd= on the kernel command line replaces the command (decoded by busybox base64); kpti=0 took', async () => {
    // Debian's arm64 kernel forces page-table isolation on under KASLR; vmimg's kpti=0 turns it off (qemu.ts)
    const kpti = 'dmesg | grep -o "page table isolation forced [A-Z]*"';
    const r = await boot('arm64', { append: kernelCmdParam(['/bin/sh', '-c', `echo "from the cmdline: $0 $1"; ${kpti}`, 'a b', "it's"]) });
    assert.equal(r.guestOutput, "from the cmdline: a b it's\npage table isolation forced OFF\n", r.output);
    assert.equal(r.exitStatus, 0);
  });

  test('amd64: the image user (app, 1000:1000) and working dir apply; busybox su switches without setpriv', async () => {
    const image = (async () => {
      const built = await buildBusyboxLayout({
        arch: 'amd64', tag: 'boot-user', user: 'app', workingDir: '/home/app',
        cmd: ['-c', 'echo "$(id -u):$(id -g) $(pwd) $VMIMG_FIXTURE HOME=$HOME"; touch /tmp/x && echo tmp-writable'],
      });
      const tar = await toOciArchive(built.ref, join(await tmpDir('vmimg-boot-user-'), 'user.tar'), 'latest');
      return loadFromTar(tar, { platform: parsePlatform('amd64'), cacheDir: await cache });
    })();
    const r = await boot('amd64', {}, image);
    assert.equal(r.guestOutput, '1000:1000 /home/app busybox HOME=/home/app\ntmp-writable\n', r.output);
    assert.equal(r.exitStatus, 0);
  });
});
