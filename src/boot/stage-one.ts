/**
 * The stage-one initramfs of a disk boot: a static busybox, the kernel modules a virtio ext4 root
 * needs (trimmed to load fast: module-trim.ts), and an /init that loads them, mounts /dev/vda, moves
 * /proc, /sys and /dev over, mounts /dev/pts, /tmp and /run as the guest init would, and switch_roots into the
 * disk's guest init (/.vmimg/init, the same contract as an initramfs boot). Anything that goes wrong
 * is one `vmimg: …` line on the console, then power-off (the boot then fails naming that line).
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { cpioDataPad, cpioHeader, cpioTrailer } from '../export/cpio.js';
import { GUEST_INIT } from '../export/guest-init.js';
import type { ModuleSet } from './modules.js';
import { trimModule } from './module-trim.js';

/** The disk the stage one mounts (the first virtio-blk device). */
export const ROOT_DEVICE = '/dev/vda';

/** The stage-one /init: POSIX sh run by busybox. */
export function stageOneInit(modules: readonly string[]): string {
  return `#!/bin/busybox sh
# vmimg stage one: load the disk's modules, mount the ext4 root, switch_root into its guest init
B=/bin/busybox
fail() { echo "vmimg: $*"; $B sync; $B poweroff -f; exit 1; }
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
for m in ${modules.join(' ')}; do
  $B insmod /lib/modules/$m.ko || fail "cannot load kernel module $m"
done
i=0
while [ ! -b ${ROOT_DEVICE} ]; do
  i=$((i + 1))
  [ $i -le 300 ] || fail "no disk ${ROOT_DEVICE} appeared (virtio-blk)"
  $B sleep 0.1 2>/dev/null || $B sleep 1
done
$B mount -t ext4 ${ROOT_DEVICE} /newroot || fail "cannot mount ${ROOT_DEVICE} as ext4"
[ -x /newroot${GUEST_INIT} ] || fail "the disk has no ${GUEST_INIT}: export it with the guest init"
# the guest init's mounts, made here by busybox (a dynamic mount binary per mount is slow under TCG):
# the init finds them mounted and goes on; what the disk has no plain directory for is left to it
dir() { [ -d /newroot/$1 ] && [ ! -L /newroot/$1 ]; }
for d in proc sys; do if dir $d; then $B mount --move /$d /newroot/$d; else $B umount /$d; fi; done
if dir dev; then $B mount --move /dev /newroot/dev && $B mkdir -p /newroot/dev/pts && $B mount -t devpts devpts /newroot/dev/pts; fi
if dir tmp; then $B mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp; fi
if dir run; then $B mount -t tmpfs -o mode=0755 tmpfs /newroot/run; fi
exec $B switch_root /newroot ${GUEST_INIT}
`;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;

/** Writes the stage-one initramfs (gzip newc cpio) to `dest`. */
export async function writeStageOne(dest: string, busybox: string, modules: ModuleSet): Promise<void> {
  const files: { name: string; mode: number; data?: Buffer; rdev?: [number, number] }[] = [
    ...['bin', 'dev', 'proc', 'sys', 'newroot', 'lib', 'lib/modules'].map((name) => ({ name, mode: S_IFDIR | 0o755 })),
    { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
    { name: 'bin/busybox', mode: S_IFREG | 0o755, data: await readFile(busybox) },
    { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(stageOneInit(modules.names)) },
  ];
  for (const f of modules.files) files.push({ name: `lib/modules/${basename(f)}`, mode: S_IFREG | 0o644, data: trimModule(await readFile(f)) });
  const parts: Buffer[] = [];
  files.forEach((f, i) => {
    const data = f.data ?? Buffer.alloc(0);
    const nlink = (f.mode & S_IFDIR) === S_IFDIR ? 2 : 1;
    parts.push(cpioHeader({ name: f.name, ino: i + 1, mode: f.mode, uid: 0, gid: 0, nlink, mtime: 0, size: data.length, rdevMajor: f.rdev?.[0] ?? 0, rdevMinor: f.rdev?.[1] ?? 0 }));
    parts.push(data, cpioDataPad(data.length));
  });
  parts.push(cpioTrailer());
  await pipeline(Readable.from(parts), createGzip({ level: 1 }), createWriteStream(dest));
}
