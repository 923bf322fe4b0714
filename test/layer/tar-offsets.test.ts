// `.idx` version 2 records where each file's bytes sit in the uncompressed tar (issue 15's lazy reads):
// checked against tars written by GNU tar (ustar, GNU long names, PAX, hardlinks, every sparse format).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile } from '../../src/layer/index-format.js';
import { EntryType, type IndexEntry } from '../../src/layer/entry.js';
import { run, tmpDir } from '../helpers/tools.js';
import { GNU_SPARSE_FORMATS, writeSparseFile } from '../helpers/layers.js';

async function flatten(tar: Buffer): Promise<{ entries: IndexEntry[]; version: number }> {
  const dir = await tmpDir('vmimg-taroff-');
  const info = await flattenLayer(Readable.from([tar]), { dir, name: 'layer' });
  const { header, entries } = await readIndexFile(info.indexPath);
  return { entries, version: header.version };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('each file\'s tarOffset points at its bytes in the tar (ustar, GNU long names, PAX, hardlinks)', async () => {
  const src = await tmpDir('vmimg-taroff-src-');
  const long = `${'d'.repeat(120)}/${'f'.repeat(150)}`;
  mkdirSync(join(src, 'd'.repeat(120)));
  writeFileSync(join(src, long), 'long name content');
  writeFileSync(join(src, 'small'), 'hello');
  writeFileSync(join(src, 'big'), Buffer.alloc(70_000, 0x5a));
  writeFileSync(join(src, 'empty'), '');
  linkSync(join(src, 'small'), join(src, 'hard'));
  for (const format of ['gnu', 'posix']) {
    const tarFile = join(src, `../out-${format}.tar`);
    await run('tar', ['-c', `--format=${format}`, '-f', tarFile, '-C', src, '.']);
    const tar = readFileSync(tarFile);
    const { entries, version } = await flatten(tar);
    assert.equal(version, 2);
    const files = entries.filter((e) => (e.type === EntryType.File || e.type === EntryType.Hardlink) && e.size > 0);
    assert.equal(files.length, 4, format); // long, small, big, and the hardlink (empty has no bytes)
    for (const e of files) {
      assert.equal(e.tarOffset! % 512, 0, `${format} ${e.path}`);
      assert.equal(sha(tar.subarray(e.tarOffset!, e.tarOffset! + e.size)), e.sha256, `${format} ${e.path}: the tar bytes at tarOffset are the file`);
      assert.equal(e.tarSparse, undefined);
    }
    assert.equal(entries.find((e) => e.path === 'empty')!.tarOffset, 0);
    assert.equal(entries.find((e) => e.type === EntryType.Dir)!.tarOffset, 0);
  }
});

test('a sparse file carries its tar range, which the layer reader expands to the file (old GNU, PAX 0.0, 0.1, 1.0)', async () => {
  const src = await tmpDir('vmimg-taroff-sparse-');
  const f = join(src, 'sparse.img');
  writeSparseFile(f);
  writeFileSync(join(src, 'after'), 'after the sparse file');
  const want = sha(readFileSync(f));
  for (const [what, args] of GNU_SPARSE_FORMATS) {
    const tarFile = join(src, '..', 'out.tar');
    await run('tar', ['-c', '--sparse', ...args, '-f', tarFile, '-C', src, 'sparse.img', 'after']);
    const tar = readFileSync(tarFile);
    const { entries } = await flatten(tar);
    const e = entries.find((x) => x.path === 'sparse.img')!;
    assert.ok(e.tarSparse !== undefined, `${what}: flagged sparse`);
    const { headerOffset, storedSize } = e.tarSparse;
    assert.ok(headerOffset % 512 === 0 && headerOffset < e.tarOffset!, what);
    // The range, padded and closed with end-of-archive blocks, is a tar of that one file.
    const range = tar.subarray(headerOffset, e.tarOffset! + storedSize);
    const alone = Buffer.concat([range, Buffer.alloc((512 - (range.length % 512)) % 512 + 1024)]);
    const { entries: again } = await flatten(alone);
    assert.deepEqual(again.map((x) => [x.path, x.size, x.sha256]), [['sparse.img', 9 << 20, want]], what);
    const after = entries.find((x) => x.path === 'after')!;
    assert.equal(tar.subarray(after.tarOffset!, after.tarOffset! + after.size).toString(), 'after the sparse file', what);
  }
});
