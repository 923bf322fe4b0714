/**
 * Export and boot benchmark, side by side in one run, as ratios:
 *  1. Debian image (bench/debian.ts) → tar, vs `tar -c` of `umoci unpack`'s rootfs   (both to a file)
 *  2. Debian image → initramfs (cpio + gzip -6), vs `tar -c | gzip -6` of the same rootfs
 *     (the peer's rootfs is unpacked once beforehand and not timed: generous to the peer;
 *      the umoci unpack time is reported too)
 *  3. boot to entrypoint under QEMU TCG (no KVM): the busybox sample, amd64 and arm64, and the Debian image (amd64)
 *     — time from QEMU start to the guest init's `vmimg: start` line, and to power-off.
 * Run: node --import tsx bench/export.ts [export] [boot]   (both when neither is named; root: umoci unpack; skopeo, umoci, qemu-system-*, apt-get for kernels)
 */
import { createWriteStream, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bootImage, ensureKernel, exportInitramfs, exportTar, type BootArch } from '../src/export/index.js';
import { loadFromTar, type Image } from '../src/image/index.js';
import { parsePlatform } from '../src/platform/index.js';
import { tmpDir } from '../test/helpers/tools.js';
import { debianLayout } from './debian.js';
import { median, rounds, sh, shx, sideBySide } from './util.js';

const KERNELS = resolve('test', '.cache', 'kernels');
/** Interleaved rounds of the tar rows at least (VMIMG_BENCH_ROUNDS sets the others'). */
const TAR_ROUNDS = 7;

const mib = (path: string): string => `${(statSync(path).size / 2 ** 20).toFixed(1)} MiB`;
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** The Debian image loaded into a fresh cache; with `timed`, its tar and initramfs exports timed against the peers'. */
async function exportBench(work: string, timed: boolean): Promise<Image> {
  const layout = await debianLayout();
  const archive = join(work, 'debian.oci.tar');
  sh(`skopeo copy --quiet oci:${layout}:bench oci-archive:${archive}:bench`);
  const image = await loadFromTar(archive, { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  if (!timed) return image;
  const bundle = join(work, 'bundle');
  const t = performance.now();
  sh(`umoci unpack --image ${layout}:bench ${bundle}`);
  const unpackMs = performance.now() - t;
  const rootfs = join(bundle, 'rootfs');
  const ours = { tar: join(work, 'ours.tar'), cpio: join(work, 'ours.cpio.gz') };
  const peer = { tar: join(work, 'peer.tar'), gz: join(work, 'peer.tar.gz') };
  // The tar rows take ~0.4-0.8 s, so one run moves them by tens of percent: more interleaved rounds
  // than the initramfs rows (~10 s each), after an untimed warm-up round (the first two exports in a
  // process cost 0.8-1.1 and 0.6-0.75 CPU-s while V8 compiles, the later ones 0.4-0.5). Before each timed run: the previous output removed and
  // `sync` (untimed), so neither side truncates a file or meets writeback the other left behind.
  const fresh = (path: string) => () => rmSync(path, { force: true });
  const cpu: Record<string, number> = {};
  const tarCpu: number[] = [];
  const tarAll: Record<string, number[]> = {};
  const tarFirst: Record<string, number> = {};
  const tarRounds = Math.max(rounds, TAR_ROUNDS);
  const t1 = await sideBySide({
    'vmimg tar': { setup: fresh(ours.tar), run: () => exportTar(image, createWriteStream(ours.tar)) },
    'tar -c': {
      setup: fresh(peer.tar),
      run: async () => {
        const { cpuMs } = await shx(`tar -C ${rootfs} --xattrs -cf ${peer.tar} .`);
        tarCpu.push(cpuMs);
      },
    },
  }, cpu, { rounds: tarRounds, settle: true, all: tarAll, warmup: 1, first: tarFirst });
  const t2 = await sideBySide({
    'vmimg initramfs': { setup: fresh(ours.cpio), run: () => exportInitramfs(image, createWriteStream(ours.cpio)) },
    'tar -c | gzip': { setup: fresh(peer.gz), run: () => shx(`tar -C ${rootfs} --xattrs -cf - . | gzip -6 > ${peer.gz}`) },
  }, undefined, { settle: true });
  const m = { ...t1, ...t2 };
  const ratios = tarAll['vmimg tar']!.map((v, i) => v / tarAll['tar -c']![i]!);
  console.log(`export (Debian minbase + 6 layers, median of ${rounds} unless said; umoci unpack itself took ${sec(unpackMs)}, not counted):`);
  console.log(`  tar:       vmimg ${sec(m['vmimg tar']!)} (${mib(ours.tar)}) vs tar -c ${sec(m['tar -c']!)} (${mib(peer.tar)})  ratio ${(m['vmimg tar']! / m['tar -c']!).toFixed(2)}× (target ≤ 1.2×; median of ${tarRounds} after one untimed warm-up round, whose ratio was ${(tarFirst['vmimg tar']! / tarFirst['tar -c']!).toFixed(2)}× with V8's JIT cold; each round's ratio ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×, median ${median(ratios).toFixed(2)}×); CPU ${sec(cpu['vmimg tar']!)} (all threads) vs ${sec(median(tarCpu))}`);
  console.log(`  initramfs: vmimg ${sec(m['vmimg initramfs']!)} (${mib(ours.cpio)}) vs tar -c | gzip ${sec(m['tar -c | gzip']!)} (${mib(peer.gz)})  ratio ${(m['vmimg initramfs']! / m['tar -c | gzip']!).toFixed(2)}× (target ≤ 0.9×)`);
  console.log(`  initramfs vs umoci unpack + tar -c | gzip: ratio ${(m['vmimg initramfs']! / (unpackMs + m['tar -c | gzip']!)).toFixed(2)}×`);
  return image;
}

async function bootBench(arch: BootArch, image: Image, label: string, command?: string[]): Promise<void> {
  const kernel = (await ensureKernel(arch, { kernelDir: KERNELS })).path;
  const starts: number[] = [];
  const totals: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const b = await bootImage(image, { kernel, timeoutMs: 300_000, memoryMiB: 1024, ...(command ? { command } : {}) });
    if (b.exitStatus !== 0 || b.startMs === undefined) throw new Error(`${label} boot failed:\n${b.output}`);
    starts.push(b.startMs);
    totals.push(b.durationMs);
  }
  console.log(`  ${label.padEnd(16)} to entrypoint ${sec(median(starts))}, to power-off ${sec(median(totals))}`);
}

async function main(): Promise<void> {
  const parts = process.argv.slice(2);
  const want = (part: string): boolean => parts.length === 0 || parts.includes(part);
  const work = await tmpDir('vmimg-bench-export-');
  const debian = await exportBench(work, want('export'));
  if (!want('boot')) return;
  console.log(`boot under QEMU TCG (no KVM), median of ${rounds}, initramfs export (gzip -1) excluded from QEMU times:`);
  const sample = resolve('images', 'busybox-multiarch.oci.tar');
  for (const arch of ['amd64', 'arm64'] as const) {
    const image = await loadFromTar(sample, { platform: parsePlatform(arch), cacheDir: join(work, 'cache') });
    await bootBench(arch, image, `busybox ${arch}`);
  }
  await bootBench('amd64', debian, 'debian amd64', ['cat', '/etc/debian_version']);
}

await main();
