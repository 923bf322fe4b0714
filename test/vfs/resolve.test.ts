// Path resolution confined to the image root: symlinks in every component, clamping, loops.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContainerFS } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

const dir = tmpDirSync('vmimg-vfs-resolve-');
const fs = ContainerFS.fromLayers([
  layer()
    .file('etc/shadow', 'image shadow')
    .file('etc/os-release', 'ID=test')
    .file('usr/lib/x86_64-linux-gnu/libc.so.6', 'libc')
    .symlink('lib', 'usr/lib')
    .symlink('lib64', '/usr/lib/x86_64-linux-gnu')
    .symlink('usr/lib/arch', 'x86_64-linux-gnu')
    .symlink('chain1', 'chain2')
    .symlink('chain2', '/lib/arch')
    .symlink('escape', '../../../../etc/shadow')
    .symlink('abs-escape', '/../../../etc/os-release')
    .symlink('loop-a', 'loop-b')
    .symlink('loop-b', 'loop-a')
    .symlink('self', 'self')
    .symlink('dangling', '/nope/none')
    .symlink('empty', '')
    .symlink('usr/up', '../etc')
    .build(dir),
]);

test('symlink chain through intermediate components', async () => {
  // chain1 → chain2 → /lib/arch, and /lib → usr/lib, arch → x86_64-linux-gnu
  assert.equal((await fs.readFile('/chain1/libc.so.6')).toString(), 'libc');
  assert.equal(fs.realpath('/chain1/libc.so.6'), '/usr/lib/x86_64-linux-gnu/libc.so.6');
  assert.equal(fs.realpath('lib/arch/'), '/usr/lib/x86_64-linux-gnu');
});

test('absolute symlink resolves against the image root, not the host', async () => {
  assert.equal(fs.realpath('/lib64/libc.so.6'), '/usr/lib/x86_64-linux-gnu/libc.so.6');
  assert.equal((await fs.readFile('/lib64/libc.so.6')).toString(), 'libc');
  assert.equal(fs.readlink('/lib64'), '/usr/lib/x86_64-linux-gnu', 'targets are kept verbatim');
});

test('../../../../etc/shadow is clamped at the image root', async () => {
  assert.equal((await fs.readFile('/escape')).toString(), 'image shadow');
  assert.equal(fs.realpath('/escape'), '/etc/shadow');
  assert.equal((await fs.readFile('/abs-escape')).toString(), 'ID=test');
  assert.equal((await fs.readFile('../../../../../etc/shadow')).toString(), 'image shadow');
  assert.equal(fs.realpath('/..'), '/');
});

test('.. after a symlinked directory goes to the physical parent', () => {
  // /lib/.. is /usr (lib → usr/lib), so /lib/../etc does not exist but /usr/up → ../etc does
  assert.equal(fs.realpath('/lib/..'), '/usr');
  assert.throws(() => fs.stat('/lib/../etc/shadow'), { code: 'ENOENT' });
  assert.equal(fs.realpath('/usr/up/shadow'), '/etc/shadow');
});

test('symlink loop → ELOOP', () => {
  assert.throws(() => fs.stat('/loop-a'), { code: 'ELOOP', syscall: 'stat', path: '/loop-a' });
  assert.throws(() => fs.stat('/self/x'), { code: 'ELOOP' });
  assert.equal(fs.lstat('/loop-a').isSymbolicLink(), true, 'lstat does not follow');
});

test('40 hops are allowed, the 41st is ELOOP', () => {
  const l = layer().file('end', 'reached');
  for (let i = 0; i < 41; i++) l.symlink(`s${i}`, i === 40 ? 'end' : `s${i + 1}`);
  const chain = ContainerFS.fromLayers([l.build(dir)]);
  assert.equal(chain.realpath('/s1'), '/end', '40 links');
  assert.throws(() => chain.realpath('/s0'), { code: 'ELOOP' }, '41 links');
});

test('dangling symlink → ENOENT (and an empty target too)', () => {
  assert.throws(() => fs.stat('/dangling'), { code: 'ENOENT' });
  assert.equal(fs.exists('/dangling'), false);
  assert.equal(fs.lstat('/dangling').isSymbolicLink(), true);
  assert.throws(() => fs.stat('/empty'), { code: 'ENOENT' });
});

test('ENOTDIR through a file, and for a trailing slash on a file', () => {
  assert.throws(() => fs.stat('/etc/shadow/x'), { code: 'ENOTDIR' });
  assert.throws(() => fs.lstat('/etc/shadow/'), { code: 'ENOTDIR' });
  assert.throws(() => fs.readdir('/etc/shadow'), { code: 'ENOTDIR', syscall: 'scandir' });
  assert.throws(() => fs.stat('/etc/shadow/..'), { code: 'ENOTDIR' });
});

test('lstat vs stat on a symlink; a trailing slash follows it', () => {
  assert.ok(fs.lstat('/lib').isSymbolicLink());
  assert.equal(fs.lstat('/lib').mode, 0o120777);
  assert.equal(fs.lstat('/lib').size, 'usr/lib'.length);
  assert.ok(fs.stat('/lib').isDirectory());
  assert.ok(fs.lstat('/lib/').isDirectory());
});

test('paths are cleaned: duplicate slashes, ., relative to the root', () => {
  assert.equal(fs.realpath('//usr///lib/./arch//'), '/usr/lib/x86_64-linux-gnu');
  assert.equal(fs.realpath('usr'), '/usr');
  assert.equal(fs.realpath(''), '/');
  assert.equal(fs.resolvePath('/'), 1);
  assert.equal(fs.lookupPath('/lib'), fs.lookupPath('lib'));
});

test('errors look like Node fs errors', () => {
  try {
    fs.stat('/no/such');
    assert.fail('no error');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.errno, -2);
    assert.equal(e.syscall, 'stat');
    assert.equal(e.path, '/no/such');
    assert.match(e.message, /^ENOENT: no such file or directory, stat '\/no\/such'$/);
  }
});
