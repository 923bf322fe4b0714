/**
 * The flattener hashes in the hash pool's workers (src/layer/layer-hashes.ts): every file's sha256
 * still matches `sha256sum` of the file GNU tar packed, across more bytes than a ring holds, for a
 * gzip layer and a plain one (the case that once raced the blob's read loop), fed in odd chunks or
 * as one 20 MiB chunk; a hardlink right after its file keeps tar order.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile } from '../../src/layer/index-format.js';
import { EntryType } from '../../src/layer/entry.js';
import { run, tmpDir } from '../helpers/tools.js';

let tar: Buffer;
let gz: Buffer;
/** path → sha256sum's digest of the file GNU tar packed. */
const expected = new Map<string, string>();

before(async () => {
  const dir = await tmpDir('vmimg-flatten-pool-');
  const root = join(dir, 'root');
  mkdirSync(join(root, 'd'), { recursive: true });
  // 600 files from 0 bytes to ~64 KiB plus four of 3-5 MiB: ~22 MiB, well past an 8 MiB ring
  let seed = 1;
  const bytes = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    return b;
  };
  for (let i = 0; i < 600; i++) writeFileSync(join(root, 'd', `f${i}`), bytes((i * 7919) % 65_536));
  for (let i = 0; i < 4; i++) writeFileSync(join(root, `big${i}`), bytes((3 << 20) + i * 700_001));
  await run('bash', ['-c', 'cd "$1" && ln d/f5 d/f5-link && tar -cf "$2/l.tar" --sort=name . && gzip -1 -c "$2/l.tar" > "$2/l.tar.gz"', 'bash', root, dir]);
  for (const line of (await run('bash', ['-c', 'cd "$1" && find . -type f -exec sha256sum {} +', 'bash', root])).trim().split('\n')) {
    const [hex, path] = line.split(/\s+/);
    expected.set(path!.replace(/^\.\//, ''), hex!);
  }
  tar = readFileSync(join(dir, 'l.tar'));
  gz = readFileSync(join(dir, 'l.tar.gz'));
});

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** `b` in chunks of 1, 4097, 65 536 and 1 000 003 bytes, over and over. */
function oddChunks(b: Buffer): Readable {
  const sizes = [1, 4097, 65_536, 1_000_003];
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < b.length; at += sizes[i++ % sizes.length]!) out.push(b.subarray(at, at + sizes[i % sizes.length]!));
  return Readable.from(out);
}

async function check(source: Readable, blob: Buffer, what: string): Promise<void> {
  const info = await flattenLayer(source, { dir: await tmpDir('vmimg-flatten-pool-'), expectedDigest: sha(blob), expectedDiffId: sha(tar) });
  assert.equal(info.diffId, sha(tar), what);
  const { entries } = await readIndexFile(info.indexPath);
  const files = entries.filter((e) => e.type === EntryType.File);
  assert.equal(files.length, expected.size - 1, `${what}: every file but the hardlink`);
  for (const e of files) assert.equal(e.sha256, expected.get(e.path), `${what}: ${e.path}`);
  const link = entries.find((e) => e.path === 'd/f5-link');
  assert.equal(link?.type, EntryType.Hardlink, `${what}: the hardlink follows its file`);
}

test('a gzip layer in odd chunks: every file sha256 as sha256sum says, diff_id and blob digest checked', async () => {
  await check(oddChunks(gz), gz, 'gzip');
});

test('a plain layer, in odd chunks and as one 20 MiB chunk', async () => {
  await check(oddChunks(tar), tar, 'plain, odd chunks');
  await check(Readable.from([tar]), tar, 'plain, one chunk');
});
