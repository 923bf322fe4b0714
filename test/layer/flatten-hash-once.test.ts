// Each byte is hashed once (issue 13), and nothing is verified less: the blob digest, the diff_id and
// every file's sha256 are still checked, whoever hashes them. Layers are made by GNU tar and gzip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile } from '../../src/layer/index-format.js';
import { ErrorCode, VmimgError, isVmimgError } from '../../src/errors.js';
import { sharedHashPool } from '../../src/util/hash-pool.js';
import { run, tmpDir } from '../helpers/tools.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A small layer by GNU tar: its plain tar and gzip -6 of it. */
async function layer(): Promise<{ tar: Buffer; gz: Buffer }> {
  const dir = await tmpDir('vmimg-hash-once-');
  mkdirSync(join(dir, 'root', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'root', 'etc', 'hostname'), 'box\n');
  writeFileSync(join(dir, 'root', 'big'), Buffer.alloc(3 << 20, 'x'));
  await run('bash', ['-c', 'tar -C "$1/root" -cf "$1/l.tar" . && gzip -6 -c "$1/l.tar" > "$1/l.tar.gz"', 'bash', dir]);
  return { tar: readFileSync(join(dir, 'l.tar')), gz: readFileSync(join(dir, 'l.tar.gz')) };
}

const chunks = (b: Buffer): Readable => Readable.from([b.subarray(0, 1000), b.subarray(1000, 70_000), b.subarray(70_000)]);

test('a plain tar (docker save) hashed once still gets its digest and diff_id checked', async () => {
  const { tar } = await layer();
  const dir = await tmpDir('vmimg-hash-once-');
  const info = await flattenLayer(chunks(tar), { dir, expectedDigest: sha(tar), expectedDiffId: sha(tar) });
  assert.equal(info.diffId, sha(tar));
  assert.equal(info.digest, sha(tar));
  const { entries } = await readIndexFile(info.indexPath);
  const hostname = entries.find((e) => e.path === 'etc/hostname');
  assert.equal(hostname?.sha256, createHash('sha256').update('box\n').digest('hex'));
  const wrong = `sha256:${'0'.repeat(64)}`;
  await assert.rejects(flattenLayer(chunks(tar), { dir: await tmpDir('vmimg-hash-once-'), expectedDiffId: wrong }), (err: Error) =>
    isVmimgError(err, ErrorCode.DIGEST_MISMATCH),
  );
});

test('a blob checked by its downloader is not hashed again, and its check failing commits nothing', async () => {
  const { tar, gz } = await layer();
  const ok = await flattenLayer(chunks(gz), { dir: await tmpDir('vmimg-hash-once-'), expectedDigest: sha(gz), expectedDiffId: sha(tar), blobVerified: Promise.resolve() });
  assert.equal(ok.digest, sha(gz));
  assert.equal(ok.compressedSize, gz.length);
  const dir = await tmpDir('vmimg-hash-once-');
  const mismatch = new VmimgError(ErrorCode.DIGEST_MISMATCH, 'blob: digest mismatch (the store said so)');
  const failing = Promise.reject(mismatch);
  failing.catch(() => undefined);
  await assert.rejects(
    flattenLayer(chunks(gz), { dir, expectedDigest: sha(gz), expectedDiffId: sha(tar), blobVerified: failing }),
    (err: Error) => isVmimgError(err, ErrorCode.DIGEST_MISMATCH) && /the store said so/.test(err.message),
  );
  assert.deepEqual(readdirSync(dir), [], 'nothing committed, no temp files left');
  // Without a downloader's check the flattener hashes the blob itself, as before.
  await assert.rejects(
    flattenLayer(chunks(gz), { dir, expectedDigest: `sha256:${'1'.repeat(64)}`, expectedDiffId: sha(tar) }),
    (err: Error) => isVmimgError(err, ErrorCode.DIGEST_MISMATCH),
  );
});

test('a plain blob is hashed once, by its tar stream; a corrupt one is still a digest mismatch, a faithful non-tar an invalid layer', async () => {
  const { tar, gz } = await layer();
  const pool = sharedHashPool();
  const opened: boolean[] = [];
  const stream = pool.stream.bind(pool);
  pool.stream = (options) => (opened.push(options?.whole === true), stream(options));
  try {
    await flattenLayer(chunks(tar), { dir: await tmpDir('vmimg-hash-once-'), expectedDigest: sha(tar), expectedDiffId: sha(tar) });
    assert.deepEqual(opened, [true], 'plain: one whole-stream digest (the tar), not one for the blob as well');
    opened.length = 0;
    await flattenLayer(chunks(gz), { dir: await tmpDir('vmimg-hash-once-'), expectedDigest: sha(gz), expectedDiffId: sha(tar) });
    assert.deepEqual(opened, [true, true], 'gzip: the blob and its tar');
  } finally {
    pool.stream = stream;
  }
  const corrupt = Buffer.from(tar);
  corrupt[600]! ^= 0x55; // inside the second header block: its checksum fails
  const dir = await tmpDir('vmimg-hash-once-');
  await assert.rejects(flattenLayer(chunks(corrupt), { dir, expectedDigest: sha(tar) }), (err: Error) => isVmimgError(err, ErrorCode.DIGEST_MISMATCH));
  assert.deepEqual(readdirSync(dir), [], 'nothing left behind');
  await assert.rejects(flattenLayer(chunks(corrupt), { dir, expectedDigest: sha(corrupt) }), (err: Error) => isVmimgError(err, ErrorCode.INVALID_LAYER));
});
