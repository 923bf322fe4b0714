// Malicious and odd tars built in code (tar-stream's pack); each test is named after the hazard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { pack, type Header } from 'tar-stream';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile } from '../../src/layer/index-format.js';
import { EntryType, type IndexEntry } from '../../src/layer/entry.js';
import { isVmimgError } from '../../src/errors.js';
import { run, tmpDir } from '../helpers/tools.js';
import { GNU_SPARSE_FORMATS, writeSparseFile } from '../helpers/layers.js';

type Spec = Partial<Header> & { name: string } & { body?: string | Buffer };

async function makeTar(specs: Spec[]): Promise<Buffer> {
  const p = pack();
  for (const { body, ...h } of specs) p.entry({ mode: 0o644, mtime: new Date(0), ...h }, body ?? '');
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function flatten(tar: Buffer, name = 'test-layer'): Promise<IndexEntry[]> {
  const dir = await tmpDir('vmimg-hazard-');
  const info = await flattenLayer(Readable.from([tar]), { dir, name });
  return (await readIndexFile(info.indexPath)).entries;
}

async function rejects(tar: Buffer, pattern: RegExp, code = 'ERR_INVALID_LAYER'): Promise<void> {
  const dir = await tmpDir('vmimg-hazard-');
  await assert.rejects(flattenLayer(Readable.from([tar]), { dir, name: 'evil-layer' }), (err: Error) => {
    assert.ok(isVmimgError(err), String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
  assert.deepEqual(readdirSync(dir), [], 'nothing left in the layers dir');
}

const file = (name: string, body = 'x'): Spec => ({ name, body });

test('hazard: ".." escaping the root is refused, naming the layer and the entry', async () => {
  await rejects(await makeTar([file('../escape')]), /evil-layer.*"\.\.\/escape".*escapes/);
  await rejects(await makeTar([file('a/../../escape')]), /escapes/);
  await rejects(await makeTar([{ name: 'x', type: 'symlink', linkname: 'y' }, file('x/../../../etc/passwd')]), /escapes/);
});

test('hazard: ".." that stays inside the root is resolved lexically', async () => {
  const entries = await flatten(await makeTar([file('a/b/../c')]));
  assert.deepEqual(entries.map((e) => e.path), ['a/c']);
});

test('hazard: absolute paths, "./" prefixes, "//" and trailing "/" are normalised to root-relative', async () => {
  const entries = await flatten(
    await makeTar([
      { name: './', type: 'directory' },
      { name: '/etc/', type: 'directory' },
      file('/etc/abs'),
      file('.//usr//bin/./tool'),
      { name: 'var/lib///', type: 'directory' },
    ]),
  );
  assert.deepEqual(entries.map((e) => e.path), ['', 'etc', 'etc/abs', 'usr/bin/tool', 'var/lib']);
});

test('hazard: hardlink pointing outside the root is refused', async () => {
  await rejects(await makeTar([file('a'), { name: 'l', type: 'link', linkname: '../../etc/shadow' }]), /hardlink "l" points outside/);
});

test('hazard: hardlink to itself or a directory is refused; to no earlier entry, left to the merge', async () => {
  // A target that is no earlier entry may be a lower layer's file: the merge links it or refuses it
  // (test/vfs/hardlinks.test.ts); the flattener keeps it as named, without content.
  const kept = await flatten(await makeTar([{ name: 'l', type: 'link', linkname: 'later' }, file('later', 'data')]));
  assert.deepEqual(kept.map((e) => [e.path, e.type, e.linkTarget, e.size]), [['l', EntryType.Hardlink, 'later', 0], ['later', EntryType.File, undefined, 4]]);
  await rejects(await makeTar([file('self'), { name: 'self', type: 'link', linkname: './self' }]), /names itself/);
  await rejects(await makeTar([{ name: 'd', type: 'directory' }, { name: 'l', type: 'link', linkname: 'd' }]), /names the directory/);
});

test('hardlink names are root-relative (not relative to the link) and normalised', async () => {
  const entries = await flatten(await makeTar([file('./dir/f', 'data'), { name: 'dir/l', type: 'link', linkname: './dir/f' }]));
  const link = entries.find((e) => e.path === 'dir/l')!;
  assert.equal(link.type, EntryType.Hardlink);
  assert.equal(link.linkTarget, 'dir/f');
  assert.equal(link.size, 4);
});

test('hazard: whiteouts naming the root, ".", ".." or nothing are refused', async () => {
  await rejects(await makeTar([file('.wh...')]), /whiteout/);
  await rejects(await makeTar([file('a/.wh..')]), /whiteout/);
  await rejects(await makeTar([file('.wh.')]), /whiteout/);
});

test('whiteouts and opaque markers never hide entries of their own layer, whatever the order', async () => {
  const entries = await flatten(
    await makeTar([file('a/.wh.f'), file('a/f', 'kept'), file('d/.wh..wh..opq'), file('d/x'), file('.wh.top'), file('a/.wh..wh.plnk')]),
  );
  const summary = entries.map((e) => `${e.type}:${e.path}`);
  assert.deepEqual(summary, [`${EntryType.Whiteout}:a/f`, `${EntryType.File}:a/f`, `${EntryType.Opaque}:d`, `${EntryType.File}:d/x`, `${EntryType.Whiteout}:top`]);
});

test('hazard: names with tab, newline and unicode survive exactly', async () => {
  const names = ['tab\there', 'new\nline', 'ünï/cödé ✓', 'back\\slash', 'sp ace'];
  const entries = await flatten(await makeTar(names.map((n) => file(n))));
  assert.deepEqual(entries.map((e) => e.path).sort(), [...names].sort());
});

test('hazard: a NUL byte smuggled into a PAX path is refused', async () => {
  await rejects(await makeTar([{ name: 'ok', pax: { path: 'a\0b' } }]), /NUL byte/);
});

test('duplicate entries: the later one wins', async () => {
  const entries = await flatten(await makeTar([file('f', 'first'), file('g'), file('f', 'second!')]));
  assert.deepEqual(entries.map((e) => [e.path, e.size]), [['g', 1], ['f', 7]]);
});

test('archives without end-of-archive blocks (as umoci writes) are read to the end', async () => {
  const tar = await makeTar([file('a', 'hello'), file('b', 'world')]);
  const cut = tar.subarray(0, tar.length - 1024);
  assert.ok(cut.subarray(cut.length - 512).some((b) => b !== 0), 'really no zero blocks');
  assert.deepEqual((await flatten(cut)).map((e) => e.path), ['a', 'b']);
  // Also with the last entry's padding missing.
  assert.deepEqual((await flatten(tar.subarray(0, 512 + 5))).map((e) => e.path), ['a']);
});

test('hazard: a tar truncated inside a header or file data is refused', async () => {
  const tar = await makeTar([file('a', 'x'.repeat(2000)), file('b')]);
  await rejects(tar.subarray(0, 1000), /truncated/);
  await rejects(tar.subarray(0, 2560 + 100), /truncated/);
  await rejects(gzipSync(tar.subarray(0, 700)), /truncated/);
});

test('hazard: not a tar at all (bad header checksum) is refused', async () => {
  await rejects(Buffer.from('<html>not a layer</html>'.repeat(40)), /checksum/);
});

test('GNU sparse files (old GNU, PAX 0.0, 0.1, 1.0; made by GNU tar) are expanded byte for byte', async () => {
  const src = await tmpDir('vmimg-sparse-');
  const f = join(src, 'sparse.img');
  writeSparseFile(f); // 30 data islands (old GNU extension blocks needed) and a trailing hole
  const want = createHash('sha256').update(readFileSync(f)).digest('hex');
  for (const [what, args] of GNU_SPARSE_FORMATS) {
    const tarFile = join(src, 'out.tar');
    await run('tar', ['-c', '--sparse', ...args, '-f', tarFile, '-C', src, 'sparse.img']);
    const tar = readFileSync(tarFile);
    assert.ok(tar.length < 2 << 20, `${what}: GNU tar really wrote it sparse`);
    const entries = await flatten(tar);
    assert.deepEqual(entries.map((e) => [e.path, e.size, e.sha256]), [['sparse.img', 9 << 20, want]], what);
  }
});

test('hazard: a GNU sparse map that does not match the stored data is refused', async () => {
  const tar = await makeTar([{ name: 'f', body: 'abc', pax: { 'GNU.sparse.size': '100', 'GNU.sparse.map': '0,10' } }]);
  await rejects(tar, /sparse map covers 10 bytes but the entry stores 3/);
  await rejects(await makeTar([{ name: 'f', body: 'abc', pax: { 'GNU.sparse.size': '2', 'GNU.sparse.map': '0,3' } }]), /past the real size/);
});

test('devices, fifos and modes from tar types keep rdev and the setuid/setgid/sticky bits', async () => {
  const entries = await flatten(
    await makeTar([
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660 },
      { name: 'fifo', type: 'fifo', mode: 0o600 },
      { name: 'su', mode: 0o4755, body: 'su' },
      { name: 'tmp', type: 'directory', mode: 0o1777 },
      { name: 'ln', type: 'symlink', linkname: '/abs/target' },
    ]),
  );
  const got = entries.map((e) => [e.path, e.type, e.mode.toString(8), e.devMajor, e.devMinor]);
  assert.deepEqual(got, [
    ['dev/null', EntryType.CharDevice, '20666', 1, 3],
    ['dev/loop0', EntryType.BlockDevice, '60660', 7, 0],
    ['fifo', EntryType.Fifo, '10600', 0, 0],
    ['su', EntryType.File, '104755', 0, 0],
    ['tmp', EntryType.Dir, '41777', 0, 0],
    ['ln', EntryType.Symlink, '120644', 0, 0],
  ]);
});

test('xattrs: SCHILY.xattr (binary-safe) and bsdtar LIBARCHIVE.xattr records', async () => {
  const entries = await flatten(
    await makeTar([
      { name: 'a', body: 'a', pax: { 'SCHILY.xattr.user.text': 'hello' } },
      { name: 'b', body: 'b', pax: { 'LIBARCHIVE.xattr.user.b%20x': Buffer.from([0xff, 0, 1]).toString('base64') } },
    ]),
  );
  assert.equal(entries[0]!.xattrs!['user.text']!.toString(), 'hello');
  assert.deepEqual([...entries[1]!.xattrs!['user.b x']!], [0xff, 0, 1]);
});

test('sources yielding plain Uint8Array chunks (web streams) flatten the same', async () => {
  const tar = await makeTar([file('a', 'hello'), file('b', 'x'.repeat(5000))]);
  const dir = await tmpDir('vmimg-hazard-');
  const pieces = [0, 100, 600, 3000, tar.length].slice(1).map((end, i, a) => new Uint8Array(tar.subarray(i === 0 ? 0 : a[i - 1], end)));
  const info = await flattenLayer(Readable.from(pieces), { dir });
  const { entries } = await readIndexFile(info.indexPath);
  assert.deepEqual(entries.map((e) => [e.path, e.size]), [['a', 5], ['b', 5000]]);
});

test('hazard: names, link targets and xattrs too big for the index are ERR_INVALID_LAYER', async () => {
  await rejects(await makeTar([{ name: 'x', body: 'x', pax: { path: `d/${'n'.repeat(70000)}` } }]), /name over 65535 bytes/);
  await rejects(await makeTar([{ name: 'l', type: 'symlink', pax: { linkpath: 't'.repeat(70000) } }]), /link target over/);
  await rejects(await makeTar([{ name: 'x', body: 'x', pax: { [`SCHILY.xattr.user.${'k'.repeat(300)}`]: 'v' } }]), /oversized xattr/);
});

test('a tar arriving in tiny odd-sized chunks flattens exactly like one in a single chunk', async () => {
  const sizes = [0, 1, 511, 512, 513, 4095, 4096, 4097, 10000];
  const bodies = sizes.map((n, i) => Buffer.alloc(n, 65 + i));
  const tar = await makeTar(bodies.map((body, i) => ({ name: `f${i}`, body })));
  const pieces: Buffer[] = [];
  for (let i = 0; i < tar.length; i += 7) pieces.push(tar.subarray(i, i + 7));
  for (const source of [[tar], pieces]) {
    const dir = await tmpDir('vmimg-hazard-');
    const info = await flattenLayer(Readable.from(source), { dir });
    const { entries } = await readIndexFile(info.indexPath);
    const contents = readFileSync(info.contentsPath);
    assert.deepEqual(
      entries.map((e) => [e.size, e.sha256, contents.subarray(e.offset, e.offset + e.size).equals(bodies[Number(e.path.slice(1))]!)]),
      bodies.map((b) => [b.length, createHash('sha256').update(b).digest('hex'), true]),
    );
    assert.ok(entries.every((e) => e.offset % 4096 === 0));
  }
});
