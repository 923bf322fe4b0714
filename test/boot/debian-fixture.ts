// A small Debian image made by outside tools only: bookworm packages (glibc, dash, coreutils,
// util-linux's setpriv, mount) fetched with `apt-get download`, unpacked with `dpkg-deb -x`, layered
// with umoci and archived with skopeo. Dynamic glibc binaries and no busybox: the guest init's
// non-busybox paths (setpriv, /lib64 symlinks) under a real distro userland. Cached in test/.cache.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, chownSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, memo, populateOnce, REPO_ROOT } from '../helpers/cache.js';
import { toOciArchive } from '../helpers/busybox.js';
import { requireTools, run } from '../helpers/tools.js';
import type { Arch } from './kernels.js';

export const DEBIAN_PACKAGES = [
  'libc6', 'libgcc-s1', 'dash', 'coreutils', 'libacl1', 'libattr1', 'libgmp10', 'libselinux1', 'libpcre2-8-0',
  'util-linux', 'libcap-ng0', 'mount', 'libmount1', 'libblkid1',
];

async function debs(arch: Arch): Promise<string> {
  return populateOnce(join(cacheDir('debian-debs'), arch), async (tmp) => {
    requireTools(['apt-get']);
    try {
      await run('apt-get', ['download', '-q', ...DEBIAN_PACKAGES.map((p) => `${p}:${arch}`)], { cwd: tmp });
    } catch (e) {
      throw new Error(
        `apt-get download of Debian packages for ${arch} failed` +
          (arch === 'arm64' ? ' (for arm64 first: dpkg --add-architecture arm64 && apt-get update)' : '') +
          `; or run: bash .ci/run\n${(e as Error).message}`,
      );
    }
  });
}

/** Root filesystem: every package unpacked, /bin/sh → dash, users root and app (1000). */
async function rootfs(arch: Arch): Promise<string> {
  const dir = await debs(arch);
  return populateOnce(join(cacheDir('debian-rootfs'), arch), async (root) => {
    requireTools(['dpkg-deb']);
    for (const deb of readdirSync(dir).filter((n) => n.endsWith('.deb'))) await run('dpkg-deb', ['-x', join(dir, deb), root]);
    if (!existsSync(join(root, 'bin', 'sh'))) symlinkSync('dash', join(root, 'bin', 'sh'));
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\napp:x:1000:\n');
    writeFileSync(join(root, 'etc', 'fixture'), `debian packages ${arch}\n`);
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'root', 'home/app']) mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, 'tmp'), 0o1777);
    chownSync(join(root, 'home', 'app'), 1000, 1000);
  });
}

/** An OCI archive of the image: user app, working dir /home/app, cmd printing who and where it runs. */
export async function debianArchive(arch: Arch): Promise<string> {
  return (await debianImage(arch)).archive;
}

/**
 * The image as an OCI layout (`ref` = `layout:debian`, for `umoci unpack`) and as an OCI archive. Built
 * once into test/.cache/debian-image/, keyed by this file's recipe and the .debs (seven test files use
 * it; each built it again: umoci insert of the 40 MB tree and skopeo, ~2 s of CPU). Read-only to tests.
 */
export function debianImage(arch: Arch): Promise<{ ref: string; archive: string }> {
  return memo(`debian-archive:${arch}`, async () => {
    requireTools(['umoci', 'skopeo']);
    const debDir = await debs(arch);
    const recipe = createHash('sha256')
      .update(readFileSync(join(REPO_ROOT, 'test', 'boot', 'debian-fixture.ts')))
      .update(readdirSync(debDir).sort().join('\n'))
      .digest('hex')
      .slice(0, 16);
    const dir = await populateOnce(join(cacheDir('debian-image'), `${arch}-${recipe}`), async (tmp) => {
      const root = await rootfs(arch);
      const ref = `${join(tmp, 'layout')}:debian`;
      await run('umoci', ['init', '--layout', join(tmp, 'layout')]);
      await run('umoci', ['new', '--image', ref]);
      await run('umoci', ['insert', '--image', ref, root, '/']);
      await run('umoci', [
        'config', '--image', ref, '--architecture', arch, '--os', 'linux', '--config.user', 'app',
        '--config.workingdir', '/home/app', '--config.env', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', '--config.env', 'FIXTURE=debian',
        '--config.cmd', '/bin/sh', '--config.cmd', '-c', '--config.cmd', 'echo "$(id -u):$(id -g) $(pwd) $FIXTURE $(readlink /proc/$$/exe)"; cat /etc/fixture',
      ]);
      await toOciArchive(ref, join(tmp, 'debian.tar'), 'latest');
    });
    return { ref: `${join(dir, 'layout')}:debian`, archive: join(dir, 'debian.tar') };
  });
}
