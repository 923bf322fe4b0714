/**
 * Names, link targets and xattr names that are not UTF-8 stay their exact bytes end to end (case
 * non-utf8-names, attacks A1.27 and A1.28): the VFS (lookup, readdir, readlink, xattrs, whiteouts),
 * the tar and initramfs exports and the CLI (ls, ls --json, cat).
 *
 * The image: a GNU-format layer (raw ustar names) and a PAX layer with xattrs written by GNU tar from
 * real files, a PAX layer written by python3's tarfile (raw names as `hdrcharset=BINARY` records),
 * assembled by test/helpers/mkimage.py. References: `umoci unpack` of the same layout, and the trees
 * GNU tar and GNU cpio extract from our exports, all described byte-exactly by python3.
 */
import { before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { loadFromTar } from '../../src/image/index.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { exportExt4, exportInitramfs, exportTar } from '../../src/export/index.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../src/layer/entry.js';
import { pyBuild, type PyEntry } from '../helpers/pyimage.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTools, run, runFull, tmpDir, type RunError } from '../helpers/tools.js';
import { expectExit } from '../cli/run.js';
import { assertSafeExport } from '../helpers/export-check.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1'); // one char per byte
const b64 = (x: Buffer): string => x.toString('base64');
const raw = (s: string): { b64: string } => ({ b64: b64(b(s)) });

let archive: string;
let layout: string;
let cache: string;
let fsys: ContainerFS;

/** Layer 1: GNU format, raw names in ustar headers (the non-utf8-names case). Layer 3: PAX with a raw xattr name and a whiteout of a raw name. */
async function gnuTarLayers(dir: string): Promise<{ l1: string; l3: string }> {
  requireTools(['tar', 'setfattr']);
  const one = join(dir, 'one');
  mkdirSync(join(one, 'data'), { recursive: true });
  writeFileSync(Buffer.from(`${one}/data/file-with-umlaut-ae-\xe4`, 'latin1'), 'ae\n');
  writeFileSync(Buffer.from(`${one}/data/file-with-umlaut-ae-\xe5`, 'latin1'), 'aring\n');
  const three = join(dir, 'three');
  mkdirSync(three);
  writeFileSync(join(three, 'xattr-file'), 'x\n');
  writeFileSync(Buffer.from(`${three}/.wh.bad\xfe`, 'latin1'), '');
  await run('sh', ['-c', `setfattr -n "$(printf 'user.x\\344')" -v hello "$1"`, 'sh', join(three, 'xattr-file')]);
  const common = ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@1700000000', '--sort=name'];
  await run('tar', ['--format=gnu', ...common, '-C', one, '-cf', join(dir, 'l1.tar'), 'data']);
  await run('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', ...common, '-C', three, '-cf', join(dir, 'l3.tar'), '.']);
  return { l1: join(dir, 'l1.tar'), l3: join(dir, 'l3.tar') };
}

/** Layer 2 (python3 tarfile, PAX): attack A1.27's names, a raw link target, a raw directory, a hardlink, and A1.28's control characters. */
const LAYER2: PyEntry[] = [
  { name: raw('bad\xff'), data: 'FF\n' },
  { name: raw('bad\xfe'), data: 'FE\n' },
  { name: raw('bad\xef\xbf\xbd'), data: 'real U+FFFD\n' },
  { name: 'etc', type: 'dir' },
  { name: raw('etc/\xff\xfe'), data: 'target\n' },
  { name: 'lnk', type: 'sym', link: raw('/etc/\xff\xfe') },
  { name: raw('dir\xe9'), type: 'dir' },
  { name: raw('dir\xe9/inner'), data: 'inner\n' },
  { name: 'hl', type: 'hard', link: raw('bad\xff') },
  { name: 'esc\x1b]0;PWNED\x07\x1b[2J', data: 'esc\n' },
  { name: 'new\nline', data: 'nl\n' },
  { name: 'esclink', type: 'sym', link: '\x1b[31mred' },
];

