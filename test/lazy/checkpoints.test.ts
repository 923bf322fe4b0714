// Gzip checkpoints (.zran): built with node:zlib (native-block.ts) or pako, every span re-inflated by native zlib from its checkpoint
// alone must equal what `gzip -dc` (an outside tool) makes of the same bytes. Inputs come from GNU tar,
// gzip and the Debian test image (umoci + skopeo); python3's tarfile gives the files' data offsets.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CheckpointBuilder } from '../../src/lazy/checkpoint-builder.js';
import { selfTest as nativeSelfTest } from '../../src/lazy/native-block.js';
import { selfTest } from '../../src/lazy/pako-block.js';
import { inflateSpan, inflateSpanChunks, spanRecord } from '../../src/lazy/span-inflate.js';
import { decodeZran, encodeZran, spanRange, type ZranIndex } from '../../src/lazy/zran-format.js';
import { debianArchive } from '../boot/debian-fixture.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';

const IDS = { digest: `sha256:${'a'.repeat(64)}`, diffId: `sha256:${'b'.repeat(64)}` };

function build(blob: Buffer, spanSize: number, chunk = 65536, engine: 'native' | 'pako' = 'native'): ZranIndex {
  const b = new CheckpointBuilder({ spanSize }, { engine });
  for (let i = 0; i < blob.length; i += chunk) b.push(blob.subarray(i, i + chunk));
  return decodeZran(encodeZran(b.finish(IDS))); // through the codec, as readers see it
}

/** Every span, inflated from its checkpoint alone, equals the reference tar bytes. */
function assertSpans(index: ZranIndex, blob: Buffer, tar: Buffer): void {
  assert.equal(index.tarSize, tar.length);
  assert.equal(index.compressedSize, blob.length);
  for (let i = 0; i < index.checkpoints.length; i++) {
    const r = spanRange(index, i);
    const out = inflateSpan(index, i, blob.subarray(r.cStart, r.cEnd));
    assert.ok(out.equals(tar.subarray(r.uStart, r.uEnd)), `span ${i} (${r.uStart}-${r.uEnd}) differs`);
    // the span worker's way: in pieces through one small reused buffer (an odd size: pieces end anywhere)
    const pieces: Buffer[] = [];
    inflateSpanChunks(spanRecord(index, i), blob.subarray(r.cStart, r.cEnd), Buffer.alloc(4099), (chunk, at) => {
      assert.equal(at, pieces.reduce((n, p) => n + p.length, 0), `span ${i}: chunks in order, none skipped`);
      pieces.push(Buffer.from(chunk));
    });
    assert.ok(Buffer.concat(pieces).equals(tar.subarray(r.uStart, r.uEnd)), `span ${i} (${r.uStart}-${r.uEnd}) differs inflated in pieces`);
  }
}

async function gunzip(file: string): Promise<Buffer> {
  return runBuffer('gzip', ['-dc', file]);
}

/** The largest gzip layer blob of the Debian test image's OCI archive. */
async function debianLayer(): Promise<string> {
  const archive = await debianArchive('amd64');
  const dir = await tmpDir('vmimg-lazy-debian-');
  await run('tar', ['-xf', archive, '-C', dir]);
  const blobs = join(dir, 'blobs', 'sha256');
  const gz = readdirSync(blobs).map((n) => join(blobs, n)).filter((f) => readFileSync(f).subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])));
  return gz.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
}

/** python3 tarfile's data offsets of regular files of at least `min` bytes. */
async function largeFileOffsets(tarFile: string, min: number): Promise<number[]> {
  // umoci's layers end without end-of-archive blocks: tarfile then raises at the end (TESTING-NOTES).
  const py = `import tarfile,sys\ntry:\n  for m in tarfile.open(sys.argv[1]):\n    if m.isreg() and m.size >= ${min}: print(m.offset_data)\nexcept tarfile.ReadError: pass`;
  return (await run('python3', ['-c', py, tarFile])).split('\n').filter(Boolean).map(Number);
}

