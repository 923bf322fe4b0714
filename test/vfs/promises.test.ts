// The node:fs/promises-shaped facade: the same code reads memfs and an image; writes are EROFS.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Volume } from 'memfs';
import { ContainerFS, VfsFileHandle } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

const dir = tmpDirSync('vmimg-vfs-promises-');

/** The tree both filesystems hold: [path, kind, mode or target, content]. */
const TREE: [string, 'd' | 'f' | 'l', number | string, string?][] = [
  ['/etc', 'd', 0o755],
  ['/etc/hostname', 'f', 0o644, 'box\n'],
  ['/etc/motd', 'l', '../usr/share/motd'],
  ['/usr', 'd', 0o755],
  ['/usr/share', 'd', 0o755],
  ['/usr/share/motd', 'f', 0o644, 'welcome\n'],
  ['/usr/bin', 'd', 0o755],
  ['/usr/bin/tool', 'f', 0o755, '#!/bin/sh\necho hi\n'],
  ['/bin', 'l', 'usr/bin'],
  ['/root', 'd', 0o700],
  ['/root/.profile', 'f', 0o600, 'PS1=#\n'],
];

function imageFs(): ContainerFS {
  const l = layer();
  for (const [path, kind, x, content] of TREE) {
    const p = path.slice(1);
    if (kind === 'd') l.dir(p, { mode: x as number });
    else if (kind === 'f') l.file(p, content!, { mode: x as number });
    else l.symlink(p, x as string);
  }
  return ContainerFS.fromLayers([l.build(dir)]);
}

function memFs() {
  const vol = new Volume();
  for (const [path, kind, x, content] of TREE) {
    if (kind === 'd') vol.mkdirSync(path, { mode: x as number });
    else if (kind === 'f') vol.writeFileSync(path, content!, { mode: x as number });
    else vol.symlinkSync(x as string, path);
    if (kind !== 'l') vol.chmodSync(path, x as number);
  }
  return vol.promises;
}

/** Written against fs/promises only: what a launcher might do with an image. */
type Fsp = Pick<typeof import('node:fs/promises'), 'readdir' | 'lstat' | 'stat' | 'readFile' | 'readlink' | 'realpath' | 'access' | 'open'>;
async function describe(fsp: Fsp): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await fsp.readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = d === '/' ? `/${e.name}` : `${d}/${e.name}`;
      const st = await fsp.lstat(p);
      const perm = (st.mode & 0o7777).toString(8);
      if (e.isDirectory() && st.isDirectory()) {
        out.push(`dir ${p} ${perm}`);
        await walk(p);
      } else if (e.isSymbolicLink() && st.isSymbolicLink()) {
        const target = await fsp.stat(p);
        out.push(`link ${p} -> ${await fsp.readlink(p)} (${target.isDirectory() ? 'dir' : 'file'}) = ${await fsp.realpath(p)}`);
      } else if (e.isFile() && st.isFile()) {
        out.push(`file ${p} ${perm} ${st.size} ${JSON.stringify(await fsp.readFile(p, 'utf8'))}`);
      } else {
        out.push(`odd ${p}`);
      }
    }
  };
  await walk('/');
  out.push(`via link: ${JSON.stringify(await fsp.readFile('/bin/tool', { encoding: 'utf8' }))}`);
  const fh = await fsp.open('/etc/hostname', 'r');
  const buf = Buffer.alloc(10);
  const { bytesRead } = await fh.read(buf, 0, 10, 1);
  out.push(`handle: ${bytesRead} ${JSON.stringify(buf.subarray(0, bytesRead).toString())}`);
  await fh.close();
  await fsp.access('/etc/hostname');
  for (const [what, op] of [
    ['readFile missing', () => fsp.readFile('/nope')],
    ['readdir file', () => fsp.readdir('/etc/hostname')],
    ['stat through file', () => fsp.stat('/etc/hostname/x')],
  ] as const) {
    out.push(await op().then(() => `${what}: ok`, (err: NodeJS.ErrnoException) => `${what}: ${err.code}`));
  }
  return out;
}

