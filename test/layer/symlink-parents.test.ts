/**
 * Entries whose parent path passes through a symlink of the same layer (issue 9 item 2; case
 * write-through-symlink-parent; attacks A1.08-A1.11): written into the symlink's target, resolved
 * inside the image root; a lower layer's symlink is replaced by the upper directory (overlayfs).
 * Layers are written by python3's tarfile; test/vfs/umoci.test.ts compares the same shapes with umoci.
 */
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { exportTar } from '../../src/export/index.js';
import { loadFromTar, parsePlatform } from '../../src/index.js';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile } from '../../src/layer/index-format.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { py, pyBuild, pyLayerTar, type PyEntry } from '../helpers/pyimage.js';
import { run, tmpDir } from '../helpers/tools.js';

async function flattenAll(...layers: PyEntry[][]): Promise<{ dir: string; pairs: { indexPath: string; contentsPath: string }[] }> {
  const dir = await tmpDir('vmimg-symparent-');
  const pairs = [];
  for (const entries of layers) pairs.push(await flattenLayer(Readable.from([await pyLayerTar(entries)]), { dir }));
  return { dir, pairs };
}

async function open(...layers: PyEntry[][]): Promise<ContainerFS> {
  return ContainerFS.open((await flattenAll(...layers)).pairs);
}

const text = async (fs: ContainerFS, path: string): Promise<string> => (await fs.readFile(path)).toString();

test('pnpm: an entry below a symlink of its own layer lands in the target; the symlink stays', async () => {
  const layer = [
    py.dir('app/'), py.dir('app/.pnpm/'), py.dir('app/.pnpm/other@1/'), py.dir('app/node_modules/'),
    py.sym('app/node_modules/other', '../.pnpm/other@1'), py.file('app/node_modules/other/src/a.js', 'a\n'),
  ];
  const { pairs } = await flattenAll(layer);
  const { entries } = await readIndexFile(pairs[0]!.indexPath);
  assert.deepEqual(entries.map((e) => e.path).filter((p) => p.endsWith('a.js')), ['app/.pnpm/other@1/src/a.js'], 'the index holds no entry below a symlink');
  const fs = await ContainerFS.open(pairs);
  try {
    assert.equal(fs.readlink('/app/node_modules/other'), '../.pnpm/other@1');
    assert.equal(await text(fs, '/app/node_modules/other/src/a.js'), 'a\n');
    assert.deepEqual(fs.readdir('/app/.pnpm/other@1/src'), ['a.js']);
  } finally {
    await fs.close();
  }
});

