/**
 * A static busybox for the guest architecture, from Debian's busybox-static package: the stage-one
 * initramfs of a disk boot runs on it. Cached as `<kernelDir>/busybox-static-<arch>/busybox`,
 * fetched once with `apt-get download` (like the kernel); a package already in that directory is used.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, VmimgError } from '../errors.js';
import { extractDebFile, type BootArch } from './kernel.js';
import { runTool } from './tools.js';

/** Path of a static busybox for `arch`, fetching busybox-static:<arch> the first time. */
export async function ensureBusybox(arch: BootArch, kernelDir: string, onLog?: (m: string) => void): Promise<string> {
  const dir = join(kernelDir, `busybox-static-${arch}`);
  const path = join(dir, 'busybox');
  if (existsSync(path)) return path;
  await mkdir(kernelDir, { recursive: true });
  const tmp = await mkdtemp(join(kernelDir, `.busybox-${arch}.tmp-`));
  try {
    onLog?.(`downloading busybox-static:${arch} (apt-get download) for the disk boot's stage one`);
    await runTool('apt-get', ['download', '-q', `busybox-static:${arch}`], 'apt', { cwd: tmp });
    const deb = (await readdir(tmp)).find((n) => n.endsWith('.deb'));
    if (!deb) throw new VmimgError(ErrorCode.NOT_FOUND, `apt-get download busybox-static:${arch} produced no .deb`);
    await extractBusybox(join(tmp, deb), join(tmp, 'busybox'));
    await rm(join(tmp, deb));
    await rename(tmp, dir).catch((err) => {
      if (!existsSync(path)) throw err; // a parallel fetch won
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return path;
}

/** Streams `dpkg-deb --fsys-tarfile` and keeps `bin/busybox`. */
export function extractBusybox(deb: string, dest: string): Promise<void> {
  return extractDebFile(deb, /^(\.\/)?(usr\/)?bin\/busybox$/, dest, 0o755, 'bin/busybox');
}
