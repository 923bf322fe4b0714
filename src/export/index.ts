/**
 * Exports of a prepared image: `dir` (an image directory), `tar` (the flattened root),
 * `initramfs` (gzip newc cpio with the vmimg guest init) and `ext4` (a filesystem image, guest init
 * included). Formats: docs/EXPORT.md.
 */
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ErrorCode, VmimgError } from '../errors.js';
import { trackTempFile } from '../util/temp-files.js';
import { exportToDir, type Image } from '../image/image-dir.js'; // not the barrel: it loads pull (undici)
import { exportInitramfs, type InitramfsOptions, type InitramfsResult } from './initramfs.js';
import { exportTar, type TarOptions, type TarResult } from './tar.js';
import { exportExt4, type Ext4Options, type Ext4Result } from './ext4/index.js';

export { exportTar, type TarOptions, type TarResult } from './tar.js';
export { exportExt4, uuidFrom, type Ext4Options, type Ext4Result, type ExtraEntry } from './ext4/index.js';
export { exportInitramfs, requireShell, type InitramfsOptions, type InitramfsResult } from './initramfs.js';
export { GUEST_INIT, GUEST_CONFIG, START_LINE, GUEST_INIT_SCRIPT, EXIT_STATUS_RE, guestConfig, kernelCmdParam, shQuote, shWords } from './guest-init.js';
export { cpioHeader, cpioTrailer, cpioDataPad, type CpioHeader } from './cpio.js';
export { walkTree, splitDev, type ExportProgress, type TreeEntry } from './walk.js';
export type { ExportSource } from './source.js';
// QEMU boot lives in src/boot/; re-exported so `vmimg/export` keeps offering it
export * from '../boot/index.js';

export type ExportFormat = 'dir' | 'tar' | 'initramfs' | 'ext4';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['dir', 'tar', 'initramfs', 'ext4'];

export interface ExportOptions extends Pick<InitramfsOptions, 'command' | 'entrypoint' | 'init' | 'gzip'>, TarOptions, Pick<Ext4Options, 'sizeBytes' | 'freeBytes' | 'journal'> {
  format: ExportFormat;
  /** Replace an existing destination. */
  force?: boolean;
}

export type ExportResult =
  | { format: 'dir'; path: string }
  | ({ format: 'tar'; path: string } & TarResult)
  | ({ format: 'initramfs'; path: string } & InitramfsResult)
  | ({ format: 'ext4'; path: string } & Ext4Result);

/**
 * Exports `image` to `dst`: a directory for 'dir', a file for 'tar' and 'initramfs' (written under
 * a temporary name and renamed into place, so a partial file never looks complete).
 */
export async function exportImage(image: Image, dst: string, options: ExportOptions): Promise<ExportResult> {
  if (!EXPORT_FORMATS.includes(options.format)) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `unknown export format "${String(options.format)}"`, {
      hint: `use one of: ${EXPORT_FORMATS.join(', ')}`,
    });
  }
  if (options.format === 'dir') {
    await exportToDir(image, dst, { force: options.force ?? false });
    return { format: 'dir', path: dst };
  }
  await checkFileDestination(dst, options.force ?? false);
  const tmp = join(dirname(dst), `.${basename(dst)}.tmp-${randomBytes(6).toString('hex')}`);
  const forget = trackTempFile(tmp);
  try {
    return await exportFile(image, dst, tmp, options);
  } finally {
    forget();
  }
}

/** Writes a file format to `tmp`, renames it to `dst`; `tmp` is gone on every way out. */
async function exportFile(image: Image, dst: string, tmp: string, options: ExportOptions): Promise<ExportResult> {
  if (options.format === 'ext4') {
    // positional writes into a sparse file: the writer opens the temp file itself
    try {
      const r = await exportExt4(image, tmp, options);
      await rename(tmp, dst);
      return { format: 'ext4', path: dst, ...r };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
  // Opened before any stream exists: an open failure (EMFILE, EACCES) is this call's rejection, never an
  // 'error' event nobody listens to yet (the exporters attach theirs only after opening the image).
  const out = (await open(tmp, 'w')).createWriteStream();
  try {
    if (options.format === 'tar') {
      const r = await exportTar(image, out, options);
      await rename(tmp, dst);
      return { format: 'tar', path: dst, ...r };
    }
    const r = await exportInitramfs(image, out, options);
    await rename(tmp, dst);
    return { format: 'initramfs', path: dst, ...r };
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * ERR_DESTINATION_EXISTS when a file export (tar, initramfs, ext4) could not write `dst`: a directory, a
 * device, fifo or socket (never replaced, even with `force`), or an existing file without `force`.
 * Callers run it before pulling an image, so a refusal costs an lstat, not a download; `exportImage`
 * checks again (and creates the parent directory) when it writes.
 */
export async function checkExportDestination(dst: string, force: boolean): Promise<void> {
  await checkFileDestination(dst, force, false);
}

async function checkFileDestination(dst: string, force: boolean, createParent = true): Promise<void> {
  let st;
  try {
    st = await stat(dst);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (createParent) await mkdir(dirname(dst), { recursive: true });
    return;
  }
  if (st.isDirectory()) {
    throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${dst} is a directory, not a file name`, {
      hint: 'name the file to write (e.g. root.cpio.gz)',
    });
  }
  if (!st.isFile()) {
    // --force renames a new file over the old one: over /dev/null, a disk or a fifo that would replace the node
    throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${dst} is a ${fileKind(st)}, not a regular file`, {
      hint: 'vmimg writes and replaces only regular files: name a file to write',
    });
  }
  if (!force) throw new VmimgError(ErrorCode.DESTINATION_EXISTS, `${dst} already exists`, { hint: 'use --force to replace it' });
}

function fileKind(st: Stats): string {
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'special file';
}
