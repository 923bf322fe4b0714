/**
 * ext4 export and disk boots, side by side in one run (`node --import tsx bench/ext4.ts [export] [boot]`,
 * also run by `npm run bench`):
 *  - `exportExt4` of the Debian bench image vs the rootful peer pipeline `umoci unpack` +
 *    `mkfs.ext4 -d` (goal ≤ 0.5×), and vs `tar -c` of the unpacked rootfs (goal ≤ 1.2×);
 *  - QEMU (TCG) boots to the entrypoint from an ext4 disk vs from an initramfs: the busybox sample on
 *    both arches, the Debian bench image (minbase, amd64) and the Debian packages test image (arm64)
 *    (goal: Debian from disk ≤ busybox initramfs + 20 %, same arch).
 * Every section prints the load average: the host is shared, so times need their context.
 */
import { rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bootImage, ensureKernel, type BootArch, type RootKind } from '../src/boot/index.js';
import { exportExt4 } from '../src/export/index.js';
import { loadFromTar, type Image } from '../src/image/index.js';
import { parsePlatform } from '../src/platform/index.js';
import { debianArchive } from '../test/boot/debian-fixture.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { loadAverage, median, rounds, sh, sideBySide } from './util.js';

const KERNELS = resolve('test', '.cache', 'kernels');
const BOOT_ROUNDS = Math.min(rounds, 2);
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

async function exportBench(work: string, debian: Image, layout: string): Promise<void> {
  const ours = join(work, 'ours.img');
  const bundle = join(work, 'bundle');
  let size = 0;
  const cpu: Record<string, number> = {};
  console.log(`ext4 export, started ${loadAverage()}`);
  const m = await sideBySide(
    {
      'vmimg ext4': async () => {
        rmSync(ours, { force: true });
        size = (await exportExt4(debian, ours, { init: false })).sizeBytes;
      },
      'vmimg ext4, verify: false': async () => {
        rmSync(ours, { force: true });
        await exportExt4(debian, ours, { init: false, verify: false });
      },
      'umoci unpack + mkfs.ext4 -d': () => {
        rmSync(bundle, { recursive: true, force: true });
        sh(`umoci unpack --image ${layout}:bench ${bundle} >/dev/null && mkfs.ext4 -q -F -b 4096 -d ${bundle}/rootfs ${work}/peer.img ${size / 4096}`);
      },
      'tar -c': () => sh(`tar -C ${bundle}/rootfs --xattrs -cf ${work}/peer.tar .`),
    },
    cpu,
  );
  const used = statSync(ours).blocks * 512;
  const [ours_, peer, tar] = [m['vmimg ext4']!, m['umoci unpack + mkfs.ext4 -d']!, m['tar -c']!];
  console.log(`ext4 export (Debian minbase + 6 layers, ${mib(size)} image, ${mib(used)} on disk; median of ${rounds}):`);
  console.log(`  vmimg exportExt4 ${sec(ours_)} (CPU ${sec(cpu['vmimg ext4']!)}, threads included)`);
  console.log(`  vs umoci unpack + mkfs.ext4 -d ${sec(peer)}: ratio ${(ours_ / peer).toFixed(2)}× (goal ≤ 0.5×)`);
  console.log(`  vs tar -c of the unpacked rootfs ${sec(tar)}: ratio ${(ours_ / tar).toFixed(2)}× (goal ≤ 1.2×)`);
  const unverified = m['vmimg ext4, verify: false']!;
  console.log(`  without the sha256 check of every file (verify: false) ${sec(unverified)} (CPU ${sec(cpu['vmimg ext4, verify: false']!)}): ${(unverified / tar).toFixed(2)}× tar -c`);
  console.log(`  finished ${loadAverage()}`);
}

/** Median time from QEMU's start to the guest init's start line (root preparation not counted). */
async function toEntrypoint(arch: BootArch, image: Image, root: RootKind, memoryMiB: number): Promise<number> {
  const kernel = (await ensureKernel(arch, { kernelDir: KERNELS })).path;
  const starts: number[] = [];
  for (let r = 0; r < BOOT_ROUNDS; r++) {
    const b = await bootImage(image, { kernel, kernelDir: KERNELS, root, memoryMiB, timeoutMs: 300_000 });
    if (b.exitStatus === undefined || b.startMs === undefined) throw new Error(`${arch} ${root} boot failed:\n${b.output}`);
    starts.push(b.startMs);
  }
  return median(starts);
}

async function bootBench(work: string, debian: Image): Promise<void> {
  console.log(`boot to the entrypoint under QEMU TCG (no KVM), median of ${BOOT_ROUNDS}, root preparation not counted; started ${loadAverage()}`);
  const sample = resolve('images', 'busybox-multiarch.oci.tar');
  const cacheDir = join(work, 'cache');
  const busyboxInitramfs: Record<string, number> = {};
  for (const arch of ['amd64', 'arm64'] as const) {
    const image = await loadFromTar(sample, { platform: parsePlatform(arch), cacheDir });
    const [ram, disk] = [await toEntrypoint(arch, image, 'initramfs', 512), await toEntrypoint(arch, image, 'disk', 512)];
    busyboxInitramfs[arch] = ram;
    console.log(`  busybox ${arch}: initramfs ${sec(ram)}, disk ${sec(disk)} (${(disk / ram).toFixed(2)}×)`);
  }
  const pkgs = await loadFromTar(await debianArchive('arm64'), { platform: parsePlatform('arm64'), cacheDir });
  const debians: [string, BootArch, Image, number][] = [
    ['debian minbase amd64', 'amd64', debian, 1024], // 512 MiB is too small for it as an initramfs
    ['debian packages arm64', 'arm64', pkgs, 512],
  ];
  for (const [name, arch, image, ramMiB] of debians) {
    const [ram, disk] = [await toEntrypoint(arch, image, 'initramfs', ramMiB), await toEntrypoint(arch, image, 'disk', 512)];
    console.log(`  ${name}: initramfs (${ramMiB} MiB) ${sec(ram)}, disk (512 MiB) ${sec(disk)} (${(disk / ram).toFixed(2)}×)`);
    console.log(`  ${name} from disk vs busybox ${arch} from initramfs: ${(disk / busyboxInitramfs[arch]!).toFixed(2)}× (goal ≤ 1.2×)`);
  }
  console.log(`  finished ${loadAverage()}`);
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const want = (s: string): boolean => only.length === 0 || only.includes(s);
  const work = await tmpDir('vmimg-bench-ext4-');
  const layout = await debianLayout();
  const archive = join(work, 'debian.oci.tar');
  sh(`skopeo copy --quiet oci:${layout}:bench oci-archive:${archive}:bench`);
  const debian = await loadFromTar(archive, { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  if (want('export')) await exportBench(work, debian, layout);
  if (want('boot')) await bootBench(work, debian);
}

await main();
