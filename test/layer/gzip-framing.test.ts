/**
 * A gzip layer whose diff_id is expected is inflated without its CRC-32 (src/layer/gzip-framing.ts):
 * the framing around the deflate data is read by vmimg, so every header field gzip allows (FEXTRA,
 * FNAME, FCOMMENT, FHCRC, written by python's zlib and struct, and GNU gzip's own FNAME) must come out
 * as zlib's gunzip reads it, and what zlib refuses (a second member's bad magic, a bad method, reserved
 * flags, a wrong length, a cut) must still fail the layer. A wrong CRC-32 alone fails only a layer whose output is not
 * checked by a diff_id: with one, the sha256 of the output is the stronger check.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { flattenLayer } from '../../src/layer/flatten.js';
import { run, tmpDir } from '../helpers/tools.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** `b` in pieces of 1, 7 and 4 096 bytes, so headers and trailers straddle the input's chunks. */
function pieces(b: Buffer): Readable {
  const sizes = [1, 7, 4096];
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < b.length; i++) {
    out.push(b.subarray(at, at + sizes[i % sizes.length]!));
    at += sizes[i % sizes.length]!;
  }
  return Readable.from(out);
}

// python3 writes each variant's header by hand (struct) around zlib's raw deflate of the tar
const PYTHON = `
import sys, struct, zlib
tar = open(sys.argv[1], 'rb').read()
out = sys.argv[2]
def member(data, flags=0, extra=b'', name=b'', comment=b'', crc=None, isize=None, method=8, magic=b'\\x1f\\x8b'):
    head = magic + bytes([method, flags]) + struct.pack('<I', 0) + b'\\x00\\xff'
    if flags & 4: head += struct.pack('<H', len(extra)) + extra
    if flags & 8: head += name + b'\\x00'
    if flags & 16: head += comment + b'\\x00'
    if flags & 2: head += struct.pack('<H', zlib.crc32(head) & 0xffff)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    return head + body + struct.pack('<II', zlib.crc32(data) if crc is None else crc, len(data) if isize is None else isize)
half = len(tar) // 2
variants = {
  'all-fields': member(tar, 4 | 8 | 16 | 2, extra=b'AP\\x04\\x00abcd', name=b'layer.tar', comment=b'made by python'),
  'empty-extra': member(tar, 4, extra=b''),
  'three-members': member(tar[:half], 8, name=b'a') + member(b'') + member(tar[half:], 16, comment=b'c'),
  'zeros-then-garbage': member(tar) + b'\\x00' * 9 + b'garbage',
  'bad-magic': member(tar[:half]) + member(tar[half:], magic=b'\\x1f\\x8c'),
  'bad-method': member(tar, method=7),
  'reserved-flag': member(tar, 0x20),
  'wrong-length': member(tar, isize=len(tar) + 1),
  'wrong-crc': member(tar, crc=zlib.crc32(tar) ^ 1),
  'garbage-after': member(tar) + b'not gzip',
  'cut-in-header': member(tar, 8, name=b'long-name-here')[:14],
  'cut-in-trailer': member(tar)[:-3],
}
for k, v in variants.items():
    open(out + '/' + k + '.gz', 'wb').write(v)
`;

let work: string;
let tar: Buffer;

before(async () => {
  work = await tmpDir('vmimg-gzip-framing-');
  await run('bash', ['-c', 'mkdir -p "$1/root/etc" && for i in $(seq 1 30); do seq 1 $((i * 40)) > "$1/root/etc/f$i"; done && tar -C "$1/root" --sort=name -cf "$1/l.tar" .', 'bash', work]);
  tar = readFileSync(join(work, 'l.tar'));
  await run('python3', ['-c', PYTHON, join(work, 'l.tar'), work]);
  // GNU gzip's own header: FNAME (it stores the file's name), mtime
  await run('bash', ['-c', 'cp "$1/l.tar" "$1/named.tar" && gzip -9 "$1/named.tar" && mv "$1/named.tar.gz" "$1/gnu-named.gz"', 'bash', work]);
});

const gz = (name: string): Buffer => readFileSync(join(work, `${name}.gz`));

async function flatten(name: string, withDiffId: boolean): Promise<{ dir: string; result: Promise<unknown> }> {
  const dir = await tmpDir('vmimg-gzip-framing-');
  const bytes = gz(name);
  const result = flattenLayer(pieces(bytes), { dir, compressedSize: bytes.length, ...(withDiffId ? { expectedDiffId: sha(tar) } : {}) });
  return { dir, result };
}

for (const name of ['all-fields', 'empty-extra', 'three-members', 'zeros-then-garbage', 'gnu-named']) {
  test(`${name}: read as zlib's gunzip reads it, with and without the CRC-32`, async () => {
    assert.equal(sha(gunzipSync(gz(name))), sha(tar), "zlib's gunzip reads the tar");
    for (const withDiffId of [true, false]) {
      const { result } = await flatten(name, withDiffId);
      const info = (await result) as { diffId: string; size: number };
      assert.equal(info.diffId, sha(tar), `diff_id (${withDiffId ? 'without' : 'with'} CRC-32)`);
      assert.equal(info.size, tar.length);
    }
  });
}

for (const [name, message] of [
  ['bad-magic', 'incorrect header check'],
  ['bad-method', 'unknown compression method'],
  ['reserved-flag', 'unknown header flags set'],
  ['wrong-length', 'incorrect length check'],
  ['garbage-after', 'incorrect header check'],
  ['cut-in-header', 'unexpected end of file'],
  ['cut-in-trailer', 'unexpected end of file'],
] as const) {
  test(`hazard: ${name} fails the layer with zlib's message, and leaves nothing`, async () => {
    assert.throws(() => gunzipSync(gz(name)), { message: message }, "zlib's gunzip refuses it the same way");
    for (const withDiffId of [true, false]) {
      const { dir, result } = await flatten(name, withDiffId);
      await assert.rejects(result, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_INVALID_LAYER', `${name}: ${err.message}`);
        assert.match(err.message, new RegExp(message), `${name} (${withDiffId ? 'without' : 'with'} CRC-32)`);
        return true;
      });
      assert.deepEqual(readdirSync(dir), [], 'nothing partial left');
    }
  });
}

test('a wrong CRC-32 alone: refused without a diff_id, accepted when the diff_id proves the output', async () => {
  assert.throws(() => gunzipSync(gz('wrong-crc')), { message: 'incorrect data check' });
  const unchecked = await flatten('wrong-crc', false);
  await assert.rejects(unchecked.result, /incorrect data check/);
  const checked = await flatten('wrong-crc', true);
  assert.equal(((await checked.result) as { diffId: string }).diffId, sha(tar));
});
