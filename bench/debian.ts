/**
 * The benchmark image: Debian bookworm minbase made with debootstrap, layered with umoci as a real
 * image would be (the base system, then five small layers, one of them with a whiteout). Built once,
 * cached under bench/.cache/. Made by outside tools only, never by vmimg.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const CACHE = resolve('bench', '.cache');
const MIRROR = 'http://deb.debian.org/debian';

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * debootstrap can leave /proc (and /sys) mounted inside the tree it made (seen on these machines); a
 * rename then moves a mount and umoci's walk of the tree fails. Unmount whatever is below `dir`,
 * deepest first.
 */
function unmountBelow(dir: string): void {
  const root = resolve(dir);
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) run('umount', ['-l', m]);
}

export async function debianLayout(): Promise<string> {
  const layout = join(CACHE, 'debian-layout');
  if (existsSync(join(layout, 'index.json'))) return layout;
  mkdirSync(CACHE, { recursive: true });
  const rootfs = join(CACHE, 'debian-rootfs');
  if (!existsSync(join(rootfs, 'etc', 'debian_version'))) {
    console.log('bench: debootstrap --variant=minbase bookworm (once, a few minutes)...');
    rmSync(`${rootfs}.tmp`, { recursive: true, force: true });
    try {
      run('debootstrap', ['--variant=minbase', 'bookworm', `${rootfs}.tmp`, MIRROR]);
    } finally {
      unmountBelow(`${rootfs}.tmp`);
    }
    renameSync(`${rootfs}.tmp`, rootfs);
  }
  unmountBelow(rootfs); // a tree made by an earlier run that was not cleaned up
  console.log('bench: layering the Debian image with umoci (once)...');
  const tmp = `${layout}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  run('umoci', ['init', '--layout', tmp]);
  run('umoci', ['new', '--image', `${tmp}:bench`]);
  run('umoci', ['insert', '--image', `${tmp}:bench`, rootfs, '/']);
  for (let i = 1; i <= 5; i++) {
    const extra = join(CACHE, `extra${i}`);
    rmSync(extra, { recursive: true, force: true });
    mkdirSync(join(extra, 'files'), { recursive: true });
    for (let f = 0; f < 50; f++) writeFileSync(join(extra, 'files', `f${f}.txt`), `layer ${i} file ${f}\n`.repeat(100));
    run('umoci', ['insert', '--image', `${tmp}:bench`, extra, `/opt/layer${i}`]);
    rmSync(extra, { recursive: true, force: true });
  }
  run('umoci', ['insert', '--image', `${tmp}:bench`, '--whiteout', '/usr/share/doc']);
  run('umoci', ['config', '--image', `${tmp}:bench`, '--architecture', 'amd64', '--os', 'linux', '--config.cmd', '/bin/bash']);
  rmSync(layout, { recursive: true, force: true });
  renameSync(tmp, layout);
  return layout;
}
