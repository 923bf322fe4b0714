// The ext4 export judged by e2fsprogs: e2fsck -fn finds nothing, and debugfs (ls -p, rdump, stat,
// ea_list) reads back the same tree as `umoci unpack` of the same image: paths, modes, owners,
// sizes, contents, link targets, device numbers, hardlink groups, xattrs. Odd entries: a 50 000-entry
// directory, an xattr block shared by two files, 32-bit ids, a slow symlink, sparse files, > 4 GiB.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, createReadStream, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmimgError } from '../../src/errors.js';
import { exportExt4 } from '../../src/export/index.js';
import { EntryType, type IndexEntry } from '../../src/layer/entry.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { buildBusyboxLayout } from '../helpers/busybox.js';
import { buildRichImage, layoutLayers, xattrsOf } from '../helpers/layers.js';
import { requireTools, run, tmpDir, tmpfsDir } from '../helpers/tools.js';
import { describeTree, diffTrees, openFlattened, umociRootfs } from './compare.js';
import { debugfs, describeExt4, e2fsckClean, ext4Xattrs, listExt4, requireE2fsprogs, statExt4 } from './ext4-read.js';
import { py, pyLayerTar } from '../helpers/pyimage.js';
import { flattenLayer } from '../../src/layer/flatten.js';
import { Readable } from 'node:stream';

const MANY = 50_000;
/** ext4's longest name (255 bytes). */
const NAME_MAX = 'n'.repeat(255);
/** Enough names for a directory of several blocks in the umoci-built image. */
const SOME = 400;
const dirsOf = (want: Map<string, Record<string, unknown>>): string[] => ['', ...[...want].filter(([, d]) => d.kind === 'dir').map(([p]) => p)];
const notLostFound = (p: string): boolean => p === 'lost+found';

async function roundTrip(fs: ContainerFS, rootfs: string, name: string): Promise<{ img: string; want: Map<string, Record<string, unknown>> }> {
  requireE2fsprogs();
  const img = join(await tmpDir('vmimg-ext4-'), `${name}.img`);
  await exportExt4(fs, img, { init: false });
  await e2fsckClean(img);
  const want = describeTree(rootfs);
  const got = await describeExt4(img, dirsOf(want), notLostFound);
  assert.deepEqual(diffTrees(got, want).slice(0, 20), []);
  return { img, want };
}

test('ext4 of the rich image: e2fsck clean; debugfs reads back what umoci unpack gives, xattrs included', async () => {
  requireTools(['getfattr']);
  const { image } = await buildRichImage();
  const [fs, rootfs] = await Promise.all([openFlattened(image), umociRootfs(image)]);
  try {
    const { img, want } = await roundTrip(fs, rootfs, 'rich');
    assert.ok(want.size > 40, `compared ${want.size} paths`);
    for (const path of ['usr/bin/ping', 'usr/bin/su', 'data/orig']) assert.deepEqual(await ext4Xattrs(img, path), await xattrsOf(join(rootfs, path)), path);
  } finally {
    await fs.close();
  }
});

async function populateOdd(dir: string): Promise<void> {
  requireTools(['setfattr', 'truncate']);
  const p = (rel: string): string => join(dir, rel);
  for (const d of ['many', 'xattr', 'ids', 'links', 'sparse', `names/${NAME_MAX}`]) mkdirSync(p(d), { recursive: true });
  writeFileSync(p(`names/${NAME_MAX}/${NAME_MAX}`), 'a name of 255 bytes in a directory of 255\n');
  writeFileSync(p(`names/${'é'.repeat(127)}x`), 'UTF-8, 255 bytes\n');
  symlinkSync(`${NAME_MAX}/${NAME_MAX}`, p(`names/${'l'.repeat(255)}`));
  for (let i = 0; i < SOME; i++) writeFileSync(p(`many/entry-${String(i).padStart(5, '0')}${'x'.repeat(i % 40)}`), '');
  for (const f of ['big', 'big2']) {
    writeFileSync(p(`xattr/${f}`), `${f}\n`);
    await run('setfattr', ['-n', 'user.big', '-v', `0x${'ab'.repeat(3000)}`, p(`xattr/${f}`)]);
    await run('setfattr', ['-n', 'trusted.t', '-v', 'tvalue', p(`xattr/${f}`)]);
  }
  writeFileSync(p('ids/high'), 'high ids\n');
  chownSync(p('ids/high'), 200_000, 300_000);
  symlinkSync(`/${'t'.repeat(100)}/${'u'.repeat(100)}`, p('links/slow'));
  symlinkSync('short', p('links/fast'));
  // 40 MiB with six islands of data between holes: more than four extents, an extent tree of depth 1
  const fd = openSync(p('sparse/file'), 'w');
  ftruncateSync(fd, 40 << 20);
  for (let i = 0; i < 6; i++) writeSync(fd, Buffer.alloc(5000, 65 + i), 0, 5000, i * (7 << 20));
  closeSync(fd);
}

