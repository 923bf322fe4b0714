/**
 * Hardlink identity and hardlinks across layers (issue 9 items 4 and 5; attack A1.20, case
 * hardlink-to-lower-layer). Layers are written by python3's tarfile; the single-layer cases are
 * judged against GNU tar extracting the same tar, the multi-layer ones against umoci in
 * test/vfs/umoci.test.ts (tree-cases).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { loadFromTar, parsePlatform, type ProgressEvent } from '../../src/index.js';
import { flattenLayer } from '../../src/layer/flatten.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { extractWithGnuTar, walkReference } from '../helpers/layers.js';
import { py, pyBuild, pyLayerTar, type PyEntry } from '../helpers/pyimage.js';
import { tmpDir } from '../helpers/tools.js';

/** Flattens python-written layers (bottom first) and opens them as one ContainerFS. */
async function open(...layers: PyEntry[][]): Promise<ContainerFS> {
  const dir = await tmpDir('vmimg-hardlinks-');
  const pairs = [];
  for (const entries of layers) pairs.push(await flattenLayer(Readable.from([await pyLayerTar(entries)]), { dir }));
  return ContainerFS.open(pairs);
}

async function text(fs: ContainerFS, path: string): Promise<string> {
  return (await fs.readFile(path)).toString();
}

/** GNU tar's view of one layer: path → [kind, content or link target, inode]. */
async function gnuTarView(entries: PyEntry[]): Promise<Map<string, { kind: string; ino: number; link?: string }>> {
  const ref = walkReference(await extractWithGnuTar(Buffer.concat([await pyLayerTar(entries), Buffer.alloc(1024)])));
  return new Map([...ref].map(([k, v]) => [k, { kind: v.kind, ino: v.ino, ...(v.link ? { link: v.link.toString() } : {}) }]));
}

test('A1.20: a hardlink keeps the file it named when a later entry of its layer replaces that name', async () => {
  const top = [py.dir('etc/'), py.file('etc/passwd', 'NEW CONTENT\n'), py.hard('etc/hl', 'etc/passwd'), py.sym('etc/passwd', '/nonexistent')];
  const fs = await open([py.dir('etc/'), py.file('etc/passwd', 'root:x:0:0:lower\n')], top);
  try {
    assert.equal(await text(fs, '/etc/hl'), 'NEW CONTENT\n');
    assert.equal(fs.lstat('/etc/hl').nlink, 1);
    assert.equal(fs.readlink('/etc/passwd'), '/nonexistent');
    assert.deepEqual(fs.warnings, []);
  } finally {
    await fs.close();
  }
  const ref = await gnuTarView(top);
  assert.equal(ref.get('etc/hl')?.kind, 'file', 'GNU tar agrees');
  assert.equal(ref.get('etc/passwd')?.kind, 'symlink');
});

test('A1.20 variant: the name becomes a directory; several hardlinks and chains keep one inode', async () => {
  const layer = [
    py.file('f', 'AAAA\n'), py.hard('h', 'f'), py.dir('f/'), py.file('f/inside', 'in\n'),
    py.file('g', 'GGGG\n'), py.hard('g1', 'g'), py.hard('g2', 'g'), py.hard('g3', 'g1'),
    py.file('g', 'other g\n'), py.file('g1', 'other g1\n'),
    py.sym('s', 'target'), py.hard('s2', 's'), py.file('s', 'not a link\n'),
    py.file('r', 'RRRR\n'), py.hard('r1', 'r'), py.hard('r', 'r1'), // the name linked again to its own hardlink
  ];
  const fs = await open(layer);
  try {
    assert.equal(await text(fs, '/h'), 'AAAA\n');
    assert.deepEqual(fs.readdir('/f'), ['inside']);
    assert.equal(await text(fs, '/g2'), 'GGGG\n');
    assert.equal(await text(fs, '/g3'), 'GGGG\n');
    assert.equal(fs.lstat('/g2').ino, fs.lstat('/g3').ino);
    assert.equal(fs.lstat('/g2').nlink, 2);
    assert.equal(await text(fs, '/g'), 'other g\n');
    assert.equal(await text(fs, '/g1'), 'other g1\n');
    assert.equal(fs.readlink('/s2'), 'target', 'a hardlink to a symlink is that symlink');
    assert.equal(await text(fs, '/s'), 'not a link\n');
    assert.equal(fs.lstat('/r').ino, fs.lstat('/r1').ino);
    assert.equal(await text(fs, '/r'), 'RRRR\n');
  } finally {
    await fs.close();
  }
  const ref = await gnuTarView(layer);
  assert.equal(ref.get('g2')?.ino, ref.get('g3')?.ino, 'GNU tar agrees');
  assert.equal(ref.get('h')?.kind, 'file');
  assert.equal(ref.get('s2')?.link, 'target');
  assert.equal(ref.get('r')?.ino, ref.get('r1')?.ino);
});

