/**
 * A `newc` (SVR4, "070701") cpio writer: the format the Linux kernel unpacks as an initramfs.
 * Our own because no allowed npm dependency writes cpio, and newc is a fixed 110-byte ASCII header
 * plus the name, both padded to 4 bytes. Metadata only: no root, no mknod on the host.
 *
 * Hardlinks: every name of a shared inode carries the same ino and nlink; the first name carries
 * the data, later names have size 0. The kernel (init/initramfs.c) links later names to the first;
 * GNU cpio defers size-0 names and links them at the end.
 */
import { ErrorCode, VmimgError } from '../errors.js';
import { encodeName } from '../util/byte-names.js';

export interface CpioHeader {
  /** Relative path ('bin/sh'), '.' for the root, no leading slash; util/byte-names.ts form. */
  name: string;
  ino: number;
  /** Full st_mode: type bits and permissions. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  /** Bytes of data following this header (0 for non-files and later hardlink names). */
  size: number;
  rdevMajor?: number;
  rdevMinor?: number;
}

const MAX32 = 0xffffffff;

function hex8(n: number, field: string, name: string): string {
  if (!Number.isInteger(n) || n < 0 || n > MAX32) {
    throw new VmimgError(ErrorCode.INVALID_ARGUMENT, `cpio: ${name}: ${field} ${n} does not fit newc's 32-bit field`, {
      hint: field === 'size' ? 'newc cpio (initramfs) cannot hold files of 4 GiB or more; export as tar instead' : undefined,
    });
  }
  return n.toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** The end-of-archive record's name: every cpio reader stops at a record of exactly this name. */
const TRAILER = 'TRAILER!!!';

/**
 * The header and name bytes (padded), ready to be followed by `size` data bytes and pad4(size).
 * An entry named exactly `TRAILER!!!` (a root file of that name) is written as `./TRAILER!!!`: the
 * same path to the kernel and to GNU cpio, but no longer the end-of-archive signal.
 */
export function cpioHeader(h: CpioHeader): Buffer {
  return header(h, h.name === TRAILER ? `./${TRAILER}` : h.name);
}

function header(h: CpioHeader, nameText: string): Buffer {
  const name = Buffer.concat([encodeName(nameText), Buffer.of(0)]); // the name's own bytes, UTF-8 or not
  const f = (n: number, field: string): string => hex8(n, field, h.name);
  const text =
    '070701' +
    f(h.ino, 'ino') +
    f(h.mode, 'mode') +
    f(h.uid, 'uid') +
    f(h.gid, 'gid') +
    f(h.nlink, 'nlink') +
    f(Math.max(0, Math.min(h.mtime, MAX32)), 'mtime') +
    f(h.size, 'size') +
    f(0, 'devmajor') +
    f(0, 'devminor') +
    f(h.rdevMajor ?? 0, 'rdevmajor') +
    f(h.rdevMinor ?? 0, 'rdevminor') +
    f(name.length, 'namesize') +
    f(0, 'check');
  const head = Buffer.from(text, 'ascii');
  return Buffer.concat([head, name, Buffer.alloc(pad4(head.length + name.length))]);
}

/** Zero bytes that pad `size` bytes of data to the next 4-byte boundary. */
export function cpioDataPad(size: number): Buffer {
  return Buffer.alloc(pad4(size));
}

/** The end-of-archive record. */
export function cpioTrailer(): Buffer {
  return header({ name: TRAILER, ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0 }, TRAILER);
}
