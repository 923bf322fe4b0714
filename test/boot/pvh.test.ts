// amd64 boots of the kernel's uncompressed vmlinux through QEMU's PVH entry (src/boot/pvh.ts): the
// Debian bzImage's payload decompressed once beside it, judged by binutils' readelf (an x86-64 ELF
// executable carrying the Xen PHYS32_ENTRY note) and by booting the busybox sample through it.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bootImage } from '../../src/boot/index.js';
import { bzImagePayload, hasPvhNote, pvhKernel } from '../../src/boot/pvh.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { testKernel } from './kernels.js';

/** A copy of the amd64 test kernel in a fresh `linux-image-*` dir (the cache layout pvhKernel writes beside). */
async function kernelCopy(): Promise<string> {
  const dir = join(await tmpDir('vmimg-pvh-'), 'linux-image-test-amd64');
  mkdirSync(dir);
  copyFileSync(await testKernel('amd64'), join(dir, 'vmlinuz'));
  return join(dir, 'vmlinuz');
}

test('amd64: the Debian bzImage is decompressed once into a vmlinux with the PVH entry note, and the sample boots through it', async () => {
  requireTools(['readelf', 'xz', 'qemu-system-x86_64']);
  const vmlinuz = await kernelCopy();
  assert.equal(bzImagePayload(readFileSync(vmlinuz))?.format, 'xz', 'Debian compresses its amd64 kernels with xz');
  const logs: string[] = [];
  const vmlinux = await pvhKernel(vmlinuz, (m) => logs.push(m));
  assert.equal(vmlinux, join(vmlinuz, '..', 'vmlinux'));
  assert.match(logs.join('\n'), /uncompressed through its PVH entry/);
  const header = await run('readelf', ['-h', vmlinux]);
  assert.match(header, /Type:\s+EXEC/);
  assert.match(header, /Machine:\s+Advanced Micro Devices X86-64/);
  assert.match(await run('readelf', ['-n', vmlinux]), /^\s+Xen\s+0x[0-9a-f]+\s+Unknown note type: \(0x00000012\)/m);
  assert.equal(await pvhKernel(vmlinuz), vmlinux, 'made once, then reused');

  const image = await loadFromTar(join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar'), { platform: parsePlatform('amd64'), cacheDir: await tmpDir('vmimg-pvh-cache-') });
  const r = await bootImage(image, { kernel: vmlinuz, root: 'initramfs', timeoutMs: 300_000 });
  assert.equal(r.guestOutput, 'amd64\nWelcome to the vmimg sample (amd64).\n', r.output);
  assert.equal(r.exitStatus, 0, r.output);
});

test('a kernel outside the cache layout, or one without a payload vmimg can decompress, boots as it is', async () => {
  const other = join(await tmpDir('vmimg-pvh-other-'), 'bzImage');
  copyFileSync(await testKernel('amd64'), other);
  assert.equal(await pvhKernel(other), other, 'not <linux-image-*>/vmlinuz: left alone');
  assert.ok(!existsSync(join(other, '..', 'vmlinux')));

  const dir = join(await tmpDir('vmimg-pvh-bad-'), 'linux-image-bad-amd64');
  mkdirSync(dir);
  const bz = Buffer.from(readFileSync(await testKernel('amd64')));
  const payload = bzImagePayload(bz)!;
  payload.bytes.fill(0x42, 0, 64); // an unknown compression
  writeFileSync(join(dir, 'vmlinuz'), bz);
  assert.equal(await pvhKernel(join(dir, 'vmlinuz')), join(dir, 'vmlinuz'));
  assert.ok(existsSync(join(dir, 'vmlinux.none')), 'the verdict is kept, not recomputed at every boot');
  assert.equal(hasPvhNote(Buffer.from('\x7fELF not really')), false);
});
