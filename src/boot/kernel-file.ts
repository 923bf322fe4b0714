/**
 * A `--kernel` file checked before QEMU starts: it exists, is a file, and is a Linux kernel image
 * for the guest's architecture. Magic numbers from the kernel's boot protocols:
 * x86 bzImage: "HdrS" at 0x202 (Documentation/arch/x86/boot.rst);
 * arm64 Image: "ARM\x64" at 0x38 (Documentation/arch/arm64/booting.rst); QEMU also loads a
 * gzip-compressed arm64 Image, whose architecture cannot be told from its first bytes.
 */
import { open } from 'node:fs/promises';
import { ErrorCode, VmimgError } from '../errors.js';
import type { BootArch } from './kernel.js';

export type KernelKind = BootArch | 'gzip' | 'unknown';

/** What the first bytes of a kernel file say it is. */
export function kernelKind(head: Buffer): KernelKind {
  if (head.length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS') return 'amd64';
  if (head.length >= 0x3c && head.toString('latin1', 0x38, 0x3c) === 'ARM\x64') return 'arm64';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  return 'unknown';
}

/**
 * Throws unless `path` is a kernel QEMU can boot for `arch`: ERR_NOT_FOUND (no such file),
 * ERR_PLATFORM_MISMATCH (a kernel of the other architecture), ERR_INVALID_ARGUMENT (not a kernel).
 */
export async function checkKernelFile(path: string, arch: BootArch): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new VmimgError(code === 'ENOENT' ? ErrorCode.NOT_FOUND : ErrorCode.INVALID_ARGUMENT, `--kernel ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, {
      hint: 'name a kernel image file (e.g. /boot/vmlinuz-*), or leave --kernel out to use a Debian kernel',
      cause: err,
    });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--kernel ${path} is not a file`);
    const head = Buffer.alloc(0x240);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const kind = kernelKind(head.subarray(0, bytesRead));
    if (kind === arch || (kind === 'gzip' && arch === 'arm64')) return;
    if (kind === 'amd64' || kind === 'arm64') {
      throw new VmimgError(ErrorCode.PLATFORM_MISMATCH, `--kernel ${path} is an ${kind} kernel, the guest is ${arch}`, {
        hint: `pass an ${arch} kernel, or leave --kernel out to use Debian's`,
      });
    }
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `--kernel ${path} is not a Linux kernel image for ${arch}`, {
      hint: arch === 'amd64' ? 'x86 kernels are bzImages ("HdrS" at byte 0x202)' : 'arm64 kernels are Image files ("ARM\\x64" at byte 0x38), optionally gzipped',
    });
  } finally {
    await fh.close();
  }
}