test('absolute, chained and escaping targets resolve inside the image root (A1.08, A1.10, A1.11)', async () => {
  const fs = await open([
    py.sym('c1', 'c2'), py.sym('c2', '/abs/t'), py.file('c1/x/f', 'chain\n'),
    py.sym('evil', '/'), py.file('evil/etc/passwd', 'A1.08\n'),
    py.sym('up', '../../../../../../'), py.file('up/tmp/pwned', 'A1.10\n'),
    py.sym('etc2', '/etc'), { name: 'etc2/shadow', data: 'A1.11\n' },
    py.sym('rel', 'a/../b/./c'), py.file('rel/f', 'rel\n'),
  ]);
  try {
    assert.equal(await text(fs, '/abs/t/x/f'), 'chain\n');
    assert.equal(await text(fs, '/etc/passwd'), 'A1.08\n');
    assert.equal(await text(fs, '/tmp/pwned'), 'A1.10\n');
    assert.equal(await text(fs, '/etc/shadow'), 'A1.11\n');
    assert.equal(await text(fs, '/b/c/f'), 'rel\n');
    assert.deepEqual(fs.readdir('/'), ['abs', 'b', 'c1', 'c2', 'etc', 'etc2', 'evil', 'rel', 'tmp', 'up']);
    for (const link of ['c1', 'evil', 'up', 'etc2', 'rel']) assert.ok(fs.lstat(`/${link}`).isSymbolicLink(), link);
    // the tar export carries no entry below a symlink (GNU tar lists it)
    const file = join(await tmpDir('vmimg-symparent-export-'), 'root.tar');
    await exportTar(fs, createWriteStream(file));
    const names = (await run('tar', ['-tf', file])).trim().split('\n').map((n) => n.replace(/^\.\//, '').replace(/\/$/, ''));
    const links = new Set(['c1', 'c2', 'evil', 'up', 'etc2', 'rel']);
    assert.deepEqual(names.filter((n) => [...links].some((l) => n.startsWith(`${l}/`))), []);
  } finally {
    await fs.close();
  }
});

test('later entries of the layer: a directory replacing the symlink stops the redirection', async () => {
  const fs = await open([py.dir('t/'), py.sym('x', 't'), py.file('x/a', 'a\n'), py.dir('x/'), py.file('x/b', 'b\n'), py.sym('y', 't'), py.file('y', 'plain\n'), py.file('y2/k', 'k\n')]);
  try {
    assert.deepEqual(fs.readdir('/t'), ['a']);
    assert.deepEqual(fs.readdir('/x'), ['b']);
    assert.equal(await text(fs, '/y'), 'plain\n');
  } finally {
    await fs.close();
  }
});

test('whiteouts, opaque markers and hardlink targets below a same-layer symlink act on its target', async () => {
  const fs = await open(
    [py.file('t/gone', 'g\n'), py.file('t/kept', 'k\n'), py.file('o/old', 'o\n'), py.dir('real/')],
    [py.sym('x', 't'), py.file('x/.wh.gone'), py.sym('p', 'o'), py.file('p/.wh..wh..opq'), py.file('p/new', 'n\n'),
      py.file('real/f', 'f\n'), py.sym('d', 'real'), py.hard('h', 'd/f'), py.sym('s', 'real'), py.hard('s2', 's'), py.file('s2/via-hardlinked-symlink', 'v\n')],
  );
  try {
    assert.deepEqual(fs.readdir('/t'), ['kept']);
    assert.deepEqual(fs.readdir('/o'), ['new']);
    assert.equal(fs.lstat('/h').ino, fs.lstat('/real/f').ino);
    assert.equal(fs.lstat('/h').nlink, 2);
    assert.equal(await text(fs, '/real/via-hardlinked-symlink'), 'v\n');
  } finally {
    await fs.close();
  }
});

test('a symlink loop on the way is ERR_INVALID_LAYER naming the entry', async () => {
  await assert.rejects(open([py.sym('l1', 'l2'), py.sym('l2', 'l1'), py.file('l1/f', 'x')]), {
    code: 'ERR_INVALID_LAYER',
    message: /"l1\/f": its parent path passes through more than 40 symlinks/,
  });
});

test('case write-through-symlink-parent: a lower layer\'s symlink is replaced by the upper directory (overlayfs)', async () => {
  const work = await tmpDir('vmimg-symparent-case-');
  await pyBuild({
    layers: {
      l1: [py.dir('app/'), py.file('app/.pnpm/pkg@1/node_modules/pkg/index.js', 'pkg\n'), py.dir('app/node_modules/'),
        py.sym('app/node_modules/pkg', '../.pnpm/pkg@1/node_modules/pkg'), py.sym('app/node_modules/other', '../.pnpm/other@1/node_modules/other'),
        py.file('app/node_modules/other/src/a.js', 'a\n')],
      l2: [py.file('app/node_modules/pkg/src/extra.js', 'extra\n')],
    },
    layout: { dir: join(work, 'layout'), images: [{ layers: ['l1', 'l2'], tag: 'latest' }], archive: join(work, 'img.tar') },
  });
  const image = await loadFromTar(join(work, 'img.tar'), { cacheDir: await tmpDir('vmimg-symparent-cache-'), platform: parsePlatform('linux/amd64') });
  const fs = await ContainerFS.open(image.dir);
  try {
    assert.equal(await text(fs, '/app/.pnpm/other@1/node_modules/other/src/a.js'), 'a\n');
    assert.equal(fs.readlink('/app/node_modules/other'), '../.pnpm/other@1/node_modules/other');
    assert.ok(fs.lstat('/app/node_modules/pkg').isDirectory(), 'the upper layer\'s directory replaces the lower symlink');
    assert.deepEqual(fs.readdir('/app/node_modules/pkg'), ['src']);
    assert.deepEqual(fs.readdir('/app/.pnpm/pkg@1/node_modules/pkg'), ['index.js']);
  } finally {
    await fs.close();
  }
});