before(async () => {
  const dir = await tmpDir('vmimg-raw-names-');
  const { l1, l3 } = await gnuTarLayers(dir);
  layout = join(dir, 'layout');
  archive = join(dir, 'img.tar');
  await pyBuild({ layers: { l2: LAYER2 }, layerFiles: { l1, l3 }, layout: { dir: layout, images: [{ layers: ['l1', 'l2', 'l3'], tag: 'raw' }], archive } });
  cache = await tmpDir('vmimg-raw-names-cache-');
  fsys = await ContainerFS.open(await loadFromTar(archive, { cacheDir: cache }));
});

/** python3's byte-exact description of a directory tree (test/helpers/bytes-tree.py). */
async function describeDir(root: string, xattrs = true): Promise<Record<string, Record<string, unknown>>> {
  const out = await run('python3', [join(REPO_ROOT, 'test', 'helpers', 'bytes-tree.py'), root, ...(xattrs ? [] : ['--no-xattrs'])]);
  return JSON.parse(out) as Record<string, Record<string, unknown>>;
}

/** The same description of the VFS, through its byte APIs only. */
async function describeVfs(fs: ContainerFS, xattrs = true): Promise<Record<string, Record<string, unknown>>> {
  const out: Record<string, Record<string, unknown>> = {};
  const queue: Buffer[] = [Buffer.alloc(0)];
  while (queue.length > 0) {
    const dir = queue.shift()!;
    for (const name of fs.readdir(Buffer.concat([b('/'), dir]), { encoding: 'buffer' })) {
      const rel = dir.length === 0 ? name : Buffer.concat([dir, b('/'), name]);
      const ino = fs.lookupPath(Buffer.concat([b('/'), rel]));
      const a = fs.getattr(ino);
      const d: Record<string, unknown> = { mode: `0o${(a.mode & 0o7777).toString(8)}` };
      const type = a.mode & S_IFMT;
      if (type === S_IFDIR) {
        d.kind = 'dir';
        queue.push(rel);
      } else if (type === S_IFLNK) Object.assign(d, { kind: 'symlink', link: b64(fs.readlink(ino, { encoding: 'buffer' })) });
      else if (type === S_IFREG) Object.assign(d, { kind: 'file', size: a.size, sha256: createHash('sha256').update(await fs.read(ino, 0, a.size)).digest('hex') });
      if (xattrs && type !== S_IFLNK) {
        d.xattrs = Object.fromEntries(fs.listxattr(ino, { encoding: 'buffer' }).sort(Buffer.compare).map((x) => [b64(x), b64(fs.getxattr(ino, x))]));
      }
      out[b64(rel)] = d;
    }
  }
  return out;
}

