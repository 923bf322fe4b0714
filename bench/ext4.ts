/**
 * ext4 export and disk boots, side by side in one run (`node --import tsx bench/ext4.ts`, also run
 * by `npm run bench`):
 *  - `exportExt4` of the Debian bench image vs the rootful peer pipeline `umoci unpack` +
 *    `mkfs.ext4 -d` (goal ≤ 0.5×), and vs `tar -c` of the unpacked rootfs (goal ≤ 1.2×);
 *  - QEMU (TCG) boots to the entrypoint from an ext4 disk vs from an initramfs: the busybox sample on
 *    both arches, the Debian image on amd64 (goal: Debian from disk ≤ busybox initramfs + 20 %).
 */
import { rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bootImage, ensureKernel, type BootArch, type RootKind } from '../src/boot/index.js';
import { exportExt4 } from '../src/export/index.js';
import { loadFromTar, type Image } from '../src/image/index.js';
import { parsePlatform } from '../src/platform/index.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { median, rounds, sh, sideBySide } from './util.js';

const KERNELS = resolve('test', '.cache', 'kernels');
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

async function exportBench(work: string): Promise<Image> {
  const layout = await debianLayout();
  const archive = join(work, 'debian.oci.tar');
  sh(`skopeo copy --quiet oci:${layout}:bench oci-archive:${archive}:bench`);
  const image = await loadFromTar(archive, { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  const ours = join(work, 'ours.img');
  const bundle = join(work, 'bundle');
  let size = 0;
  const m = await sideBySide({
    'vmimg ext4': async () => {
      rmSync(ours, { force: true });
      size = (await exportExt4(image, ours, { init: false })).sizeBytes;
    },
    'umoci unpack + mkfs.ext4 -d': () => {
      rmSync(bundle, { recursive: true, force: true });
      sh(`umoci unpack --image ${layout}:bench ${bundle} >/dev/null && mkfs.ext4 -q -F -b 4096 -d ${bundle}/rootfs ${work}/peer.img ${size / 4096}`);
    },
    'tar -c': () => sh(`tar -C ${bundle}/rootfs --xattrs -cf ${work}/peer.tar .`),
  });
  const used = statSync(ours).blocks * 512;
  console.log(`ext4 export (Debian minbase + 6 layers, ${mib(size)} image, ${mib(used)} on disk; median of ${rounds}):`);
  console.log(`  vmimg exportExt4 ${sec(m['vmimg ext4']!)}`);
  console.log(`  vs umoci unpack + mkfs.ext4 -d ${sec(m['umoci unpack + mkfs.ext4 -d']!)}: ratio ${(m['vmimg ext4']! / m['umoci unpack + mkfs.ext4 -d']!).toFixed(2)}× (goal ≤ 0.5×)`);
  console.log(`  vs tar -c of the unpacked rootfs ${sec(m['tar -c']!)}: ratio ${(m['vmimg ext4']! / m['tar -c']!).toFixed(2)}× (goal ≤ 1.2×)`);
  return image;
}

/** Median time from QEMU's start to the guest init's start line (root preparation not counted). */
async function toEntrypoint(arch: BootArch, image: Image, root: RootKind, memoryMiB: number): Promise<number> {
  const kernel = (await ensureKernel(arch, { kernelDir: KERNELS })).path;
  const starts: number[] = [];
  for (let r = 0; r < Math.min(rounds, 2); r++) {
    const b = await bootImage(image, { kernel, kernelDir: KERNELS, root, memoryMiB, timeoutMs: 300_000 });
    if (b.exitStatus === undefined || b.startMs === undefined) throw new Error(`${arch} ${root} boot failed:\n${b.output}`);
    starts.push(b.startMs);
  }
  return median(starts);
}

async function main(): Promise<void> {
  const work = await tmpDir('vmimg-bench-ext4-');
  const debian = await exportBench(work);
  console.log(`boot to the entrypoint under QEMU TCG (no KVM), median of ${Math.min(rounds, 2)}, root preparation not counted:`);
  const sample = resolve('images', 'busybox-multiarch.oci.tar');
  let busyboxInitramfs = 0;
  for (const arch of ['amd64', 'arm64'] as const) {
    const image = await loadFromTar(sample, { platform: parsePlatform(arch), cacheDir: join(work, 'cache') });
    const [ram, disk] = [await toEntrypoint(arch, image, 'initramfs', 512), await toEntrypoint(arch, image, 'disk', 512)];
    if (arch === 'amd64') busyboxInitramfs = ram;
    console.log(`  busybox ${arch}: initramfs ${sec(ram)}, disk ${sec(disk)} (${(disk / ram).toFixed(2)}×)`);
  }
  const [ram, disk] = [await toEntrypoint('amd64', debian, 'initramfs', 1024), await toEntrypoint('amd64', debian, 'disk', 512)];
  console.log(`  debian amd64: initramfs (1024 MiB; 512 is too small) ${sec(ram)}, disk (512 MiB) ${sec(disk)} (${(disk / ram).toFixed(2)}×)`);
  console.log(`  debian amd64 from disk vs busybox amd64 from initramfs: ${(disk / busyboxInitramfs).toFixed(2)}× (goal ≤ 1.2×)`);
}

await main();