test('hardlink to a lower layer\'s file: linked to it (one inode, nlink counts both), with a warning', async () => {
  const lower = [py.dir('usr/'), py.dir('usr/lib/'), py.file('usr/lib/libfoo.so.1', 'ELF-foo\n', { mode: 0o755 })];
  const upper = [py.hard('usr/lib/libfoo.so', 'usr/lib/libfoo.so.1'), py.hard('usr/lib/libfoo.so.0', 'usr/lib/libfoo.so'), py.file('usr/lib/libfoo.so.1', 'replaced after the link\n')];
  const fs = await open(lower, upper);
  try {
    assert.equal(await text(fs, '/usr/lib/libfoo.so'), 'ELF-foo\n');
    assert.equal(await text(fs, '/usr/lib/libfoo.so.0'), 'ELF-foo\n');
    assert.equal(fs.lstat('/usr/lib/libfoo.so').ino, fs.lstat('/usr/lib/libfoo.so.0').ino);
    assert.equal(fs.lstat('/usr/lib/libfoo.so').nlink, 2, 'the lower name was replaced: two names left');
    assert.equal(fs.lstat('/usr/lib/libfoo.so').mode & 0o7777, 0o755);
    assert.equal(await text(fs, '/usr/lib/libfoo.so.1'), 'replaced after the link\n');
    assert.equal(fs.warnings.length, 2);
    assert.match(fs.warnings[0]!, /^layer 2: hardlink "usr\/lib\/libfoo.so" names "usr\/lib\/libfoo.so.1", a file of a lower layer \(layer 1\)/);
  } finally {
    await fs.close();
  }
});

test('hardlink to a name that exists in no layer, or to a lower directory, is refused with ERR_INVALID_LAYER', async () => {
  await assert.rejects(open([py.file('a', 'a')], [py.hard('h', 'ghost')]), {
    code: 'ERR_INVALID_LAYER',
    message: /layer 2: hardlink "h" names "ghost", which is neither an earlier entry of its layer nor a file of a lower layer/,
  });
  await assert.rejects(open([py.dir('d/')], [py.hard('h', 'd')]), { code: 'ERR_INVALID_LAYER', message: /a directory/ });
  // a target that only appears later in the same layer is not an earlier entry either
  await assert.rejects(open([py.hard('h', 'later'), py.file('later', 'x')]), { code: 'ERR_INVALID_LAYER' });
});

test('case hardlink-to-lower-layer: an OCI archive loads, with one warning event and no "layer layer"', async () => {
  const work = await tmpDir('vmimg-hl-lower-');
  await pyBuild({
    layers: {
      l1: [py.dir('usr/'), py.dir('usr/lib/'), py.file('usr/lib/libfoo.so.1', 'ELF-foo\n', { mode: 0o755 })],
      l2: [py.dir('usr/'), py.dir('usr/lib/'), py.hard('usr/lib/libfoo.so', 'usr/lib/libfoo.so.1')],
      ghost: [py.hard('nothing', 'not/anywhere')],
    },
    layout: { dir: join(work, 'layout'), images: [{ layers: ['l1', 'l2'], tag: 'ok' }, { layers: ['l1', 'ghost'], tag: 'ghost' }], archive: join(work, 'img.tar') },
  });
  const events: ProgressEvent[] = [];
  const cacheDir = await tmpDir('vmimg-hl-lower-cache-');
  const platform = parsePlatform('linux/amd64');
  const image = await loadFromTar(join(work, 'img.tar'), { cacheDir, platform, tag: 'ok', onProgress: (e) => events.push(e) });
  const warnings = events.filter((e) => e.type === 'warning').map((e) => (e as { message: string }).message);
  assert.deepEqual(warnings, ['layer 2: hardlink "usr/lib/libfoo.so" names "usr/lib/libfoo.so.1", a file of a lower layer (layer 1); linked to it']);
  const fs = await ContainerFS.open(image.dir);
  try {
    assert.equal((await fs.readFile('/usr/lib/libfoo.so')).toString(), 'ELF-foo\n');
    assert.equal(fs.lstat('/usr/lib/libfoo.so.1').nlink, 2);
  } finally {
    await fs.close();
  }
  await assert.rejects(loadFromTar(join(work, 'img.tar'), { cacheDir, platform, tag: 'ghost' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_INVALID_LAYER');
    assert.doesNotMatch(err.message, /layer layer/);
    assert.match(err.message, /hardlink "nothing" names "not\/anywhere"/);
    return true;
  });
});
