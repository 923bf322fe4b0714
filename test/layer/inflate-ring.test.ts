/**
 * Gzip layers are gunzipped by the inflate pool straight into the tar's hash ring (src/layer/inflate-pool.ts):
 * what GNU gzip accepts, zlib's engine accepts the same way (several members, trailing zeros), what it
 * refuses fails the layer with nothing left behind, a small ring under pressure (a small file's
 * bytes still queued for `.contents` while megabytes of headers pass; big files through a 2 MiB
 * ring) keeps every file's bytes and digest, and a 1 MiB extended header fits the smallest ring.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { flattenLayer } from '../../src/layer/flatten.js';
import { readIndexFile } from '../../src/layer/index-format.js';
import { EntryType } from '../../src/layer/entry.js';
import { run, tmpDir } from '../helpers/tools.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Layer {
  tar: Buffer;
  gz: Buffer;
  /** path → sha256sum of the file GNU tar packed. */
  files: Map<string, string>;
}

/** GNU tar of `root` (sorted), `gzip -1` of it, and sha256sum of every regular file. */
async function pack(root: string, dir: string): Promise<Layer> {
  await run('bash', ['-c', 'cd "$1" && tar -cf "$2/l.tar" --sort=name . && gzip -1 -c "$2/l.tar" > "$2/l.tar.gz"', 'bash', root, dir]);
  const files = new Map<string, string>();
  const sums = (await run('bash', ['-c', 'cd "$1" && find . -type f -exec sha256sum {} +', 'bash', root])).trim();
  for (const line of sums.split('\n')) {
    const [hex, path] = line.split(/\s+/);
    files.set(path!.replace(/^\.\//, ''), `sha256:${hex!}`);
  }
  return { tar: readFileSync(join(dir, 'l.tar')), gz: readFileSync(join(dir, 'l.tar.gz')), files };
}

/** Every file's index sha256 and its bytes in `.contents` (written from the ring) as sha256sum says. */
async function checkFiles(info: { indexPath: string; contentsPath: string }, files: Map<string, string>, what: string): Promise<void> {
  const { entries } = await readIndexFile(info.indexPath);
  const contents = readFileSync(info.contentsPath);
  const got = entries.filter((e) => e.type === EntryType.File);
  assert.equal(got.length, files.size, `${what}: every file`);
  for (const e of got) {
    assert.equal(e.sha256 ? `sha256:${e.sha256}` : sha(Buffer.alloc(0)), files.get(e.path), `${what}: ${e.path}'s index digest`);
    assert.equal(sha(contents.subarray(e.offset, e.offset + e.size)), files.get(e.path), `${what}: ${e.path}'s bytes`);
  }
}

/** True when node:zlib's own gunzip refuses `gz`. */
function refused(gz: Buffer): boolean {
  try {
    gunzipSync(gz);
    return false;
  } catch {
    return true;
  }
}

/** `b` in pieces of 1, 777 and 65 536 bytes, over and over. */
function pieces(b: Buffer): Readable {
  const sizes = [1, 777, 65_536];
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < b.length; i++) {
    out.push(b.subarray(at, at + sizes[i % sizes.length]!));
    at += sizes[i % sizes.length]!;
  }
  return Readable.from(out);
}

let small: Layer;
let pressure: Layer;
let work: string;

before(async () => {
  work = await tmpDir('vmimg-inflate-ring-');
  const a = join(work, 'a');
  mkdirSync(join(a, 'etc'), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(join(a, 'etc', `f${i}`), `file ${i}\n`.repeat(i * 50));
  mkdirSync(join(work, 'pa'));
  small = await pack(a, join(work, 'pa'));
  // One 10-byte file, then 6 000 empty files (3 MiB of headers), then three 10 MiB files of repeating
  // bytes: it compresses to little, so the rings are the smallest (2 MiB out, 64 KiB in).
  const b = join(work, 'b');
  mkdirSync(join(b, 'empty'), { recursive: true });
  writeFileSync(join(b, 'a-first'), 'ten bytes!');
  for (let i = 0; i < 6000; i++) writeFileSync(join(b, 'empty', `e${i}`), '');
  for (let i = 0; i < 3; i++) writeFileSync(join(b, `z-big${i}`), Buffer.alloc(10 << 20, `pattern ${i} `));
  mkdirSync(join(work, 'pb'));
  pressure = await pack(b, join(work, 'pb'));
});

test('several gzip members with trailing zeros: the diff_id and files of the whole tar (as gzip -dc reads it)', async () => {
  const half = Math.floor(small.tar.length / 2);
  const members = await run('bash', ['-c', 'head -c "$2" "$1" | gzip -1 > "$3"; tail -c +"$(($2 + 1))" "$1" | gzip -9 >> "$3"; head -c 1024 /dev/zero >> "$3"', 'bash', join(work, 'pa', 'l.tar'), String(half), join(work, 'm.gz')]);
  assert.equal(members, '');
  const gz = readFileSync(join(work, 'm.gz'));
  const gunzipped = await run('bash', ['-c', 'gzip -dc < "$1" 2>/dev/null | sha256sum', 'bash', join(work, 'm.gz')]);
  assert.equal(`sha256:${gunzipped.split(' ')[0]}`, sha(small.tar), 'gzip -dc reads both members');
  const info = await flattenLayer(pieces(gz), { dir: await tmpDir('vmimg-inflate-ring-'), expectedDigest: sha(gz), expectedDiffId: sha(small.tar), compressedSize: gz.length });
  assert.equal(info.size, small.tar.length);
  await checkFiles(info, small.files, 'members');
});

test('hazard: gzip cut short, corrupt, or followed by garbage fails the layer as zlib refuses it, and leaves nothing', async () => {
  // a flipped byte zlib refuses: not every flip is refused (one in a dynamic block's code lengths of
  // symbols the block never uses changes nothing), and the tar's mtimes make the bytes differ per run
  const flipped = Buffer.from(small.gz);
  for (let at = Math.floor(flipped.length / 2); ; at++) {
    flipped[at]! ^= 0xff;
    if (refused(flipped)) break;
    flipped[at]! ^= 0xff;
  }
  const cases: [string, Buffer][] = [
    ['cut short', small.gz.subarray(0, small.gz.length - 100)],
    ['corrupt', flipped],
    ['garbage after the end', Buffer.concat([small.gz, Buffer.from('not gzip at all')])],
  ];
  for (const [what, gz] of cases) {
    assert.throws(() => gunzipSync(gz), `${what}: zlib's own gunzip refuses it too`);
    const dir = await tmpDir('vmimg-inflate-ring-');
    await assert.rejects(flattenLayer(pieces(gz), { dir, expectedDiffId: sha(small.tar) }), (err: Error & { code?: string }) => {
      assert.ok(err.code === 'ERR_INVALID_LAYER' || err.code === 'ERR_DIGEST_MISMATCH', `${what}: ${err.code} ${err.message}`);
      return true;
    });
    assert.deepEqual(readdirSync(dir), [], `${what}: nothing partial left`);
  }
});

test('a small ring under pressure: a queued small file while 3 MiB of headers pass, big files through 2 MiB', async () => {
  assert.ok(pressure.gz.length < 256 << 10, `compresses small (${pressure.gz.length} bytes), so the rings are small`);
  const info = await flattenLayer(pieces(pressure.gz), {
    dir: await tmpDir('vmimg-inflate-ring-'),
    expectedDigest: sha(pressure.gz),
    expectedDiffId: sha(pressure.tar),
    compressedSize: pressure.gz.length,
  });
  assert.equal(info.size, pressure.tar.length);
  await checkFiles(info, pressure.files, 'pressure');
});

test('a small gzip layer whose PAX headers hold 256 KiB of xattrs each: read whole, not stuck on its small ring', async () => {
  const dir = join(work, 'pax');
  mkdirSync(dir, { recursive: true });
  // python's tarfile writes the PAX records (an outside tool); 3 entries x 4 xattrs x 64 KiB
  await run('python3', ['-c', `
import tarfile, io, sys
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    for i in range(3):
        ti = tarfile.TarInfo(f'f{i}')
        ti.size = 3
        ti.pax_headers = {f'SCHILY.xattr.user.k{j}': 'v' * 65536 for j in range(4)}
        t.addfile(ti, io.BytesIO(b'abc'))
`, join(dir, 'x.tar')]);
  await run('bash', ['-c', 'gzip -9 -c "$1/x.tar" > "$1/x.tar.gz"', 'bash', dir]);
  const tar = readFileSync(join(dir, 'x.tar'));
  const gz = readFileSync(join(dir, 'x.tar.gz'));
  assert.ok(gz.length < 16 << 10, 'compresses to a few KiB: the smallest rings');
  const info = await flattenLayer(Readable.from([gz]), { dir: await tmpDir('vmimg-inflate-ring-'), expectedDiffId: sha(tar), compressedSize: gz.length });
  const { entries } = await readIndexFile(info.indexPath);
  assert.equal(entries.filter((e) => e.type === EntryType.File).length, 3);
});
