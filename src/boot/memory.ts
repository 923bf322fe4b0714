/**
 * How much guest RAM an initramfs boot needs. The kernel unpacks the initramfs into a tmpfs rootfs,
 * and tmpfs is capped at half of RAM by default (init/do_mounts.c, mm/shmem.c): the unpacked files,
 * page-rounded, must fit in that half, with the kernel and the compressed archive beside them.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { S_IFLNK, S_IFMT, S_IFREG } from '../layer/entry.js';
import type { ContainerFS } from '../vfs/index.js';

const PAGE = 4096;
const MiB = 2 ** 20;
/** Kernel, page tables and the guest init's own needs beside the rootfs, measured loosely on Debian 6.1 kernels. */
const KERNEL_MIB = 48;

/** Guest RAM (MiB) an initramfs boot of `fs` needs: twice the page-rounded file bytes, plus the kernel's share. */
export function initramfsMemoryMiB(fs: ContainerFS): number {
  let bytes = 0;
  for (let ino = 1; ino <= fs.inodeCount; ino++) {
    const a = fs.getattr(ino);
    const type = a.mode & S_IFMT;
    // every inode once, so hardlinked files count once; long symlink targets take a page
    if (type === S_IFREG) bytes += Math.ceil(a.size / PAGE) * PAGE;
    else if (type === S_IFLNK && a.size >= 60) bytes += PAGE;
  }
  return Math.ceil((2 * bytes) / MiB) + KERNEL_MIB;
}

/**
 * The least guest RAM a boot is tried with (MiB): the kernel's own share in the estimate above. Below it
 * no root fits (a disk root's guest hung in the firmware with nothing said until the timeout, breaker5 B7).
 */
export const MIN_MEMORY_MIB = KERNEL_MIB;

/** ERR_INVALID_ARGUMENT before anything is pulled or started when `memoryMiB` is not a usable size. */
export function checkMemory(memoryMiB: number): void {
  if (Number.isSafeInteger(memoryMiB) && memoryMiB >= MIN_MEMORY_MIB) return;
  throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--memory ${String(memoryMiB)}: a guest needs at least ${MIN_MEMORY_MIB} MiB (a whole number of MiB)`, {
    hint: 'the default, 512, boots most images; a disk root (--root disk) needs no more than the kernel does',
  });
}

/** ERR_TOO_LARGE before QEMU starts when the image cannot fit as an initramfs in `memoryMiB`. */
export function checkInitramfsFits(needMiB: number, memoryMiB: number): void {
  if (needMiB <= memoryMiB) return;
  throw new VmimgError(ErrorCode.TOO_LARGE, `the image needs about ${needMiB} MiB in RAM as an initramfs; the guest has ${memoryMiB} MiB`, {
    hint: `boot from a disk (--root disk), or with --memory ${Math.ceil(needMiB / 64) * 64}`,
    details: { needMiB, memoryMiB },
  });
}
