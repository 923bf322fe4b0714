/**
 * Boots a container image as a QEMU guest (TCG: no KVM needed), spelled out step by step:
 * open the image, look inside with ContainerFS, export an initramfs with vmimg's guest init, fetch a
 * stock Debian kernel, run QEMU on the serial console, report the command's exit status.
 * (`bootImage()` in src/boot/qemu.ts does the same in one call; `vmimg boot` wraps that.)
 *
 * Run: node --import tsx examples/boot.ts IMAGE [--arch amd64|arm64] [--kernel VMLINUZ] [-- ARGS...]
 * IMAGE is an image directory (vmimg export) or a docker-save / OCI archive tar, e.g.
 *   node --import tsx examples/boot.ts images/busybox-multiarch.oci.tar --arch arm64
 *   node --import tsx examples/boot.ts images/busybox-multiarch.oci.tar -- -c 'uname -m; exit 3'
 * Needs qemu-system-x86 / qemu-system-arm; the kernel comes from apt-get (Debian) unless --kernel.
 * Imports the package's public entry points (`vmimg`, `vmimg/export`, `vmimg/vfs`): build first (npm run build).
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadFromDir, loadFromTar, parsePlatform, type Image } from 'vmimg';
import { EXIT_STATUS_RE, ensureKernel, exportInitramfs, qemuCommand, type BootArch } from 'vmimg/export';
import { ContainerFS } from 'vmimg/vfs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { arch: { type: 'string' }, kernel: { type: 'string' } },
});
const [source, ...command] = positionals;
if (source === undefined) {
  console.error('usage: boot.ts IMAGE [--arch amd64|arm64] [--kernel VMLINUZ] [-- ARGS...]');
  process.exit(2);
}
const ARCHES: Record<string, BootArch> = { amd64: 'amd64', x86_64: 'amd64', arm64: 'arm64', aarch64: 'arm64' };
const arch = values.arch === undefined ? undefined : ARCHES[values.arch];
if (values.arch !== undefined && arch === undefined) {
  console.error(`boot.ts: --arch ${values.arch}: QEMU boots amd64 (x86_64) or arm64 (aarch64) guests only`);
  process.exit(2);
}
const platform = arch ? { platform: parsePlatform(arch) } : {};

// 1. The image: an image directory, or a tar loaded into a throwaway cache.
const work = await mkdtemp(join(tmpdir(), 'vmimg-example-boot-'));
const image: Image = (await stat(source)).isDirectory()
  ? await loadFromDir(source, platform)
  : await loadFromTar(source, { ...platform, cacheDir: join(work, 'cache') });
const guestArch: BootArch = image.config.architecture === 'arm64' ? 'arm64' : 'amd64';

// 2. A look inside without unpacking: what the guest init will run, and what it runs with.
const fs = await ContainerFS.open(image.dir);
console.error(`image: ${image.config.source.platform}, /bin/sh -> ${fs.exists('/bin/sh') ? fs.realpath('/bin/sh') : 'MISSING'}`);
await fs.close();

try {
  // 3. The initramfs: the merged root as a gzip newc cpio, plus /.vmimg/init and /.vmimg/config.
  const initrd = join(work, 'root.cpio.gz');
  const exported = await exportInitramfs(image, createWriteStream(initrd), { ...(command.length ? { command } : {}), gzip: 1 });
  console.error(`initramfs: ${exported.entries} entries, runs ${JSON.stringify(exported.argv)}`);

  // 4. A kernel: --kernel, or the current Debian linux-image package (cached after the first time).
  const kernel = values.kernel ?? (await ensureKernel(guestArch, { onLog: (m) => console.error(m) })).path;

  // 5. QEMU on the serial console; the guest powers off after printing "vmimg: exit status N".
  const { bin, args } = qemuCommand(guestArch, kernel, initrd);
  console.error(`${bin} ${args.join(' ')}`);
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let console_ = '';
  child.stdout.on('data', (b: Buffer) => {
    process.stdout.write(b);
    console_ += b.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
  const status = EXIT_STATUS_RE.exec(console_)?.[1];
  console.error(status === undefined ? `no exit status from the guest (qemu exit ${code})` : `guest command exited ${status}`);
  process.exitCode = status === undefined ? 1 : Number(status);
} finally {
  await rm(work, { recursive: true, force: true });
}
