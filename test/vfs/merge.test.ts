// Layer-merge semantics of ContainerFS: whiteouts, opaque dirs, replacement, hardlinks, metadata.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContainerFS } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer, type LayerBuilder } from '../helpers/vfs-fixtures.js';

const dir = tmpDirSync('vmimg-vfs-merge-');
const fsOf = (...layers: LayerBuilder[]) => ContainerFS.fromLayers(layers.map((l) => l.build(dir)));
const names = (fs: ContainerFS, path: string) => fs.readdir(path);
const text = async (fs: ContainerFS, path: string) => (await fs.readFile(path)).toString();

test('whiteout three levels deep hides only the leaf; its ancestors stay listed', () => {
  const fs = fsOf(
    layer().dir('a').dir('a/b').dir('a/b/c').file('a/b/c/x', 'x').file('a/b/c/y', 'y'),
    layer().whiteout('a/b/c/x'),
  );
  assert.deepEqual(names(fs, '/'), ['a']);
  assert.deepEqual(names(fs, '/a'), ['b']);
  assert.deepEqual(names(fs, '/a/b'), ['c']);
  assert.deepEqual(names(fs, '/a/b/c'), ['y']);
  assert.equal(fs.exists('/a/b/c/x'), false);
});

test('whiteout of a directory hides its whole lower subtree, even by full path', () => {
  const fs = fsOf(layer().file('d/e/f/g', 'g').file('keep', 'k'), layer().whiteout('d'));
  assert.deepEqual(names(fs, '/'), ['keep']);
  assert.throws(() => fs.lstat('/d/e/f/g'), { code: 'ENOENT' });
});

test('opaque ancestor hides every lower path below it, at any depth', () => {
  const fs = fsOf(
    layer().dir('a', { mode: 0o700 }).file('a/b/c/deep', 'old').file('a/top', 'old').file('other', 'o'),
    layer().opaque('a').file('a/new', 'new'),
  );
  assert.deepEqual(names(fs, '/a'), ['new']);
  assert.throws(() => fs.lstat('/a/b/c/deep'), { code: 'ENOENT' });
  assert.throws(() => fs.lstat('/a/b'), { code: 'ENOENT' });
  assert.equal(fs.lstat('/a').mode & 0o7777, 0o700, 'the opaque dir keeps the lower metadata');
  assert.deepEqual(names(fs, '/'), ['a', 'other']);
});

test('opaque marker does not hide entries of its own layer, whatever their order', () => {
  for (const before of [true, false]) {
    const top = layer();
    if (!before) top.opaque('a');
    top.file('a/mine', 'm');
    if (before) top.opaque('a');
    const fs = fsOf(layer().file('a/lower', 'l'), top);
    assert.deepEqual(names(fs, '/a'), ['mine'], `marker ${before ? 'after' : 'before'} the entry`);
  }
});

test('whiteout in the same layer as the entry it names does not hide it', async () => {
  for (const whiteoutFirst of [true, false]) {
    const top = layer();
    if (whiteoutFirst) top.whiteout('f');
    top.file('f', 'new');
    if (!whiteoutFirst) top.whiteout('f');
    const fs = fsOf(layer().file('f', 'old'), top);
    assert.equal(await text(fs, '/f'), 'new', `whiteout ${whiteoutFirst ? 'before' : 'after'} the entry`);
  }
  const alone = fsOf(layer().file('g', 'only').whiteout('g'));
  assert.equal(await text(alone, '/g'), 'only', 'a whiteout never hides its own layer');
});

test('directory → file → directory across layers: the directory comes back empty', async () => {
  const fs = fsOf(
    layer().dir('p', { mode: 0o750 }).file('p/old', 'old'),
    layer().file('p', 'now a file'),
    layer().dir('p', { mode: 0o711, uid: 7 }).file('p/fresh', 'fresh'),
  );
  assert.deepEqual(names(fs, '/p'), ['fresh']);
  const st = fs.lstat('/p');
  assert.ok(st.isDirectory());
  assert.equal(st.mode & 0o7777, 0o711);
  assert.equal(st.uid, 7);
  const mid = fsOf(layer().dir('p').file('p/old', 'old'), layer().file('p', 'now a file'));
  assert.equal(await text(mid, '/p'), 'now a file');
  assert.throws(() => mid.lstat('/p/old'), { code: 'ENOTDIR' });
});

test('directory metadata comes from the topmost layer that has it (never a fixed 0755)', () => {
  const fs = fsOf(
    layer().dir('tmp', { mode: 0o1777 }).dir('root', { mode: 0o700 }).dir('srv', { mode: 0o2775, gid: 50 }),
    layer().dir('root', { mode: 0o750, uid: 1 }).file('tmp/x', '').file('srv/y', ''),
  );
  assert.equal(fs.lstat('/tmp').mode, 0o041777);
  assert.equal(fs.lstat('/root').mode, 0o040750);
  assert.equal(fs.lstat('/root').uid, 1);
  assert.equal(fs.lstat('/srv').mode, 0o042775, 'implied again by a child: lower metadata kept');
  assert.equal(fs.lstat('/srv').gid, 50);
});

