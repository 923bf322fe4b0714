// The inflate worker's checkpointing driver (src/lazy/ring-checkpoints.ts: `pull --index-build` inflates
// each layer once, into the flattener's ring) against an adversarial reader: input announced in odd
// pieces, ring room freed a random few bytes at a time. Its output must equal `gzip -dc` (GNU gzip) of
// the blob, and its index the one `vmimg index build` makes from the file in 1 MiB chunks, byte for byte.
// Inputs: python3 tarfile tars (text, random and small files) compressed by GNU gzip, two members
// concatenated, and trailing zeros after the last member.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { OUTPUT_STEP, RingOutput } from '../../src/lazy/block-output.js';
import { CheckpointBuilder, type CheckpointOptions } from '../../src/lazy/checkpoint-builder.js';
import { CHECKPOINT_CHUNK, RingCheckpointer, type RingStreamState } from '../../src/lazy/ring-checkpoints.js';
import { encodeZran } from '../../src/lazy/zran-format.js';
import { requireTools, run, runBuffer, tmpDir } from '../helpers/tools.js';

const IDS = { digest: `sha256:${'a'.repeat(64)}`, diffId: `sha256:${'b'.repeat(64)}` };
const OPTS: Partial<CheckpointOptions> = { spanSize: 256 * 1024, largeFileSize: 300 * 1024, minGap: 128 * 1024 };

/** A small seeded PRNG (mulberry32): the same adversary every run. */
function prng(seed: number): (n: number) => number {
  let a = seed;
  return (n) => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Copies `src` into ring `dst` at stream offset `at` (wrapping), or ring bytes out when `out`. */
function ringCopy(ring: Uint8Array, at: number, bytes: Uint8Array, out = false): void {
  for (let done = 0; done < bytes.length; ) {
    const pos = (at + done) % ring.length;
    const n = Math.min(bytes.length - done, ring.length - pos);
    if (out) bytes.set(ring.subarray(pos, pos + n), done);
    else ring.set(bytes.subarray(done, done + n), pos);
    done += n;
  }
}

/**
 * Drives a RingCheckpointer as the inflate pool and the flattener would, with a random adversary; when
 * neither side can move, waits for the driver's wake-up (its span digests and windows are other threads').
 */
async function throughRing(blob: Buffer, seed: number, ringBytes = 2 << 20): Promise<{ tar: Buffer; zran: Buffer }> {
  const rnd = prng(seed);
  const input = new Uint8Array(new SharedArrayBuffer(2 * CHECKPOINT_CHUNK));
  const ring = new Uint8Array(new SharedArrayBuffer(ringBytes));
  const s: RingStreamState = { inEnd: 0, last: false, limit: ring.length, consumed: 0, produced: 0, done: false, error: undefined };
  let woken: (() => void) | undefined;
  const c = new RingCheckpointer(input, ring, OPTS, () => woken?.());
  const parts: Buffer[] = [];
  let written = 0;
  let read = 0;
  let released = 0;
  try {
    while (!s.done) {
      const room = Math.min(s.consumed + input.length - written, blob.length - written);
      if (room > 0) {
        const n = Math.min(room, 1 + rnd(rnd(2) ? 4096 : 900_000));
        ringCopy(input, written, blob.subarray(written, written + n));
        written += n;
      }
      s.inEnd = written;
      s.last = written === blob.length;
      if (read < s.produced) {
        const part = Buffer.alloc(s.produced - read);
        ringCopy(ring, read, part, true);
        parts.push(part);
        read = s.produced;
      }
      released += rnd(3) === 0 ? read - released : rnd(read - released + 1); // sometimes a few bytes only
      s.limit = released + ring.length;
      const before = s.consumed + s.produced + written;
      c.step(s);
      if (s.error) throw Object.assign(new Error(s.error.message), { code: s.error.code });
      const more = Math.min(s.consumed + input.length - written, blob.length - written) > 0 || released !== read;
      if (s.done || s.consumed + s.produced + written !== before || more) continue;
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 10_000);
        woken = () => (clearTimeout(timer), resolve(true));
      });
      assert.ok(woke, `stuck at input ${written}/${blob.length}, output ${s.produced}`);
    }
    const rest = Buffer.alloc(s.produced - read);
    ringCopy(ring, read, rest, true);
    parts.push(rest);
    const result = c.indexResult();
    assert.ok(result && 'zran' in result, JSON.stringify(result));
    return { tar: Buffer.concat(parts), zran: encodeZran({ ...result.zran, ...IDS }) };
  } finally {
    c.close();
  }
}

/** As `vmimg index build` builds it: the file in 1 MiB chunks (build.ts). */
function fromFile(blob: Buffer): Buffer {
  const b = new CheckpointBuilder(OPTS, { engine: 'native' });
  for (let i = 0; i < blob.length; i += CHECKPOINT_CHUNK) b.push(blob.subarray(i, i + CHECKPOINT_CHUNK));
  return encodeZran(b.finish(IDS));
}

