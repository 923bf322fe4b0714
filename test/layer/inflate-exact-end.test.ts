/**
 * The lost wake-up of session 6's CRC-less inflate (docs/DECISIONS.md): a gzip member whose deflate
 * data ends exactly where an engine call's output room ends (the tar ring's end, or the room the
 * reader gave) is not seen to end in that call; the next call takes and makes nothing, which the worker
 * read as "no progress" and stopped, so the member's trailer was never read and the flatten waited for
 * ever (a PAX-heavy layer met it by chance). Here tars of exactly 1, 2, 3 and 8 MiB (python tarfile,
 * zero-padded to the size, GNU gzip) end exactly at those boundaries: each must flatten, with and
 * without the CRC-32, fed whole or in small pieces, within the test's timeout.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { flattenLayer } from '../../src/layer/flatten.js';
import { run, tmpDir } from '../helpers/tools.js';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MIB = 1 << 20;

// text files (compressible: the whole blob arrives in one or two input messages), the tar padded with
// zeros after its end-of-archive blocks to exactly `size` bytes (trailing zeros are part of the diff_id)
const PYTHON = `
import io, sys, tarfile
size, out = int(sys.argv[1]), sys.argv[2]
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
    for i in range(40):
        data = ''.join(f'{i} line {n}\\n' for n in range(i * 40)).encode()
        info = tarfile.TarInfo(f'etc/f{i:02}')
        info.size = len(data)
        info.pax_headers = {'comment': 'x' * (i * 50)}
        t.addfile(info, io.BytesIO(data))
raw = buf.getvalue().rstrip(b'\\0')
raw += b'\\0' * (-len(raw) % 512)
assert len(raw) + 1024 <= size, len(raw)
open(out, 'wb').write(raw + b'\\0' * (size - len(raw)))
`;

let work: string;
const layers = new Map<number, { tar: Buffer; gz: Buffer }>();

before(async () => {
  work = await tmpDir('vmimg-inflate-end-');
  for (const mib of [1, 2, 3, 8]) {
    const file = join(work, `${mib}.tar`);
    await run('python3', ['-c', PYTHON, String(mib * MIB), file]);
    await run('bash', ['-c', 'gzip -6 -k "$1"', 'bash', file]);
    layers.set(mib, { tar: readFileSync(file), gz: readFileSync(`${file}.gz`) });
  }
});

function chunks(b: Buffer, piece: number): Readable {
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; at += piece) out.push(b.subarray(at, at + piece));
  return Readable.from(out);
}

for (const mib of [1, 2, 3, 8]) {
  test(`a ${mib} MiB tar whose deflate data ends at an output boundary flattens, with and without the CRC-32`, { timeout: 60_000 }, async () => {
    const { tar, gz } = layers.get(mib)!;
    assert.equal(tar.length, mib * MIB);
    for (const withDiffId of [true, false]) {
      for (const piece of [gz.length, 4096]) {
        const dir = await tmpDir('vmimg-inflate-end-');
        const info = await flattenLayer(chunks(gz, piece), { dir, compressedSize: gz.length, ...(withDiffId ? { expectedDiffId: sha(tar) } : {}) });
        assert.equal(info.diffId, sha(tar), `${mib} MiB, pieces of ${piece}, ${withDiffId ? 'no' : 'with'} CRC-32`);
        assert.equal(info.entryCount, 40, 'every file');
      }
    }
  });
}
