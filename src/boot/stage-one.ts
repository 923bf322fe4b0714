/**
 * The stage-one initramfs of a disk boot: a static busybox, the kernel modules a virtio ext4 root
 * needs (trimmed to load fast: module-trim.ts), and an /init that loads them, mounts /dev/vda, mounts
 * /proc, /sys, /dev, /dev/pts, /tmp and /run into it as the guest init would, and switch_roots into the
 * disk's guest init (/.vmimg/init, the same contract as an initramfs boot). Anything that goes wrong
 * is one `vmimg: …` line on the console, then power-off (the boot then fails naming that line).
 *
 * Few processes: under TCG each exec of busybox costs ~10 ms of guest time, and a disk boot used to
 * start twenty. Applets called by bare name run in a fork of the shell without an exec (Debian's
 * busybox-static is a standalone shell; the cpio's /bin links serve one that is not), one
 * `modprobe -a` loads every module, and each batch of mounts is one `mount -a` over a generated fstab.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cpioDataPad, cpioHeader, cpioTrailer } from '../export/cpio.js';
import { GUEST_INIT, MOUNTED_ENV } from '../export/guest-init.js';
import type { ModuleSet } from './modules.js';
import { trimModule } from './module-trim.js';

/** The disk the stage one mounts (the first virtio-blk device). */
export const ROOT_DEVICE = '/dev/vda';

/** Applets the stage one calls by name (linked in /bin for a busybox that is not a standalone shell). */
const APPLETS = ['modprobe', 'insmod', 'mkdir', 'sleep'];

/** The stage-one /init: POSIX sh run by busybox; `release` names the modules' directory. */
export function stageOneInit(modules: readonly string[], release: string): string {
  const mods = modules.join(' ');
  return `#!/bin/busybox sh
# vmimg stage one: load the disk's modules, mount the ext4 root, switch_root into its guest init
B=/bin/busybox
PATH=/bin
fail() { echo "vmimg: $*"; $B sync; $B poweroff -f; exit 1; }
# one modprobe loads them all (modules.dep lists them, this order is theirs); else one insmod each names the culprit
modprobe -a ${mods} 2>/dev/null || {
  $B mount -t sysfs sysfs /sys
  for m in ${mods}; do
    [ -d /sys/module/$m ] || insmod /lib/modules/${release}/$m.ko || fail "cannot load kernel module $m"
  done
  $B umount /sys
}
echo "devtmpfs /dev devtmpfs defaults 0 0
${ROOT_DEVICE} /newroot ext4 defaults 0 0" > /etc/fstab
# virtio_blk's probe made ${ROOT_DEVICE} during modprobe; should it come later, wait for it (30 s)
$B mount -a 2>/dev/null || {
  [ -e /dev/null ] || $B mount -t devtmpfs devtmpfs /dev
  i=0
  while [ ! -b ${ROOT_DEVICE} ]; do
    i=$((i + 1))
    [ $i -le 300 ] || fail "no disk ${ROOT_DEVICE} appeared (virtio-blk)"
    sleep 0.1 2>/dev/null || sleep 1
  done
  [ -e /newroot${GUEST_INIT} ] || $B mount -t ext4 ${ROOT_DEVICE} /newroot || fail "cannot mount ${ROOT_DEVICE} as ext4"
}
[ -x /newroot${GUEST_INIT} ] || fail "the disk has no ${GUEST_INIT}: export it with the guest init"
# the guest init's mounts, made here in one busybox mount (a dynamic mount binary per mount is slow
# under TCG); the init is told which (${MOUNTED_ENV}) and makes the rest: what the disk has no plain directory for
dir() { [ -d /newroot/$1 ] && [ ! -L /newroot/$1 ]; }
T= M=
add() { T="$T
$1"; M="$M $2"; }
dir proc && add "proc /newroot/proc proc defaults 0 0" /proc
dir sys && add "sysfs /newroot/sys sysfs defaults 0 0" /sys
if dir dev && mkdir -p /dev/pts; then
  add "/dev /newroot/dev none move 0 0" /dev
  add "devpts /newroot/dev/pts devpts defaults 0 0" /dev/pts
fi
dir tmp && add "tmpfs /newroot/tmp tmpfs mode=1777 0 0" /tmp
dir run && add "tmpfs /newroot/run tmpfs mode=0755 0 0" /run
echo "$T" > /etc/fstab
[ -z "$M" ] || { $B mount -a && export ${MOUNTED_ENV}="$M"; }
exec $B switch_root /newroot ${GUEST_INIT}
`;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFCHR = 0o020000;
const S_IFLNK = 0o120000;

/** The kernel release a module was built for: the first word of `vermagic=` in its .modinfo. */
export function moduleRelease(ko: Buffer): string | undefined {
  const at = ko.indexOf('\0vermagic=');
  if (at < 0) return undefined;
  const end = ko.indexOf(0, at + 1);
  return ko.toString('latin1', at + 10, end < 0 ? undefined : end).split(' ')[0] || undefined;
}

/**
 * Writes the stage-one initramfs to `dest`: a newc cpio, not compressed (the kernel would spend more
 * time inflating it than reading ~4 MB more). The modules sit in `/lib/modules/<release>/` with a
 * modules.dep naming each without dependencies: the init lists them in load order.
 */
export async function writeStageOne(dest: string, busybox: string, modules: ModuleSet): Promise<void> {
  const kos = await Promise.all(modules.files.map(async (f) => trimModule(await readFile(f))));
  const release = kos.map(moduleRelease).find((r) => r !== undefined) ?? 'unknown';
  const dir = `lib/modules/${release}`;
  const files: { name: string; mode: number; data?: Buffer; rdev?: [number, number] }[] = [
    ...['bin', 'dev', 'etc', 'proc', 'sys', 'newroot', 'lib', 'lib/modules', dir].map((name) => ({ name, mode: S_IFDIR | 0o755 })),
    { name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] },
    { name: 'bin/busybox', mode: S_IFREG | 0o755, data: await readFile(busybox) },
    ...APPLETS.map((a) => ({ name: `bin/${a}`, mode: S_IFLNK | 0o777, data: Buffer.from('busybox') })),
    { name: 'init', mode: S_IFREG | 0o755, data: Buffer.from(stageOneInit(modules.names, release)) },
    { name: `${dir}/modules.dep`, mode: S_IFREG | 0o644, data: Buffer.from(modules.files.map((f) => `${basename(f)}:\n`).join('')) },
    ...modules.files.map((f, i) => ({ name: `${dir}/${basename(f)}`, mode: S_IFREG | 0o644, data: kos[i]! })),
  ];
  const parts: Buffer[] = [];
  files.forEach((f, i) => {
    const data = f.data ?? Buffer.alloc(0);
    const nlink = (f.mode & S_IFDIR) === S_IFDIR ? 2 : 1;
    parts.push(cpioHeader({ name: f.name, ino: i + 1, mode: f.mode, uid: 0, gid: 0, nlink, mtime: 0, size: data.length, rdevMajor: f.rdev?.[0] ?? 0, rdevMinor: f.rdev?.[1] ?? 0 }));
    parts.push(data, cpioDataPad(data.length));
  });
  parts.push(cpioTrailer());
  await pipeline(Readable.from(parts), createWriteStream(dest));
}
