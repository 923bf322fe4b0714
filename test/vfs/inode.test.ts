// The inode API that virtio-fs / FUSE / 9p servers use, plus content reads and close().
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { text } from 'node:stream/consumers';
import { isVmimgError } from '../../src/errors.js';
import { ContainerFS, DT } from '../../src/vfs/index.js';
import { tmpDirSync } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

const dir = tmpDirSync('vmimg-vfs-inode-');
const big = randomBytes(3 * 4096 + 123);
const build = () =>
  ContainerFS.fromLayers([
    layer().file('small', 'hello world').file('big', big).file('empty', '').symlink('link', 'small').build(dir),
    layer().file('d/z', '').file('d/a', '').dir('d/m').symlink('d/s', '../small').fifo('d/f').build(dir),
  ]);
const fs = build();

test('lookup / getattr / readdir walk the tree by inode', () => {
  const root = fs.root();
  const d = fs.lookup(root, 'd');
  assert.equal(fs.lookup(d, '..'), root);
  assert.equal(fs.lookup(d, '.'), d);
  const attr = fs.getattr(fs.lookup(root, 'big'));
  assert.equal(attr.size, big.length);
  assert.equal(attr.mode, 0o100644);
  assert.equal(attr.nlink, 1);
  assert.equal(attr.blocks, Math.ceil(big.length / 512));
  assert.equal(attr.blksize, 4096);
  const entries = fs.readdir(d);
  assert.deepEqual(entries.map((e) => e.name), ['a', 'f', 'm', 's', 'z']);
  assert.deepEqual(entries.map((e) => e.type), [DT.REG, DT.FIFO, DT.DIR, DT.LNK, DT.REG]);
  for (const e of entries) assert.equal(e.ino, fs.lookup(d, e.name));
});

test('lookup errors: ENOENT for a missing name, ENOTDIR under a file', () => {
  assert.throws(() => fs.lookup(fs.root(), 'missing'), { code: 'ENOENT' });
  assert.throws(() => fs.lookup(fs.lookup(fs.root(), 'small'), 'x'), { code: 'ENOTDIR' });
  assert.throws(() => fs.getattr(0), { code: 'ENOENT' });
  assert.throws(() => fs.getattr(fs.inodeCount + 1), { code: 'ENOENT' });
  assert.throws(() => fs.getattr(1.5), { code: 'ENOENT' });
});

test('readdir resumed from a cookie gives the same sequence as one call', () => {
  const d = fs.lookup(fs.root(), 'd');
  const all = fs.readdir(d);
  const pieces = [];
  let cookie = 0;
  for (;;) {
    const page = fs.readdir(d, cookie, 2);
    if (page.length === 0) break;
    assert.ok(page.length <= 2);
    pieces.push(...page);
    cookie = page[page.length - 1]!.nextCookie;
  }
  assert.deepEqual(pieces, all);
  assert.deepEqual(fs.readdir(d, all[2]!.nextCookie), all.slice(3));
  assert.deepEqual(fs.readdir(d, 999), []);
  assert.throws(() => fs.readdir(fs.lookup(fs.root(), 'small')), { code: 'ENOTDIR' });
});

test('read at offsets and past EOF clamps to the file size', async () => {
  const ino = fs.lookupPath('/big');
  assert.deepEqual(await fs.read(ino, 0, big.length), big);
  assert.deepEqual(await fs.read(ino, 4000, 200), big.subarray(4000, 4200), 'across a 4096 boundary');
  assert.deepEqual(await fs.read(ino, big.length - 10, 100), big.subarray(big.length - 10));
  assert.equal((await fs.read(ino, big.length, 10)).length, 0);
  assert.equal((await fs.read(ino, big.length + 5000, 10)).length, 0);
  assert.equal((await fs.read(fs.lookupPath('/empty'), 0, 10)).length, 0);
  assert.equal((await fs.read(fs.lookupPath('/small'), 6, 100)).toString(), 'world');
  await assert.rejects(fs.read(fs.root(), 0, 1), { code: 'EISDIR' });
  await assert.rejects(fs.read(fs.lookupPath('/link'), 0, 1), { code: 'EINVAL' });
});

test('createReadStream honours start and an inclusive end', async () => {
  assert.equal(await text(fs.createReadStream('/small')), 'hello world');
  assert.equal(await text(fs.createReadStream('/link', { start: 6, end: 8 })), 'wor');
  const chunks: Buffer[] = [];
  for await (const c of fs.createReadStream('/big', { highWaterMark: 1000 })) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), big);
  await assert.rejects(text(fs.createReadStream('/missing')), { code: 'ENOENT' });
  await assert.rejects(text(fs.createReadStream('/d')), { code: 'EISDIR' });
});

test('readlink by inode and by path; EINVAL on a non-symlink', () => {
  assert.equal(fs.readlink(fs.lookupPath('/d/s')), '../small');
  assert.equal(fs.readlink('/d/s'), '../small');
  assert.throws(() => fs.readlink('/small'), { code: 'EINVAL' });
  assert.deepEqual(fs.listxattr(fs.root()), []);
});

test('contentSha256 gives the recorded digest of regular files only', () => {
  const want = createHash('sha256').update(big).digest('hex');
  assert.equal(fs.contentSha256(fs.lookupPath('/big')), want);
  assert.equal(fs.contentSha256(fs.root()), undefined);
  assert.equal(fs.contentSha256(fs.lookupPath('/link')), undefined);
});

test('statfs reports a full read-only filesystem', () => {
  const s = fs.statfs();
  assert.equal(s.files, fs.inodeCount);
  assert.equal(s.blocks, Math.ceil((big.length + 'hello world'.length) / 4096));
  assert.equal(s.bfree, 0);
});

test('use after close is an ERR_CLOSED error, not a crash', async () => {
  const own = build();
  const ino = own.lookupPath('/big');
  await own.read(ino, 0, 10); // opens the layer file
  const pending = own.read(ino, 0, 10);
  await own.close();
  await own.close(); // idempotent
  await pending.then(
    () => undefined,
    (err) => assert.ok(isVmimgError(err, 'ERR_CLOSED'), String(err)),
  );
  const closed = (err: unknown) => isVmimgError(err, 'ERR_CLOSED');
  assert.ok(own.closed);
  assert.throws(() => own.root(), closed);
  assert.throws(() => own.getattr(1), closed);
  assert.throws(() => own.lstat('/big'), closed);
  assert.throws(() => own.readdir('/'), closed);
  assert.throws(() => own.exists('/big'), closed);
  await assert.rejects(own.read(ino, 0, 1), closed);
  await assert.rejects(own.readFile('/small'), closed);
  await assert.rejects(own.promises.stat('/small'), closed);
  await assert.rejects(text(own.createReadStream('/small')), closed);
});
