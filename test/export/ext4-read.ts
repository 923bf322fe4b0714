// Reads an ext4 image with e2fsprogs only (no mount, no root needed): e2fsck -fn, debugfs `ls -p`
// for every directory (type, mode, owner, size, inode), `rdump` for contents and link targets,
// `stat` for device numbers, `ea_list` for xattrs. Gives the same description as compare.ts's
// describeTree of a umoci rootfs, so the two can be diffed.
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTools, run, runFull, tmpDir, type RunError } from '../helpers/tools.js';

export function requireE2fsprogs(): void {
  requireTools(['e2fsck', 'debugfs']);
}

/** `e2fsck -fn`: its whole output when it finds nothing wrong (exit 0), else throws with the output. */
export async function e2fsckClean(img: string): Promise<string> {
  try {
    const r = await runFull('e2fsck', ['-fn', img]);
    return r.stdout + r.stderr;
  } catch (e) {
    const r = e as RunError;
    throw new Error(`e2fsck -fn ${img} exited ${r.exitCode}:\n${r.stdout}\n${r.stderr}`);
  }
}

/** Runs debugfs commands (one per line) on `img`; returns stdout. */
export async function debugfs(img: string, commands: string[]): Promise<string> {
  const dir = await tmpDir('vmimg-debugfs-');
  const file = join(dir, 'cmds');
  writeFileSync(file, commands.join('\n') + '\n');
  return run('debugfs', ['-f', file, img]);
}

interface LsEntry {
  /** As debugfs printed it (UTF-8 decoded): the rdump file name. */
  path: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

const q = (path: string): string => `"/${path}"`;
const KIND: Record<number, string> = { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'symlink', 0o020000: 'char', 0o060000: 'block', 0o010000: 'fifo' };

/** path → ls -p entry, for the children of every directory in `dirs` (and the root itself). */
export async function listExt4(img: string, dirs: string[]): Promise<Map<string, LsEntry>> {
  const text = await debugfs(img, dirs.map((d) => `ls -p ${q(Buffer.from(d, 'latin1').toString('utf8'))}`));
  const out = new Map<string, LsEntry>();
  // "debugfs: ls -p "/dir"" then "/ino/mode/uid/gid/name/size/" lines; names may hold newlines
  const sections = text.split(/^debugfs: ls -p "\/(.*)"$/m);
  // keys as compare.ts's walkReference has them: the name's bytes read as latin1
  for (let i = 1; i < sections.length; i += 2) {
    const dir = sections[i]!;
    for (const m of sections[i + 1]!.matchAll(/^\/(\d+)\/(\d{6})\/(\d+)\/(\d+)\/([\s\S]*?)\/(\d*)\/$/gm)) {
      const name = m[5]!;
      if (name === '..' || (name === '.' && dir !== '')) continue;
      const path = name === '.' ? '' : dir === '' ? name : `${dir}/${name}`;
      out.set(Buffer.from(path, 'utf8').toString('latin1'), { path, ino: Number(m[1]), mode: parseInt(m[2]!, 8), uid: Number(m[3]), gid: Number(m[4]), size: Number(m[6] || 0) });
    }
  }
  return out;
}

/** The same shape as compare.ts's describeTree: kind, mode, owner, size, sha256, hardlink group, link, rdev. */
export async function describeExt4(img: string, dirs: string[], ignore: (path: string) => boolean = () => false): Promise<Map<string, Record<string, unknown>>> {
  const entries = await listExt4(img, dirs);
  const dump = join(await tmpDir('vmimg-rdump-'), 'root');
  await run('mkdir', [dump]);
  await run('debugfs', ['-R', `rdump / ${dump}`, img]);
  const devices = [...entries].filter(([, e]) => KIND[e.mode & 0o170000] === 'char' || KIND[e.mode & 0o170000] === 'block').map(([p]) => p);
  const rdev = await deviceNumbers(img, devices);
  const groups = new Map<number, string[]>();
  for (const [path, e] of entries) if (KIND[e.mode & 0o170000] === 'file' && !ignore(path)) groups.set(e.ino, [...(groups.get(e.ino) ?? []), path].sort());
  const out = new Map<string, Record<string, unknown>>();
  for (const [path, e] of [...entries].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (path === '' || ignore(path)) continue;
    const kind = KIND[e.mode & 0o170000] ?? 'other';
    const d: Record<string, unknown> = { kind, mode: (e.mode & 0o7777).toString(8), uid: e.uid, gid: e.gid };
    if (kind === 'file') {
      const sha256 = createHash('sha256').update(readFileSync(join(dump, e.path))).digest('hex');
      Object.assign(d, { size: e.size, sha256, links: groups.get(e.ino)!.join(',') });
    }
    if (kind === 'symlink') d.link = readlinkSync(join(dump, e.path), { encoding: 'buffer' }).toString('latin1');
    if (kind === 'char' || kind === 'block') d.rdev = rdev.get(path);
    out.set(path, d);
  }
  return out;
}

/** "major:minor" of device inodes, from debugfs stat. */
async function deviceNumbers(img: string, paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (paths.length === 0) return out;
  const text = await debugfs(img, paths.map((p) => `stat ${q(Buffer.from(p, 'latin1').toString('utf8'))}`));
  const parts = text.split(/^debugfs: stat "\/(.*)"$/m);
  for (let i = 1; i < parts.length; i += 2) {
    const m = /Device major\/minor number: (\d+):(\d+)/.exec(parts[i + 1]!);
    if (m) out.set(Buffer.from(parts[i]!, 'utf8').toString('latin1'), `${Number(m[1])}:${Number(m[2])}`);
  }
  return out;
}

/** xattrs of one path, names from debugfs ea_list and values from ea_get -f: name → hex of the value. */
export async function ext4Xattrs(img: string, path: string): Promise<Record<string, string>> {
  const text = await debugfs(img, [`ea_list ${q(path)}`]);
  const names = [...text.matchAll(/^\s*(\S+) \((\d+)\)/gm)].map((m) => m[1]!);
  const dir = await tmpDir('vmimg-ea-');
  await debugfs(img, names.map((n, i) => `ea_get -f ${join(dir, String(i))} ${q(path)} ${n}`));
  return Object.fromEntries(names.map((n, i) => [n, readFileSync(join(dir, String(i))).toString('hex')]));
}

/** The inode's stat text (flags, extents, times). */
export async function statExt4(img: string, path: string): Promise<string> {
  return debugfs(img, [`stat ${q(path)}`]);
}