describe('names that are not UTF-8 (VFS and library)', () => {
  it('keeps names that differ in one byte apart, each with its own content', async () => {
    assert.deepEqual(fsys.readdir('/data', { encoding: 'buffer' }), [b('file-with-umlaut-ae-\xe4'), b('file-with-umlaut-ae-\xe5')]);
    assert.equal((await fsys.readFile(b('/data/file-with-umlaut-ae-\xe4'))).toString(), 'ae\n');
    assert.equal((await fsys.readFile(b('/data/file-with-umlaut-ae-\xe5'))).toString(), 'aring\n');
    assert.equal((await fsys.readFile(b('/bad\xef\xbf\xbd'))).toString(), 'real U+FFFD\n');
    assert.equal((await fsys.readFile('/bad\ufffd')).toString(), 'real U+FFFD\n', 'a UTF-8 name is its usual string');
    assert.equal((await fsys.readFile('/bad\udcff')).toString(), 'FF\n', 'a string holding escaped bytes names the raw file');
    assert.equal((await fsys.readFile('/bad\udcef\udcbf\udcbd')).toString(), 'real U+FFFD\n', 'escaped bytes that spell UTF-8 name the UTF-8 file');
    assert.equal(fsys.lookup(fsys.root(), 'bad\udcef\udcbf\udcbd'), fsys.lookupPath('/bad\ufffd'));
  });

  it('lists a directory bytewise, applies a whiteout of a raw name to that name only', () => {
    const root = fsys.readdir('/', { encoding: 'buffer' });
    assert.deepEqual(root, [...root].sort(Buffer.compare));
    assert.ok(root.some((n) => n.equals(b('bad\xff'))) && root.some((n) => n.equals(b('bad\xef\xbf\xbd'))));
    assert.ok(!root.some((n) => n.equals(b('bad\xfe'))), 'whited out by .wh.bad\\xfe');
  });

  it('looks names up by bytes, follows raw link targets, keeps hardlinks and xattr names', async () => {
    const dirIno = fsys.lookup(fsys.root(), b('dir\xe9'));
    assert.equal(fsys.readdir(dirIno)[0]?.name, 'inner');
    assert.deepEqual(fsys.readlink('/lnk', { encoding: 'buffer' }), b('/etc/\xff\xfe'));
    assert.equal(fsys.getattr(fsys.lookupPath('/lnk')).size, 7, 'a symlink size counts the target bytes');
    assert.equal((await fsys.readFile('/lnk')).toString(), 'target\n');
    assert.equal(fsys.resolvePath('/hl'), fsys.resolvePath(b('/bad\xff')));
    const x = fsys.lookupPath('/xattr-file');
    assert.deepEqual(fsys.listxattr(x, { encoding: 'buffer' }), [b('user.x\xe4')]);
    assert.equal(fsys.getxattr(x, b('user.x\xe4')).toString(), 'hello');
    assert.deepEqual(await fsys.promises.readdir(b('/dir\xe9')), ['inner']);
    assert.deepEqual(await fsys.promises.readlink('/lnk', 'buffer'), b('/etc/\xff\xfe'));
  });

  it('gives the tree umoci unpack gives, byte for byte (names, targets, xattrs)', async () => {
    requireTools(['umoci']);
    const bundle = join(await tmpDir('vmimg-raw-names-umoci-'), 'bundle');
    await run('umoci', ['unpack', '--image', `${layout}:raw`, bundle]);
    assert.deepEqual(await describeVfs(fsys), await describeDir(join(bundle, 'rootfs')));
  });
});

describe('names that are not UTF-8 (exports)', () => {
  it('exports a tar that GNU tar extracts to the same bytes', async () => {
    requireTools(['tar']);
    const dir = await tmpDir('vmimg-raw-names-tar-');
    await exportTar(fsys, createWriteStream(join(dir, 'root.tar')));
    const listing = await assertSafeExport(join(dir, 'root.tar')); // the suite's escape checker, names as bytes
    assert.ok(listing.entries.some((e) => e.name.equals(b('./bad\xff'))));
    mkdirSync(join(dir, 'x'));
    const r = await run('tar', ['--xattrs', '--xattrs-include=*', '-C', join(dir, 'x'), '-xf', join(dir, 'root.tar')]);
    assert.equal(r, '');
    assert.deepEqual(await describeDir(join(dir, 'x')), await describeVfs(fsys));
  });

  it('exports an initramfs that GNU cpio extracts to the same bytes', async () => {
    requireTools(['cpio']);
    const dir = await tmpDir('vmimg-raw-names-cpio-');
    await exportInitramfs(fsys, createWriteStream(join(dir, 'root.cpio.gz')), { init: false });
    const listing = await assertSafeExport(join(dir, 'root.cpio.gz'));
    assert.ok(listing.entries.some((e) => e.name.equals(b('bad\xff'))));
    await pipeline(createReadStream(join(dir, 'root.cpio.gz')), createGunzip(), createWriteStream(join(dir, 'root.cpio')));
    mkdirSync(join(dir, 'x'));
    await run('sh', ['-c', 'cd "$1" && cpio -idm --quiet --no-absolute-filenames < "$2"', 'sh', join(dir, 'x'), join(dir, 'root.cpio')]);
    assert.deepEqual(await describeDir(join(dir, 'x'), false), await describeVfs(fsys, false));
  });

  it('exports an ext4 image that e2fsck -fn passes and whose names debugfs dumps as the same bytes', async () => {
    requireTools(['debugfs', 'e2fsck']);
    const dir = await tmpDir('vmimg-raw-names-ext4-');
    await exportExt4(fsys, join(dir, 'root.ext4'), { init: false });
    await run('e2fsck', ['-fn', join(dir, 'root.ext4')]); // exits non-zero on any finding
    mkdirSync(join(dir, 'x'));
    await run('debugfs', ['-R', `rdump / ${join(dir, 'x')}`, join(dir, 'root.ext4')]);
    const dumped = await describeDir(join(dir, 'x'), false);
    delete dumped[b64(b('lost+found'))]; // every ext4 has one
    assert.deepEqual(dumped, await describeVfs(fsys, false));
    const ea = await run('sh', ['-c', `debugfs -R "ea_get /xattr-file $(printf 'user.x\\344')" "$1"`, 'sh', join(dir, 'root.ext4')]);
    assert.match(ea, /hello/);
  });
});