test('ext4 of odd entries: a multi-block directory, a shared xattr block, 32-bit ids, slow symlinks, holes, 255-byte names', async () => {
  const image = await buildBusyboxLayout({ arch: 'amd64', tag: 'ext4-odd', extraLayers: [{ populate: populateOdd }] });
  const [fs, rootfs] = await Promise.all([openFlattened(image), umociRootfs(image)]);
  try {
    const { img, want } = await roundTrip(fs, rootfs, 'odd');
    assert.ok(want.size > SOME, `compared ${want.size} paths`);
    for (const f of ['xattr/big', 'xattr/big2']) {
      const x = await ext4Xattrs(img, f);
      assert.deepEqual(x, { 'user.big': 'ab'.repeat(3000), 'trusted.t': Buffer.from('tvalue').toString('hex') });
    }
    const [big, big2] = await Promise.all([statExt4(img, 'xattr/big'), statExt4(img, 'xattr/big2')]);
    const acl = (s: string): string => /File ACL: (\d+)/.exec(s)![1]!;
    assert.notEqual(acl(big), '0', 'the large xattr lives in an xattr block');
    assert.equal(acl(big), acl(big2), 'identical xattr sets share one block');
    const sparse = await statExt4(img, 'sparse/file');
    assert.match(sparse, /Blockcount: (\d+)/);
    assert.ok(Number(/Blockcount: (\d+)/.exec(sparse)![1]) <= 13 * 8, `holes stay holes:\n${sparse}`);
    assert.match(sparse, /Level Entries|EXTENTS:\n\(ETB0\)/, 'six extents need a tree block');
    const slow = await statExt4(img, 'links/slow');
    assert.match(slow, /EXTENTS:/, 'a 203-byte target is a slow symlink with a data block');
    assert.match(await statExt4(img, 'links/fast'), /Fast link dest: "short"/);
    assert.ok(want.has(`names/${NAME_MAX}/${NAME_MAX}`) && want.has(`names/${'l'.repeat(255)}`), 'umoci kept the 255-byte names');
  } finally {
    await fs.close();
  }
});

test('ext4 of a directory with 50 000 entries (a python3 tarfile layer): e2fsck clean, every name listed once', async () => {
  requireE2fsprogs();
  const names = Array.from({ length: MANY }, (_, i) => `n${i.toString(36)}${'-'.repeat(i % 50)}`);
  const tar = await pyLayerTar([py.dir('big'), ...names.map((n) => py.file(`big/${n}`))]);
  const dir = await tmpDir('vmimg-ext4-many-');
  const layer = await flattenLayer(Readable.from([tar]), { dir });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ layers: [layer.diffId] }));
  const fs = await ContainerFS.open(dir);
  try {
    const img = join(dir, 'many.img');
    await exportExt4(fs, img, { init: false });
    await e2fsckClean(img);
    const listed = await listExt4(img, ['big']);
    const got = [...listed.keys()].filter((p) => p.startsWith('big/')).map((p) => p.slice(4)).sort();
    assert.deepEqual(got, [...names].sort());
    assert.ok(new Set([...listed.values()].map((e) => e.ino)).size >= MANY, 'one inode per name');
  } finally {
    await fs.close();
  }
});

test('ext4 keeps nanosecond mtimes, is deterministic, and refuses a --size that is too small with the size needed', async () => {
  requireE2fsprogs();
  const image = await buildBusyboxLayout({ arch: 'arm64', tag: 'ext4-small' });
  const fs = await openFlattened(image);
  try {
    const dir = await tmpDir('vmimg-ext4-det-');
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    const ra = await exportExt4(fs, a, { init: false, seed: 'same' });
    await exportExt4(fs, b, { init: false, seed: 'same' });
    const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
    assert.equal(sha(a), sha(b), 'same input, same bytes');
    assert.match(await run('debugfs', ['-R', 'stats', a]), new RegExp(`Filesystem UUID:\\s+${ra.uuid}`));
    const ino = fs.lookupPath('/bin/busybox');
    const { mtimeSec, mtimeNsec } = fs.getattr(ino);
    const m = / mtime: 0x([0-9a-f]{8}):([0-9a-f]{8})/.exec(await statExt4(a, 'bin/busybox'))!;
    assert.deepEqual([parseInt(m[1]!, 16), parseInt(m[2]!, 16) >>> 2], [mtimeSec, mtimeNsec]);
    await assert.rejects(exportExt4(fs, join(dir, 'c.img'), { init: false, sizeBytes: 1 << 20 }), (e: unknown) => {
      assert.ok(isVmimgError(e, 'ERR_TOO_LARGE'), String(e));
      assert.match(e.message, /needs \d+ bytes \(\d+ MiB\) as ext4; --size is 1048576 bytes/);
      return true;
    });
    const exact = await exportExt4(fs, join(dir, 'd.img'), { init: false, sizeBytes: 200 << 20 });
    assert.equal(exact.sizeBytes, 200 << 20);
    await e2fsckClean(join(dir, 'd.img'));
  } finally {
    await fs.close();
  }
});