test('implicit directories get 0755 root:root mtime 0', () => {
  const fs = fsOf(layer().file('only/implied/here', 'x', { uid: 5, mode: 0o600 }));
  for (const p of ['/', '/only', '/only/implied']) {
    const st = fs.lstat(p);
    assert.equal(st.mode, 0o040755, p);
    assert.equal(st.uid, 0);
    assert.equal(st.gid, 0);
    assert.equal(st.mtimeMs, 0);
  }
  const withRoot = fsOf(layer().dir('', { mode: 0o700, mtime: 5 }).file('f', ''));
  assert.equal(withRoot.lstat('/').mode, 0o040700, 'an explicit root entry sets the root metadata');
});

test('hardlinks share one inode with nlink 2', async () => {
  const fs = fsOf(layer().file('usr/bin/perl', 'perl!', { mode: 0o755 }).hardlink('usr/bin/perl5.36', 'usr/bin/perl'));
  const a = fs.lstat('/usr/bin/perl');
  const b = fs.lstat('/usr/bin/perl5.36');
  assert.equal(a.ino, b.ino);
  assert.equal(a.nlink, 2);
  assert.equal(b.mode, 0o100755);
  assert.equal(await text(fs, '/usr/bin/perl5.36'), 'perl!');
});

test('hardlink whose other name is whited out later keeps the content, nlink decreases', async () => {
  const fs = fsOf(layer().file('a', 'shared').hardlink('b', 'a'), layer().whiteout('a'));
  assert.equal(fs.exists('/a'), false);
  assert.equal(await text(fs, '/b'), 'shared');
  assert.equal(fs.lstat('/b').nlink, 1);
});

test('a file replaced in a higher layer is a new inode; its hardlink partner keeps the old one', async () => {
  const fs = fsOf(layer().file('a', 'v1').hardlink('b', 'a'), layer().file('a', 'v2'));
  const a = fs.lstat('/a');
  const b = fs.lstat('/b');
  assert.notEqual(a.ino, b.ino);
  assert.equal(a.nlink, 1);
  assert.equal(b.nlink, 1);
  assert.equal(await text(fs, '/a'), 'v2');
  assert.equal(await text(fs, '/b'), 'v1');
});

test('devices, fifos, setuid bits, ownership and xattrs are kept as metadata', () => {
  const cap = Buffer.from([1, 0, 0, 2]);
  const fs = fsOf(
    layer()
      .device('dev/null', 'char', 1, 3, { mode: 0o666 })
      .device('dev/sda', 'block', 8, 0, { mode: 0o660, gid: 6 })
      .device('dev/big', 'char', 4100, 300000)
      .fifo('run/fifo', { mode: 0o600 })
      .file('usr/bin/su', 'su', { mode: 0o4755 })
      .file('usr/bin/ping', 'ping', { mode: 0o755, xattrs: { 'security.capability': cap } }),
  );
  assert.equal(fs.lstat('/dev/null').mode, 0o020666);
  assert.equal(fs.lstat('/dev/null').rdev, 0x103);
  assert.ok(fs.lstat('/dev/null').isCharacterDevice());
  assert.equal(fs.lstat('/dev/sda').rdev, 0x800);
  assert.ok(fs.lstat('/dev/sda').isBlockDevice());
  // glibc's makedev, computed with BigInt shifts
  const glibc = (M: bigint, m: bigint) => ((M & 0xfffn) << 8n) | ((M >> 12n) << 44n) | (m & 0xffn) | ((m >> 8n) << 20n);
  assert.equal(fs.lstat('/dev/big').rdev, Number(glibc(4100n, 300000n)));
  assert.ok(fs.lstat('/run/fifo').isFIFO());
  assert.equal(fs.lstat('/usr/bin/su').mode, 0o104755);
  const ping = fs.lookupPath('/usr/bin/ping');
  assert.deepEqual(fs.listxattr(ping), ['security.capability']);
  assert.deepEqual(fs.getxattr(ping, 'security.capability'), cap);
  assert.throws(() => fs.getxattr(ping, 'user.nope'), { code: 'ENODATA' });
});

test('readdir lists names in bytewise (UTF-8) order', () => {
  const list = ['b', 'B', 'a', '_x', 'ä', '😀', '\uffff', 'a.b', 'a-b', 'ab'];
  const l = layer();
  for (const n of list) l.file(`d/${n}`, '');
  const fs = fsOf(l);
  const expected = [...list].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual(names(fs, '/d'), expected);
});

test('a later duplicate in the same layer wins; a directory entry after its children keeps them', async () => {
  const fs = fsOf(layer().file('f', 'first').file('f', 'second').file('d/x', 'x').dir('d', { mode: 0o700 }));
  assert.equal(await text(fs, '/f'), 'second');
  assert.deepEqual(names(fs, '/d'), ['x']);
  assert.equal(fs.lstat('/d').mode, 0o040700);
});

test('inode numbers: root is 1, directory nlink counts subdirectories, numbers are dense', () => {
  const fs = fsOf(layer().dir('a').dir('a/b').dir('a/c').file('a/f', ''));
  assert.equal(fs.root(), 1);
  assert.equal(fs.lstat('/').ino, 1);
  assert.equal(fs.lstat('/a').nlink, 4);
  assert.equal(fs.lstat('/').nlink, 3);
  assert.equal(fs.inodeCount, 5);
  assert.equal(fs.lstat('/a').size, 4096);
});