describe('names that are not UTF-8 or hold control characters (CLI)', () => {
  const cli = (args: string[]) => ['--cache-dir', cache, ...args, '-q'];

  it('ls escapes them as ls -b does, and nothing else reaches the terminal', async () => {
    const data = await expectExit(0, cli(['ls', archive, '/data']));
    assert.deepEqual(data.stdout.trimEnd().split('\n'), ['file-with-umlaut-ae-\\344', 'file-with-umlaut-ae-\\345']);
    const all = await expectExit(0, cli(['ls', archive, '/', '-R', '-l']));
    assert.doesNotMatch(all.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\udc80-\udcff]/);
    assert.match(all.stdout, / \/esc\\033]0;PWNED\\a\\033\[2J\n/);
    assert.match(all.stdout, / \/new\\nline\n/);
    assert.match(all.stdout, / \/esclink -> \\033\[31mred\n/);
    assert.match(all.stdout, / \/lnk -> \/etc\/\\377\\376\n/);
  });

  it('ls --json gives exact strings plus base64 bytes for names and targets that are not UTF-8', async () => {
    const r = await expectExit(0, cli(['ls', archive, '/', '-R', '--json']));
    const byBytes = new Map<string, Record<string, string>>();
    for (const line of r.stdout.trimEnd().split('\n')) {
      const e = JSON.parse(line) as Record<string, string>;
      byBytes.set(e.pathBytes ?? b64(Buffer.from(e.path!, 'utf8')), e);
    }
    const bad = byBytes.get(b64(b('/bad\xff')));
    assert.equal(bad?.path, '/bad\udcff');
    assert.equal(byBytes.get(b64(b('/bad\xef\xbf\xbd')))?.pathBytes, undefined, 'a UTF-8 name has no pathBytes');
    assert.equal(byBytes.get(b64(b('/lnk')))?.targetBytes, b64(b('/etc/\xff\xfe')));
    assert.equal(byBytes.get(b64(Buffer.from('/new\nline')))?.path, '/new\nline');
    assert.equal(byBytes.get(b64(b('/dir\xe9/inner')))?.type, 'file');
    assert.ok(!byBytes.has(b64(b('/bad\xfe'))));
    const resolved = JSON.parse((await expectExit(0, cli(['resolve', archive, '/lnk', '--json']))).stdout) as Record<string, string>;
    assert.deepEqual(resolved, { path: '/lnk', resolved: '/etc/\udcff\udcfe', resolvedBytes: b64(b('/etc/\xff\xfe')) });
    assert.equal((await expectExit(0, cli(['resolve', archive, '/lnk']))).stdout, '/etc/\\377\\376\n');
  });

  it('cat takes the name as the bytes the shell passed', async () => {
    const bin = join(REPO_ROOT, 'bin', 'vmimg');
    const catFull = (printfPath: string) =>
      runFull('sh', ['-c', `"$1" "$2" --cache-dir "$3" cat "$4" "$(printf '${printfPath}')"`, 'sh', process.execPath, bin, cache, archive]);
    const cat = async (printfPath: string): Promise<string> => (await catFull(printfPath)).stdout;
    assert.equal(await cat('/data/file-with-umlaut-ae-\\344'), 'ae\n');
    assert.equal(await cat('/data/file-with-umlaut-ae-\\345'), 'aring\n');
    assert.equal(await cat('/bad\\377'), 'FF\n');
    assert.equal(await cat('/bad\\357\\277\\275'), 'real U+FFFD\n');
    const gone = await catFull('/bad\\376').then(() => undefined, (err: RunError) => err); // whited out: not found, and no neighbour either
    assert.equal(gone?.exitCode, 3, gone?.stderr);
    assert.equal(gone?.stdout, '');
  });
});