let dir: string;
let tarGz: string;

before(async () => {
  requireTools(['gzip', 'python3']);
  dir = await tmpDir('vmimg-ring-checkpoints-');
  // 3 MiB of log-like text, 2 MiB random, 600 small files: long matches, stored blocks and headers
  const py = [
    'import tarfile,io,os,sys,random',
    'r = random.Random(7)',
    't = tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT)',
    'def add(name, data):',
    '  i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))',
    'add("log.txt", "".join("%d GET /item/%d 200 %dms\\n" % (n, (n * 7919) % 1000, n % 97) for n in range(110000)).encode()[:3 << 20])',
    'add("random.bin", r.randbytes(2 << 20))',
    'for n in range(600): add("small/%d" % n, ("file %d " % n).encode() * r.randrange(1, 300))',
    't.close()',
  ].join('\n');
  const tar = join(dir, 'layer.tar');
  await run('python3', ['-c', py, tar]);
  await run('gzip', ['-k', '-6', tar]);
  tarGz = `${tar}.gz`;
});

describe('checkpoints built in the inflate worker, into the flattener ring', () => {
  test('output = gzip -dc, index = the file-built one, whatever the reader frees and the writer announces', async () => {
    const blob = readFileSync(tarGz);
    const tar = await runBuffer('gzip', ['-dc', tarGz]);
    const file = fromFile(blob);
    for (const [seed, ringBytes] of [[1, 2 << 20], [2, 2 << 20], [3, 8 << 20]] as const) {
      const r = await throughRing(blob, seed, ringBytes);
      assert.ok(r.tar.equals(tar), `seed ${seed}: tar bytes differ (${r.tar.length} vs ${tar.length})`);
      assert.ok(r.zran.equals(file), `seed ${seed}: index differs from the file-built one`);
    }
  });

  test('two gzip members, then trailing zeros: one index, as from the file', async () => {
    const one = readFileSync(tarGz);
    const second = join(dir, 'second.gz');
    await run('sh', ['-c', `head -c 1500000 ${join(dir, 'layer.tar')} | gzip -1 > ${second}`]);
    const blob = Buffer.concat([one, readFileSync(second), Buffer.alloc(3000)]);
    const file = join(dir, 'members.gz');
    writeFileSync(file, blob);
    // GNU gzip warns about the zeros (exit 2) and ignores them, as the flattener does
    const tar = await runBuffer('sh', ['-c', `gzip -dc ${file} 2>/dev/null; true`]);
    const r = await throughRing(blob, 4);
    assert.ok(r.tar.equals(tar), `tar bytes differ (${r.tar.length} vs ${tar.length})`);
    assert.ok(r.zran.equals(fromFile(blob)), 'index differs from the file-built one');
  });

  test('corrupt deflate data: a zlib-coded error (the flattener reports ERR_INVALID_LAYER), no index', async () => {
    const blob = Buffer.from(readFileSync(tarGz));
    for (let i = 0; i < 64; i++) blob[100_000 + i * 97] ^= 0x55; // in the text's Huffman-coded blocks
    await assert.rejects(throughRing(blob, 5), (err: NodeJS.ErrnoException) => err.code === 'Z_DATA_ERROR' && !/gzip data is corrupt/.test(err.message));
  });

  test('the ring output: every region ends at a 1 MiB stop whatever room the reader leaves; bytes read back as written', () => {
    const rnd = prng(9);
    const ring = new Uint8Array(2 << 20);
    const out = new RingOutput(ring);
    const shadow = Buffer.alloc(12 << 20);
    let released = 0;
    out.onOverwrite = (below) => assert.ok(below <= released, `overwrites ${below}, released ${released}`);
    while (out.total < shadow.length - OUTPUT_STEP) {
      out.limit = released + ring.length;
      const region = out.region();
      if (region.length > 0) {
        assert.equal((out.total + region.length) % OUTPUT_STEP, 0, `a region ends at ${out.total + region.length}`);
        const n = rnd(3) === 0 ? region.length : rnd(region.length + 1);
        for (let i = 0; i < n; i++) region[i] = shadow[out.total + i] = rnd(256);
        out.wrote(n);
      }
      if (rnd(4) === 0) released += rnd(out.produced - released + 1); // often nothing: the ring fills
      const back = rnd(Math.min(out.total, 4096));
      const len = rnd(Math.min(out.total - back, 40000) + 1);
      assert.ok(out.bytesBefore(back, len).equals(shadow.subarray(out.total - back - len, out.total - back)), `bytesBefore(${back}, ${len}) at ${out.total}`);
    }
  });
});
