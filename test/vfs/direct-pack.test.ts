/**
 * `.idx` layers are packed straight from their records (src/vfs/direct-pack.ts, stack-merge.ts) instead
 * of going through the merge. It must give the merge's answers exactly: same inode numbers, names in the
 * same bytewise order, attributes, links, digests, warnings. Layers are written by python3's tarfile and
 * flattened; each image is opened both ways (the records, and the same entries decoded, which always
 * take the merge) and the whole trees are compared. Layers only the merge may judge (a name that is a
 * directory and a file, a dangling hardlink) must make the direct packer give up, and still open.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile, scanIndex } from '../../src/layer/index-format.js';
import { R_SHA256 } from '../../src/layer/index-records.js';
import { RecordEntries } from '../../src/vfs/layer-entries.js';
import { ContainerFS, encodeName, LayeredContainerFS } from '../../src/vfs/index.js';
import { bothWays, dump } from '../helpers/direct-both.js';
import { py, pyLayerTar, type PyEntry } from '../helpers/pyimage.js';
import { run, tmpDir } from '../helpers/tools.js';

const b64 = (bytes: number[]): { b64: string } => ({ b64: Buffer.from(bytes).toString('base64') });

const packed: [string, PyEntry[]][] = [
  ['a tar in sorted, depth-first order with an explicit root', [
    py.dir('./'), py.dir('bin/'), py.file('bin/a', 'a', { mode: 0o4755, uid: 7, gid: 9 }), py.sym('bin/b', 'a'),
    py.dir('etc/'), py.file('etc/passwd', 'root:x:0:0::/:/bin/sh\n'), py.file('etc/empty'),
    { name: 'dev/null', type: 'chr', major: 1, minor: 3 }, { name: 'dev/sda', type: 'blk', major: 8, minor: 0 }, { name: 'run/fifo', type: 'fifo' },
  ]],
  ['children out of order, directories implied before their own entry', [
    py.file('z/y/x', 'x'), py.file('a', 'a'), py.file('z/b', 'b'), py.dir('z/', { mode: 0o700 }), py.file('z/a', 'a2'), py.file('m/k'),
    py.dir('z/y/', { mode: 0o711 }), py.file('B', 'upper case sorts first'),
  ]],
  ['names compared as bytes: non-UTF-8, astral and U+FFFD names', [
    py.file('n/\ufffd'), py.file('n/\u{1f600}'), { name: b64([0x6e, 0x2f, 0xff, 0x61]), data: 'raw' }, py.file('n/a'), py.file('n/~'),
    { name: b64([0x6e, 0x2f, 0xc3]), type: 'dir' }, { name: b64([0x6e, 0x2f, 0xc3, 0x2f, 0x80]), data: 'under a raw dir' },
  ]],
  ['hardlinks, chains and a hardlink to a symlink share inodes', [
    py.dir('d/'), py.file('d/f', 'data'), py.hard('d/h1', 'd/f'), py.hard('e/h2', 'd/h1'), py.sym('d/s', 'f'), py.hard('d/hs', 'd/s'),
    py.file('a/first'), py.hard('a/second', 'd/f'),
  ]],
  ['whiteouts and opaque markers of the only layer hide nothing', [
    py.file('x/.wh.y'), py.file('x/y', 'kept'), py.file('o/.wh..wh..opq'), py.file('o/in', 'kept too'), py.file('.wh.gone'), py.file('q/.wh..wh..opq'),
  ]],
];

for (const [name, entries] of packed) {
  test(`direct pack: ${name} — the merge's tree exactly`, async () => {
    const r = await bothWays(entries);
    assert.equal(r.direct, true, 'packed from the records');
    assert.deepEqual(r.records, r.merged);
  });
}

const merged: [string, PyEntry[]][] = [
  ['a file whose name later becomes a directory', [py.file('a', 'file'), py.file('a/b', 'below')]],
  ['a directory whose name later becomes a file', [py.file('a/b', 'below'), py.file('a', 'file')]],
];

for (const [name, entries] of merged) {
  test(`direct pack gives up and the merge decides: ${name}`, async () => {
    const r = await bothWays(entries);
    assert.equal(r.direct, false, 'left to the merge');
    assert.deepEqual(r.records, r.merged);
  });
}

// The scan resolves each record's directory from the deepest one it shares with the directory resolved
// last (a 5 000-level tree, export/deep.test.ts, walked from the root each time: quadratic): paths that
// go back up, across, share a name prefix, and ghosts (directories only a whiteout names) that a later
// entry makes real, in part.
const cursorCases: [string, PyEntry[][]][] = [
  ['deeper, back up, across and name-prefix siblings', [[
    py.file('a/b/c/d/f'), py.file('ab/x'), py.file('a/b/g'), py.file('a/bc/h'), py.file('a/b/c/d/e/i'), py.file('a/k'), py.dir('a/b/c/', { mode: 0o700 }),
    py.file('a/b/c/d/e/j'), py.file('a/bcd/l'),
  ]]],
  ['ghost directories of whiteouts, some made real by a later entry', [[
    py.file('g/h/i/.wh.y'), py.file('g/h/f'), py.file('u/v/w/.wh.z'), py.file('u/v/w/q/.wh.z'), py.file('u/x'), py.file('u/v/w/q/r/.wh.s'), py.file('u/v/w/q/t'),
    py.file('m/n/.wh.a'), py.file('m/n/o/.wh.b'), py.file('m/n/o/.wh.c'),
  ]]],
  ['the same over a lower layer holding some of the ghosts', [
    [py.dir('g/', { mode: 0o711 }), py.dir('g/h/', { mode: 0o750 }), py.file('g/h/i/y'), py.file('u/v/w/z'), py.dir('u/v/w/q/', { mode: 0o701 })],
    [py.file('g/h/i/.wh.y'), py.file('g/h/f'), py.file('u/v/w/.wh.z'), py.file('u/v/w/q/.wh.z'), py.file('u/x'), py.file('u/v/w/q/r/.wh.s'), py.file('u/v/w/q/t')],
  ]],
];

for (const [name, layers] of cursorCases) {
  test(`direct pack, directories found from the last one: ${name} — the merge's tree exactly`, async () => {
    const r = await bothWays(...layers);
    assert.equal(r.direct, true, 'packed from the records');
    assert.deepEqual(r.records, r.merged);
  });
}

test('a 3000-entry layer in several directories, some listed out of order: the same tree both ways', async () => {
  const entries: PyEntry[] = [];
  for (let i = 0; i < 3000; i++) entries.push(py.file(`d${i % 7}/${i % 3 === 0 ? 'sub/' : ''}f${(i * 7919) % 3001}`, `${i}`));
  const r = await bothWays(entries);
  assert.equal(r.direct, true);
  assert.deepEqual(r.records, r.merged);
});

test('an empty file stores no digest in its record; ContainerFS and decodeIndex report the sha256 of no bytes', async () => {
  const tar = await pyLayerTar([py.file('empty'), py.file('full', 'x'), py.hard('empty2', 'empty')]);
  const info = await flattenLayer(Readable.from([tar]), { dir: await tmpDir('vmimg-empty-sha-') });
  const scanned = scanIndex(readFileSync(info.indexPath));
  const flags = (path: string): number => {
    const records = new RecordEntries(scanned);
    for (let i = 0; i < records.count; i++) if (records.path(i) === path) return scanned.buf[scanned.starts[i]! + 1]!;
    throw new Error(`no record ${path}`);
  };
  assert.equal(flags('empty') & R_SHA256, 0, 'no digest stored');
  assert.equal(flags('full') & R_SHA256, R_SHA256);
  const none = (await run('sha256sum', ['/dev/null'])).split(' ')[0];
  const fs = await ContainerFS.open([info]);
  try {
    assert.equal(fs.contentSha256(fs.lookupPath('/empty')), none);
    assert.equal(fs.contentSha256(fs.lookupPath('/empty2')), none);
    assert.equal(fs.lstat('/empty').nlink, 2);
  } finally {
    await fs.close();
  }
  const decoded = (await readIndexFile(info.indexPath)).entries.find((e) => e.path === 'empty');
  assert.equal(decoded?.sha256, none);
});

test('layers stacked on a directly packed base give the tree of both merged at once', async () => {
  const dir = await tmpDir('vmimg-direct-stack-');
  const lower = await flattenLayer(Readable.from([await pyLayerTar([py.dir('etc/'), py.file('etc/a', 'a'), py.hard('etc/b', 'etc/a'), py.sym('l', 'etc'), py.file('gone', 'g')])]), { dir });
  const upper = await flattenLayer(Readable.from([await pyLayerTar([py.file('etc/c', 'c'), py.file('.wh.gone'), py.hard('etc/d', 'etc/a')])]), { dir });
  const base = await ContainerFS.open([lower]);
  const stacked = await LayeredContainerFS.stack(base, [upper]);
  const whole = await ContainerFS.open([lower, upper]);
  try {
    assert.deepEqual(dump(stacked), dump(whole));
    assert.equal(stacked.lstat('/etc/d').nlink, 3, 'a hardlink to the base layer names the base inode');
    assert.equal((await stacked.readFile('/etc/d')).toString(), 'a');
  } finally {
    await stacked.close();
    await whole.close();
    await base.close();
  }
});