test('ext4 of a 5 GiB sparse file: i_size_high, extents past 2^20 blocks, holes kept, data where it was', async () => {
  requireE2fsprogs();
  requireTools(['truncate', 'dd']);
  const dir = tmpfsDir('vmimg-ext4-huge-'); // 5 GiB of holes read on tmpfs: see tmpfsDir
  const contents = join(dir, 'layer.contents');
  const size = 5 * 2 ** 30 + 12345;
  await run('truncate', ['-s', String(size), contents]);
  const islands = [0, 2 ** 31, 2 ** 32 - 4096, 2 ** 32 + 8192, 9 * 2 ** 29 + 1, size - 100];
  for (const [i, at] of islands.entries()) {
    await run('sh', ['-c', `printf 'island-${i}' | dd of='${contents}' bs=1 seek=${at} conv=notrunc status=none`]);
  }
  const entry = (path: string, type: number, mode: number, extra: Partial<IndexEntry> = {}): IndexEntry =>
    ({ type, path, mode, uid: 0, gid: 0, mtimeSec: 1, mtimeNsec: 0, size: 0, offset: 0, devMajor: 0, devMinor: 0, ...extra }) as IndexEntry;
  const fs = ContainerFS.fromLayers([{ contentsPath: contents, entries: [entry('', EntryType.Dir, 0o40755), entry('huge', EntryType.File, 0o100644, { size })] }]);
  try {
    const img = join(dir, 'huge.img');
    const r = await exportExt4(fs, img, { init: false });
    assert.ok(r.holeBlocks > 1_300_000, `${r.holeBlocks} hole blocks`);
    assert.ok(r.usedBytes < 64 << 20, `${r.usedBytes} bytes used: the holes take no blocks`);
    await e2fsckClean(img);
    const stat = await statExt4(img, 'huge');
    assert.match(stat, new RegExp(`Size: ${size}\\b`));
    // each island's logical block maps to a physical block holding its bytes
    const extents = [...stat.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)/g)].map((m) => ({ logical: Number(m[1]), length: Number(m[2] ?? m[1]) - Number(m[1]) + 1, physical: Number(m[3]) }));
    for (const [i, at] of islands.entries()) {
      const lb = Math.floor(at / 4096);
      const e = extents.find((x) => x.logical <= lb && lb < x.logical + x.length)!;
      assert.ok(e, `logical block ${lb} is mapped:\n${stat}`);
      const fd = openSync(img, 'r');
      const buf = Buffer.alloc(16);
      readSync(fd, buf, 0, 16, (e.physical + lb - e.logical) * 4096 + (at % 4096));
      closeSync(fd);
      assert.equal(buf.toString('latin1', 0, `island-${i}`.length), `island-${i}`);
    }
  } finally {
    await fs.close();
  }
});

test('ext4 checks file bytes against the index sha256 (ERR_DIGEST_MISMATCH naming the file); verify: false writes them as they are', async () => {
  requireE2fsprogs();
  const image = await buildBusyboxLayout({ arch: 'arm64', tag: 'ext4-small' });
  const dir = await tmpDir('vmimg-ext4-verify-');
  const layers = layoutLayers(image.layout, image.manifestDigest);
  for (const l of layers) await flattenLayer(createReadStream(l.path), { dir, expectedDiffId: l.diffId, expectedDigest: l.digest });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ layers: layers.map((l) => l.diffId) }));
  // flip one byte of busybox's version banner, found by content as attack C03 did
  const contents = readdirSync(dir).filter((n) => n.endsWith('.contents')).map((n) => join(dir, n)).find((f) => readFileSync(f).includes('BusyBox v'))!;
  const at = readFileSync(contents).indexOf('BusyBox v');
  chmodSync(contents, 0o644);
  const fd = openSync(contents, 'r+');
  writeSync(fd, Buffer.from('b'), 0, 1, at);
  closeSync(fd);
  const fs = await ContainerFS.open(dir);
  try {
    await assert.rejects(exportExt4(fs, join(dir, 'a.img'), { init: false }), (e: unknown) => {
      assert.ok(isVmimgError(e, 'ERR_DIGEST_MISMATCH'), String(e));
      assert.match(e.message, /\/bin\/busybox: content does not match/);
      return true;
    });
    const img = join(dir, 'b.img');
    await exportExt4(fs, img, { init: false, verify: false });
    await e2fsckClean(img);
    await debugfs(img, [`dump /bin/busybox ${join(dir, 'busybox')}`]);
    assert.ok(readFileSync(join(dir, 'busybox')).includes('busyBox v'), 'the bytes as they are in the layer');
  } finally {
    await fs.close();
  }
});
