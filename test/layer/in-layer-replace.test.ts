/**
 * A directory replaced inside its own layer (docs/DECISIONS.md "Known gaps", now fixed): extracting the
 * tar in order removes the directory's tree when a non-directory takes its name, so a directory coming
 * back later in the layer starts empty. Layers are written by python3's tarfile; GNU tar extracting
 * the same tar (`--recursive-unlink`, as an in-order extraction into an empty directory) is the judge.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { flattenLayer } from '../../src/layer/flatten.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { py, pyLayerTar, type PyEntry } from '../helpers/pyimage.js';
import { run, tmpDir } from '../helpers/tools.js';

/** Every path of `fs` below the root, with a type letter: what `find` would list. */
function listing(fs: ContainerFS, dir = '/'): string[] {
  const out: string[] = [];
  for (const name of fs.readdir(dir)) {
    const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
    const st = fs.lstat(path);
    out.push(`${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'} ${path}`);
    if (st.isDirectory()) out.push(...listing(fs, path));
  }
  return out;
}

/**
 * GNU tar's in-order extraction of the same tar, listed the same way. `--recursive-unlink` lets a
 * non-directory replace a directory (as Docker and containerd do); it also empties a directory given
 * again, which they do not, so that case runs without it.
 */
async function gnuTarListing(tar: Buffer, unlink: boolean): Promise<{ root: string; list: string[] }> {
  const dir = await tmpDir('vmimg-inlayer-gnu-');
  const file = join(dir, 'layer.tar');
  writeFileSync(file, tar);
  const root = join(dir, 'root');
  await run('mkdir', [root]);
  await run('tar', ['-x', ...(unlink ? ['--recursive-unlink'] : []), '-f', file, '-C', root]);
  const found = await run('find', [root, '-mindepth', '1', '-printf', '%y /%P\n']);
  return { root, list: found.trim().split('\n').sort() };
}

async function flattened(entries: PyEntry[]): Promise<{ fs: ContainerFS; tar: Buffer }> {
  const tar = await pyLayerTar(entries);
  const info = await flattenLayer(Readable.from([tar]), { dir: await tmpDir('vmimg-inlayer-') });
  return { fs: await ContainerFS.open([info]), tar };
}

const cases: [string, PyEntry[], boolean?][] = [
  ['dir -> file -> dir: the first directory\'s children are gone', [
    py.dir('d/'), py.file('d/a', 'a'), py.dir('d/sub/'), py.file('d/sub/x', 'x'),
    py.file('d', 'now a file'), py.dir('d/'), py.file('d/b', 'b'),
  ]],
  ['dir -> symlink -> dir, one level down', [
    py.dir('top/'), py.dir('top/d/'), py.file('top/d/old', 'old'), py.file('top/keep', 'k'),
    py.sym('top/d', 'keep'), py.dir('top/d/'), py.file('top/d/new', 'new'),
  ]],
  ['dir -> file, not restored', [py.dir('gone/'), py.file('gone/inside', 'i'), py.file('gone', 'file'), py.file('other', 'o')]],
  ['a hardlinked file goes with its directory, its hardlink keeps the content', [
    py.dir('d/'), py.file('d/f', 'shared bytes'), py.hard('h', 'd/f'), py.file('d', 'file'),
  ]],
  ['the hardlinks inside the replaced directory go too; the first one outside inherits', [
    py.dir('d/'), py.file('d/f', 'chain'), py.hard('d/h1', 'd/f'), py.hard('h2', 'd/f'), py.hard('h3', 'd/h1'), py.file('d', 'file'),
  ]],
  ['a directory given twice keeps its children (directories merge)', [py.dir('m/'), py.file('m/one', '1'), py.dir('m/'), py.file('m/two', '2')], false],
];

for (const [what, entries, unlink = true] of cases) {
  test(`in-layer replacement: ${what}; as GNU tar extracts it`, async () => {
    const { fs, tar } = await flattened(entries);
    try {
      const gnu = await gnuTarListing(tar, unlink);
      const mine = listing(fs).sort();
      assert.deepEqual(mine, gnu.list);
      for (const line of mine.filter((l) => l.startsWith('f '))) {
        const path = line.slice(2);
        assert.equal((await fs.readFile(path)).toString(), readFileSync(join(gnu.root, path)).toString(), path);
      }
      const links = mine.filter((l) => /\/h\d?$/.test(l)).map((l) => fs.stat(l.slice(2)));
      if (links.length > 1) assert.ok(links.every((st) => st.ino === links[0]!.ino && st.nlink === links.length), 'one inode');
    } finally {
      await fs.close();
    }
  });
}

test('a hardlink to a name its own layer whited out (or hid with an opaque marker) earlier is refused, as extraction fails it', async () => {
  const lower = [py.dir('d/'), py.file('d/x', 'lower x'), py.file('y', 'lower y')];
  const flat = async (entries: PyEntry[]) => flattenLayer(Readable.from([await pyLayerTar(entries)]), { dir: await tmpDir('vmimg-inlayer-wh-') });
  await assert.rejects(flat([py.file('.wh.y', ''), py.hard('h', 'y')]), { code: 'ERR_INVALID_LAYER', message: /hardlink "h" names "y", which a whiteout removed earlier in its layer/ });
  await assert.rejects(flat([py.dir('d/'), py.file('d/.wh..wh..opq', ''), py.hard('h', 'd/x')]), { code: 'ERR_INVALID_LAYER', message: /an opaque marker of "d" hid/ });
  await assert.rejects(flat([py.file('.wh.d', ''), py.hard('h', 'd/x')]), { code: 'ERR_INVALID_LAYER', message: /a whiteout of "d" removed/ });
  // The other order links the lower file, whose name the whiteout then hides: the hardlink keeps it.
  const dir = await tmpDir('vmimg-inlayer-wh2-');
  const pairs = [];
  for (const entries of [lower, [py.hard('h', 'y'), py.file('.wh.y', '')]]) pairs.push(await flattenLayer(Readable.from([await pyLayerTar(entries)]), { dir }));
  const fs = await ContainerFS.open(pairs);
  try {
    assert.equal((await fs.readFile('/h')).toString(), 'lower y');
    assert.equal(fs.exists('/y'), false);
  } finally {
    await fs.close();
  }
});

test('a hardlink inheriting a link to a lower file keeps that file when its layer put a new file at the name in between (as GNU tar extracting both layers in order)', async () => {
  const lower = [py.file('x', 'lower x')];
  const upper = [py.hard('h1', 'x'), py.file('x', 'new x'), py.hard('h2', 'h1'), py.file('h1', 'replaced h1')];
  const dir = await tmpDir('vmimg-inlayer-lower-');
  const pairs = [];
  const tars = [await pyLayerTar(lower), await pyLayerTar(upper)];
  for (const tar of tars) pairs.push(await flattenLayer(Readable.from([tar]), { dir }));
  const root = join(dir, 'gnu');
  await run('mkdir', [root]);
  for (const [k, tar] of tars.entries()) {
    writeFileSync(join(dir, `l${k}.tar`), tar);
    await run('tar', ['-x', '-f', join(dir, `l${k}.tar`), '-C', root]);
  }
  const fs = await ContainerFS.open(pairs);
  try {
    for (const name of ['x', 'h1', 'h2']) assert.equal((await fs.readFile(`/${name}`)).toString(), readFileSync(join(root, name)).toString(), name);
    assert.equal((await fs.readFile('/h2')).toString(), 'lower x');
  } finally {
    await fs.close();
  }
});
