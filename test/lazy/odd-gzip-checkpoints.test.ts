// Gzip layers the checkpoint builder once got wrong (session 7 breaker, H1 and L1), built by python3's
// zlib and tarfile and judged by GNU gzip: every span, inflated from its checkpoint alone, must equal
// `gzip -dc` of the blob. The builder is the one `vmimg index build` and `pull --index-build` share
// (src/lazy/checkpoint-builder.ts), fed in the same 1 MiB chunks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointBuilder } from '../../src/lazy/checkpoint-builder.js';
import { inflateSpan } from '../../src/lazy/span-inflate.js';
import { decodeZran, encodeZran, spanRange, type ZranIndex } from '../../src/lazy/zran-format.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';

const IDS = { digest: `sha256:${'a'.repeat(64)}`, diffId: `sha256:${'b'.repeat(64)}` };

/**
 * python3: a tarfile tar of `files` files (64 KiB random bytes, then 512 KiB of 'Z'), raw-deflated by
 * zlib with `strategy`, framed as one gzip member, written to dir/layer.gz. `bigHeader`: FEXTRA of 65 535
 * bytes, FNAME of 3 MiB, FCOMMENT of 1 MiB + 7 (zlib and GNU gzip accept it); the header's length is printed.
 */
async function pythonGzip(dir: string, strategy: string, bigHeader = false, files = 12): Promise<{ file: string; headerLength: number }> {
  const py = `import io, random, struct, sys, tarfile, zlib
rnd = random.Random(7); buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
    for i in range(${files}):
        data = rnd.randbytes(65536) + b'Z' * 524288
        ti = tarfile.TarInfo('f%d' % i); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
raw = buf.getvalue(); c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.${strategy})
h = b'\\x1f\\x8b\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\xff'
if sys.argv[2] == 'big': h = b'\\x1f\\x8b\\x08\\x1c\\x00\\x00\\x00\\x00\\x00\\xff' + struct.pack('<H', 65535) + b'A' * 65535 + b'n' * (3 << 20) + b'\\0' + b'c' * ((1 << 20) + 7) + b'\\0'
open(sys.argv[1], 'wb').write(h + c.compress(raw) + c.flush() + struct.pack('<II', zlib.crc32(raw), len(raw)))
print(len(h))`;
  const file = join(dir, 'layer.gz');
  const headerLength = Number(await run('python3', ['-c', py, file, bigHeader ? 'big' : 'small']));
  return { file, headerLength };
}

function build(blob: Buffer, spanSize: number): ZranIndex {
  const b = new CheckpointBuilder({ spanSize }, { engine: 'native' });
  for (let i = 0; i < blob.length; i += 1 << 20) b.push(blob.subarray(i, i + (1 << 20)));
  return decodeZran(encodeZran(b.finish(IDS)));
}

function assertSpans(index: ZranIndex, blob: Buffer, tar: Buffer): void {
  assert.equal(index.tarSize, tar.length);
  for (let i = 0; i < index.checkpoints.length; i++) {
    const r = spanRange(index, i);
    const out = inflateSpan(index, i, blob.subarray(r.cStart, r.cEnd));
    assert.ok(out.equals(tar.subarray(r.uStart, r.uEnd)), `span ${i} (${r.uStart}-${r.uEnd}, bits ${index.checkpoints[i]!.bits}) differs`);
  }
}

describe('checkpoints of odd gzip layers', () => {
  test('zlib Z_FIXED over long runs: a boundary whose bits several candidates fit is not taken; every span inflates right', async () => {
    requireTools(['python3', 'gzip']);
    const { file } = await pythonGzip(await tmpDir('vmimg-zfixed-'), 'Z_FIXED');
    const blob = readFileSync(file);
    const tar = await runBuffer('gzip', ['-dc', file]);
    // 64 KiB spans: many boundaries inside the 'Z' runs, where a wrong bit offset decodes the same 8 KiB.
    const index = build(blob, 64 << 10);
    assert.ok(index.checkpoints.length >= 8, `${index.checkpoints.length} checkpoints`);
    assertSpans(index, blob, tar);
  });

  test('GNU gzip over random data (stored blocks, whose zero-padded headers fit several bit offsets alike): a checkpoint every span', async () => {
    requireTools(['python3', 'gzip']);
    const dir = await tmpDir('vmimg-stored-');
    await run('python3', ['-c', `import random; open('${join(dir, 'r')}', 'wb').write(random.Random(3).randbytes(6 << 20))`]);
    const blob = await runBuffer('gzip', ['-c', '-6', join(dir, 'r')]);
    const index = build(blob, 64 << 10);
    assert.ok(index.checkpoints.length >= 90, `${index.checkpoints.length} checkpoints for ${index.tarSize} bytes in 64 KiB spans`);
    assertSpans(index, blob, readFileSync(join(dir, 'r')));
  });

  test('a gzip header of 4 MiB (FEXTRA 64 KiB, FNAME 3 MiB, FCOMMENT 1 MiB) gets checkpoints like any other', async () => {
    requireTools(['python3', 'gzip']);
    const { file, headerLength } = await pythonGzip(await tmpDir('vmimg-bighdr-'), 'Z_DEFAULT_STRATEGY', true, 3);
    const blob = readFileSync(file);
    const tar = await runBuffer('gzip', ['-dc', file]);
    const index = build(blob, 1 << 20);
    assert.equal(index.checkpoints[0]!.cOff, headerLength);
    assertSpans(index, blob, tar);
  });
});
