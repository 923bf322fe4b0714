/**
 * The entries the initramfs export adds itself (the guest init, its config, `/init`, `/dev/console`)
 * and the image paths they replace. Each one is placed only below directories the image really has:
 * every parent is looked at with lstat, never through a symlink, so an image whose `/dev` is a
 * symlink (`dev -> ../x`, `dev -> /etc`) cannot make an extraction or the kernel's unpacker write
 * vmimg's `dev/console` outside the root or into the image's `/etc`.
 */
import type { ContainerFS } from '../vfs/index.js';
import type { CpioHeader } from './cpio.js';
import { GUEST_CONFIG, GUEST_DIR, GUEST_INIT, GUEST_INIT_SCRIPT } from './guest-init.js';
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './walk.js';

/** One added entry: the header fields vmimg chooses, and the data (file content, symlink target). */
export interface GuestEntry {
  header: Omit<CpioHeader, 'ino' | 'nlink' | 'mtime' | 'size' | 'uid' | 'gid'>;
  data?: Buffer;
}

export interface GuestEntries {
  entries: GuestEntry[];
  /** Image paths (no leading slash) the walk leaves out because an added entry takes their place. */
  replaced: Set<string>;
}

/**
 * Where the guest init mounts filesystems. An image that has one of these as a symlink or a file
 * gets a real directory in its place: mounting through the symlink would cover whatever it names.
 */
const MOUNT_POINTS: Record<string, number> = { dev: 0o755, proc: 0o555, sys: 0o555, tmp: 0o1777, run: 0o755 };

/** What `path` is in the image itself (lstat: a final symlink is not followed); undefined when absent. */
function lstatType(fs: ContainerFS, path: string): number | undefined {
  try {
    return fs.lstat(path).mode & S_IFMT;
  } catch {
    return undefined;
  }
}

const KIND: Record<number, string> = { [S_IFLNK]: 'a symlink', [S_IFREG]: 'a file', [S_IFCHR]: 'a character device' };

/** The guest init's entries for `fs`; `warn` hears about every image entry they replace. */
export function guestEntries(fs: ContainerFS, configText: string, hasOwnInit: boolean, warn: (message: string) => void): GuestEntries {
  const entries: GuestEntry[] = [
    { header: { name: GUEST_DIR, mode: S_IFDIR | 0o755 } },
    { header: { name: GUEST_INIT.slice(1), mode: S_IFREG | 0o755 }, data: Buffer.from(GUEST_INIT_SCRIPT) },
    { header: { name: GUEST_CONFIG.slice(1), mode: S_IFREG | 0o644 }, data: Buffer.from(configText) },
  ];
  const replaced = new Set<string>([GUEST_DIR]); // anything the image has there is replaced, silently (documented)
  if (!hasOwnInit) entries.push({ header: { name: 'init', mode: S_IFLNK | 0o777 }, data: Buffer.from(GUEST_INIT.slice(1)) });
  for (const [dir, perm] of Object.entries(MOUNT_POINTS)) {
    const type = lstatType(fs, `/${dir}`);
    if (type === undefined || type === S_IFDIR) continue;
    const what = type === S_IFLNK ? `a symlink to ${JSON.stringify(fs.readlink(`/${dir}`))}` : KIND[type] ?? 'not a directory';
    warn(`the image's /${dir} is ${what}: the initramfs has an empty directory there instead (the guest init mounts on it)`);
    replaced.add(dir);
    entries.push({ header: { name: dir, mode: S_IFDIR | perm } });
  }
  // the kernel opens /dev/console for init's stdio before anything is mounted
  const dev = lstatType(fs, '/dev');
  if (dev === undefined) entries.push({ header: { name: 'dev', mode: S_IFDIR | 0o755 } });
  if (dev !== S_IFDIR || lstatType(fs, '/dev/console') === undefined) {
    entries.push({ header: { name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 } });
  }
  return { entries, replaced };
}