describe('gzip checkpoints', () => {
  test('the pako self-test passes on the pinned pako; the native one on this Node', () => {
    selfTest();
    assert.equal(nativeSelfTest(), undefined);
  });

  test('the Debian test image layer: every span equals gzip -dc, mid-byte checkpoints included, one before each large file', async () => {
    requireTools(['gzip', 'python3', 'tar']);
    const layer = await debianLayer();
    const blob = readFileSync(layer);
    const tar = await gunzip(layer);
    const index = build(blob, 1 << 20, 100_000);
    assert.ok(index.checkpoints.length >= 10, `${index.checkpoints.length} checkpoints`);
    assert.ok(index.checkpoints.some((c) => c.bits !== 0), 'no checkpoint with a non-zero bit offset');
    assert.ok(index.checkpoints.slice(1).every((c) => c.winLen === 32768), 'full windows after the first 32 KiB');
    assertSpans(index, blob, tar);
    // pako, the fallback where node:zlib's internals changed, finds the same kind of index.
    const viaPako = build(blob, 1 << 20, 100_000, 'pako');
    assert.ok(viaPako.checkpoints.some((c) => c.bits !== 0));
    assertSpans(viaPako, blob, tar);
    // Extra checkpoints: a large file's data starts less than minGap + one block after a checkpoint.
    const dir = await tmpDir('vmimg-lazy-tar-');
    writeFileSync(join(dir, 'layer.tar'), tar);
    const offsets = await largeFileOffsets(join(dir, 'layer.tar'), 1 << 20);
    assert.ok(offsets.length > 0, 'the Debian layer has files of 1 MiB or more');
    const coarse = build(blob, 64 << 20); // no span rule in the way: only member start and large files
    assert.ok(coarse.checkpoints.length > 1, 'extra checkpoints before large files');
    for (const off of offsets) {
      const before = coarse.checkpoints.filter((c) => c.uOff <= off).at(-1)!;
      assert.ok(off - before.uOff < (1 << 20) + (512 << 10), `file data at ${off}: nearest checkpoint at ${before.uOff}`);
    }
    assertSpans(coarse, blob, tar);
  });

  for (const engine of ['native', 'pako'] as const) test(`${engine}: multi-member gzip: a checkpoint at each member start, no span crossing members`, async () => {
    requireTools(['gzip', 'tar']);
    const dir = await tmpDir('vmimg-lazy-members-');
    mkdirSync(join(dir, 'a'));
    // Three members of a tar stream split at arbitrary byte positions (pigz/concatenation-style blobs).
    const files = Array.from({ length: 40 }, (_, i) => `f${i}`);
    for (const [i, f] of files.entries()) writeFileSync(join(dir, 'a', f), Buffer.from(`${f} `.repeat(2000 + i * 500)));
    await run('tar', ['-cf', join(dir, 'all.tar'), '-C', dir, 'a']);
    const tar = readFileSync(join(dir, 'all.tar'));
    const cuts = [0, 100_003, 250_001, tar.length];
    const parts: Buffer[] = [];
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(dir, `p${i}`), tar.subarray(cuts[i]!, cuts[i + 1]!));
      parts.push(await runBuffer('gzip', ['-c', '-1', join(dir, `p${i}`)]));
    }
    writeFileSync(join(dir, 'all.tar.gz'), Buffer.concat(parts));
    const blob = readFileSync(join(dir, 'all.tar.gz'));
    // Odd chunks put member headers (gzip stores the file name) and trailers across chunk ends.
    const index = build(blob, 64 << 10, engine === 'native' ? 13 : 7777, engine);
    assert.equal(index.memberCount, 3);
    const starts = index.checkpoints.filter((c) => c.memberStart);
    assert.deepEqual(starts.map((c) => c.uOff), cuts.slice(0, 3));
    assertSpans(index, blob, await gunzip(join(dir, 'all.tar.gz')));
  });

  test('a corrupted span byte is ERR_DIGEST_MISMATCH before inflating; a flipped .zran byte ERR_INVALID_INDEX', async () => {
    requireTools(['gzip']);
    const dir = await tmpDir('vmimg-lazy-bad-');
    writeFileSync(join(dir, 'x'), Buffer.from(Array.from({ length: 50_000 }, (_, i) => `row ${i}\n`).join('')));
    const blob = await runBuffer('gzip', ['-c', join(dir, 'x')]);
    const index = build(blob, 64 << 10);
    const r = spanRange(index, 1);
    const span = Buffer.from(blob.subarray(r.cStart, r.cEnd));
    span[10]! ^= 1;
    assert.throws(() => inflateSpan(index, 1, span), { code: 'ERR_DIGEST_MISMATCH' });
    const enc = encodeZran(index);
    for (const at of [3, 20, 130, enc.length - 1]) {
      const bad = Buffer.from(enc);
      bad[at]! ^= 0x10;
      assert.throws(() => decodeZran(bad), { code: 'ERR_INVALID_INDEX' }, `byte ${at}`);
    }
  });

  test('native: corrupt deflate data, a wrong length in the trailer and a bad header are ERR_INVALID_LAYER', async () => {
    requireTools(['gzip']);
    const dir = await tmpDir('vmimg-lazy-corrupt-');
    writeFileSync(join(dir, 'x'), Buffer.from(Array.from({ length: 50_000 }, (_, i) => `row ${i}\n`).join('')));
    const blob = await runBuffer('gzip', ['-c', join(dir, 'x')]);
    const bad = (at: number, xor: number): Buffer => {
      const b = Buffer.from(blob);
      b[at]! ^= xor;
      return b;
    };
    for (const [what, input] of [['deflate data', bad(5000, 0xff)], ['trailer ISIZE', bad(blob.length - 2, 1)], ['magic', bad(1, 1)], ['method', bad(2, 1)]] as const) {
      assert.throws(
        () => {
          const b = new CheckpointBuilder({}, { engine: 'native' });
          b.push(input);
          b.finish(IDS);
        },
        { code: 'ERR_INVALID_LAYER' },
        what,
      );
    }
  });

  test('a gzip blob cut short is ERR_INVALID_LAYER', async () => {
    requireTools(['gzip']);
    const dir = await tmpDir('vmimg-lazy-cut-');
    writeFileSync(join(dir, 'x'), Buffer.alloc(300_000, 7));
    const blob = await runBuffer('gzip', ['-c', join(dir, 'x')]);
    const b = new CheckpointBuilder();
    b.push(blob.subarray(0, blob.length - 5));
    assert.throws(() => b.finish(IDS), { code: 'ERR_INVALID_LAYER' });
  });
});