test('memfs parity: the same fs/promises code reads memfs and the image identically', async () => {
  const image = imageFs();
  const expected = await describe(memFs() as unknown as Fsp);
  const actual = await describe(image.promises as unknown as Fsp);
  assert.deepEqual(actual, expected);
  assert.ok(expected.length > TREE.length, 'the walk saw the tree');
});

test('EROFS on writes, through the facade and through a handle', async () => {
  const { promises: fsp } = imageFs();
  const writes: [string, () => Promise<unknown>][] = [
    ['writeFile', () => fsp.writeFile('/etc/hostname', 'x')],
    ['appendFile', () => fsp.appendFile('/etc/hostname', 'x')],
    ['mkdir', () => fsp.mkdir('/new')],
    ['unlink', () => fsp.unlink('/etc/hostname')],
    ['rm', () => fsp.rm('/usr', { recursive: true })],
    ['rmdir', () => fsp.rmdir('/root')],
    ['rename', () => fsp.rename('/etc', '/etc2')],
    ['symlink', () => fsp.symlink('a', '/b')],
    ['link', () => fsp.link('/etc/hostname', '/h')],
    ['chmod', () => fsp.chmod('/etc', 0o777)],
    ['chown', () => fsp.chown('/etc', 1, 1)],
    ['utimes', () => fsp.utimes('/etc', 1, 1)],
    ['truncate', () => fsp.truncate('/etc/hostname')],
    ['copyFile', () => fsp.copyFile('/etc/hostname', '/x')],
    ['open w', () => fsp.open('/etc/hostname', 'w')],
    ['open r+', () => fsp.open('/etc/hostname', 'r+')],
    ['readFile flag a', () => fsp.readFile('/etc/hostname', { flag: 'a' })],
    ['access W_OK', () => fsp.access('/etc/hostname', fsp.constants.W_OK)],
  ];
  for (const [name, op] of writes) await assert.rejects(op(), { code: 'EROFS' }, name);
  const fh = await fsp.open('/etc/hostname');
  await assert.rejects(fh.write(Buffer.from('x')), { code: 'EROFS' });
  await assert.rejects(fh.truncate(0), { code: 'EROFS' });
  assert.equal(await fsp.readFile('/etc/hostname', 'utf8'), 'box\n', 'nothing changed');
});

test('file handles read sequentially, stat, and refuse use after close with EBADF', async () => {
  const { promises: fsp } = imageFs();
  const fh = await fsp.open('/usr/bin/tool');
  assert.ok(fh instanceof VfsFileHandle);
  const a = await fh.read(Buffer.alloc(4), 0, 4, null);
  const b = await fh.read({ buffer: Buffer.alloc(4) });
  assert.equal(a.buffer.toString() + b.buffer.toString(), '#!/bin/s');
  assert.equal((await fh.readFile('utf8')) as string, 'h\necho hi\n');
  assert.equal((await fh.stat()).mode, 0o100755);
  await fh.close();
  await assert.rejects(fh.read(Buffer.alloc(1), 0, 1, 0), { code: 'EBADF' });
});

test('stats and dirents have the fs shapes', async () => {
  const { promises: fsp } = imageFs();
  const st = await fsp.stat('/root/.profile');
  assert.equal(st.isFile(), true);
  assert.equal(st.isDirectory(), false);
  assert.equal(st.size, 6);
  assert.equal(st.mtimeMs, 1_700_000_000_000);
  assert.equal(st.mtime.getTime(), 1_700_000_000_000);
  assert.equal(typeof st.ino, 'number');
  assert.equal(st.nlink, 1);
  const names = await fsp.readdir('/usr', { recursive: true });
  assert.deepEqual(names, ['bin', 'share', 'bin/tool', 'share/motd']);
  const [first] = await fsp.readdir('/etc', { withFileTypes: true });
  assert.equal(first!.name, 'hostname');
  assert.equal(first!.parentPath, '/etc');
  await assert.rejects(fsp.readdir('/bin/tool'), { code: 'ENOTDIR' });
});
