/**
 * The guest's root for one boot: an initramfs of the whole image (held in guest RAM), or an ext4
 * disk (virtio-blk) with a small stage-one initramfs that mounts it. The default picks the disk when
 * the image would not fit comfortably in the guest's memory as an initramfs.
 */
import { createWriteStream, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Image } from '../image/index.js';
import { commandLine } from '../image/runtime-config.js';
import { exportExt4 } from '../export/ext4/index.js';
import { kernelCmdParam } from '../export/guest-init.js';
import { exportInitramfs } from '../export/initramfs.js';
import { withFs } from '../export/source.js';
import { ErrorCode, VmimgError } from '../errors.js';
import { ensureBusybox } from './busybox.js';
import type { BootArch } from './kernel.js';
import { checkInitramfsFits, initramfsMemoryMiB } from './memory.js';
import { ensureModules } from './modules.js';
import { writeStageOne } from './stage-one.js';

export type RootKind = 'disk' | 'initramfs';

/** An initramfs root is chosen only when it needs at most this share of the guest's memory. */
const COMFORTABLE = 0.75;

export interface RootOptions {
  root?: RootKind;
  command?: string[];
  entrypoint?: string[];
  /** Boot this ext4 image (exported with the guest init) instead of exporting one. */
  disk?: string;
  /** Let the guest's writes reach `disk` (default: QEMU snapshot=on, the file never changes). */
  persist?: boolean;
  kernelDir?: string;
  onLog?: (message: string) => void;
}

export interface PreparedRoot {
  kind: RootKind;
  initrd: string;
  /** The ext4 image and whether writes reach it. */
  disk?: { path: string; persist: boolean };
  /** Kernel parameters the root needs (the command for a disk exported without it). */
  append: string[];
  /** RAM an initramfs of the image needs (MiB), for messages. */
  needMiB: number;
}

/**
 * Refuses contradictory root options before anything is fetched or exported (ERR_INVALID_ARGUMENT):
 * `persist` without `disk` (nothing would keep the writes), `root: 'initramfs'` with `disk` (a disk
 * implies `--root disk`), and an existing `disk` that is not ext4 (no superblock magic 0xEF53 at byte
 * 1080; it would boot and fail in the guest after the kernel's whole start).
 */
export async function checkRootOptions(o: Pick<RootOptions, 'root' | 'disk' | 'persist'>): Promise<void> {
  if (o.persist === true && o.disk === undefined) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, '--persist needs --disk FILE: without one the guest writes to a throwaway disk', { hint: 'Add --disk vm.img (made now if missing, and kept).' });
  }
  if (o.root === 'initramfs' && o.disk !== undefined) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--root initramfs contradicts --disk ${o.disk} (a disk boots with --root disk)`);
  }
  if (o.disk === undefined || !existsSync(o.disk)) return;
  const magic = Buffer.alloc(2);
  const fd = await open(o.disk, 'r');
  try {
    await fd.read(magic, 0, 2, 1080);
  } finally {
    await fd.close();
  }
  if (magic.readUInt16LE(0) !== 0xef53) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--disk ${o.disk} is not an ext4 image (no ext2/3/4 superblock at byte 1024)`, {
      hint: 'Give a disk vmimg exported (vmimg export vm.img IMAGE), or a path that does not exist yet to make one.',
    });
  }
}

/** The root to boot: as asked; else a disk when one is given or the initramfs would take over 3/4 of the RAM. */
export function chooseRoot(needMiB: number, memoryMiB: number, o: Pick<RootOptions, 'root' | 'disk'>): RootKind {
  return o.root ?? (o.disk !== undefined || needMiB > memoryMiB * COMFORTABLE ? 'disk' : 'initramfs');
}

/** Prepares the root in `work` (a temp dir of the boot). */
export async function prepareRoot(image: Image, arch: BootArch, kernel: string, memoryMiB: number, work: string, o: RootOptions): Promise<PreparedRoot> {
  return withFs(image, async (fs) => {
    const needMiB = initramfsMemoryMiB(fs);
    const kind = chooseRoot(needMiB, memoryMiB, o);
    if (o.root === undefined) {
      o.onLog?.(`root: ${kind} (the image needs about ${needMiB} MiB of RAM as an initramfs; the guest has ${memoryMiB} MiB)`);
    }
    const overrides = { ...(o.command ? { command: o.command } : {}), ...(o.entrypoint ? { entrypoint: o.entrypoint } : {}) };
    if (kind === 'initramfs') {
      checkInitramfsFits(needMiB, memoryMiB);
      const initrd = join(work, 'root.cpio.gz');
      // gzip -1: boot-time speed over size, the file is thrown away after the boot
      await exportInitramfs(fs, createWriteStream(initrd), { config: image.config, ...overrides, gzip: 1 });
      return { kind, initrd, append: [], needMiB };
    }
    const append: string[] = [];
    let path = o.disk;
    if (path === undefined || !existsSync(path)) {
      path ??= join(work, 'root.img');
      // a disk made to be kept (--persist) gets a journal: the guest powers off without unmounting
      await exportExt4(fs, path, { config: image.config, ...overrides, journal: o.persist === true });
    } else if (o.command || o.entrypoint) {
      // a disk made earlier has its own command in /.vmimg/config: the kernel command line replaces it
      const merged = { ...image.config, entrypoint: o.entrypoint ?? image.config.entrypoint };
      append.push(kernelCmdParam(commandLine(merged, o.command)));
    }
    const initrd = join(work, 'stage-one.cpio');
    const modules = await kernelModules(kernel, arch, o.onLog);
    await writeStageOne(initrd, await ensureBusybox(arch, o.kernelDir ?? dirname(dirname(kernel)), o.onLog), modules);
    return { kind, initrd, disk: { path, persist: o.persist === true }, append, needMiB };
  });
}

/** The disk modules of `kernel`, kept beside it (a kernel outside vmimg's cache layout needs them there). */
async function kernelModules(kernel: string, arch: BootArch, onLog?: (m: string) => void) {
  const pkgDir = dirname(kernel);
  const pkg = basename(pkgDir);
  if (!pkg.startsWith('linux-image-') && !existsSync(join(pkgDir, 'modules.dep'))) {
    throw new VmimgError(ErrorCode.NOT_FOUND, `a disk boot needs ${kernel}'s modules (virtio_blk, ext4, ...) beside it: ${pkgDir}/modules.dep and modules/`, {
      hint: 'leave --kernel out to use a Debian kernel with its modules, or boot with --root initramfs',
    });
  }
  return ensureModules(pkgDir, pkg, arch, onLog);
}
