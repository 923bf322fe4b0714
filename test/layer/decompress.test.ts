import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip, gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { ZSTD_OUTPUT_PER_TURN, createZstdDecompressor, decompress, sniffCompression, type Compression } from '../../src/layer/decompress.js';

function zstdCli(data: Buffer): Buffer {
  try {
    return execFileSync('zstd', ['-q', '-c', '-3'], { input: data, maxBuffer: 1 << 30 });
  } catch (err) {
    throw new Error(`the zstd CLI is needed for this test: apt-get install zstd (${(err as Error).message})`);
  }
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Feeds `data` in small pieces so sniffing has to join chunks. */
function dribble(data: Buffer, size = 3): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts.length > 2000 ? [data.subarray(0, 1), data.subarray(1, 3), data.subarray(3)] : parts);
}

const payload = Buffer.concat([Buffer.from('ustar-ish text '.repeat(1000)), randomBytes(300_000)]);

test('sniffs gzip, zstd and anything else as plain', () => {
  const cases: [number[], Compression][] = [
    [[0x1f, 0x8b, 8, 0], 'gzip'],
    [[0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
    [[0x50, 0x2a, 0x4d, 0x18], 'zstd'], // a skippable frame (pzstd starts with one)
    [[0x5f, 0x2a, 0x4d, 0x18], 'zstd'],
    [[0x60, 0x2a, 0x4d, 0x18], 'none'],
    [[0x28, 0xb5, 0x2f], 'none'],
    [[0x1f], 'none'],
    [[], 'none'],
    [[0x61, 0x62, 0x63, 0x64], 'none'],
  ];
  for (const [bytes, kind] of cases) assert.equal(sniffCompression(Buffer.from(bytes)), kind, `${bytes}`);
});

test('decompresses gzip, zstd (CLI-made) and passes plain through, chunked any way', async () => {
  const inputs: [Compression, Buffer][] = [
    ['gzip', gzipSync(payload)],
    ['zstd', zstdCli(payload)],
    ['none', payload],
  ];
  for (const [kind, data] of inputs) {
    let seen: Compression | undefined;
    const out = await collect(decompress(dribble(data), { onKind: (k) => (seen = k) }));
    assert.equal(seen, kind);
    assert.ok(out.equals(payload), `${kind} output differs`);
  }
});

test('empty and tiny plain inputs pass through', async () => {
  assert.equal((await collect(decompress(Readable.from([])))).length, 0);
  assert.deepEqual(await collect(decompress(Readable.from([Buffer.from('ab')]))), Buffer.from('ab'));
});

test('hazard: truncated gzip and zstd streams fail instead of ending quietly', async () => {
  for (const data of [gzipSync(payload), zstdCli(payload)]) {
    const cut = data.subarray(0, Math.floor(data.length / 2));
    await assert.rejects(collect(decompress(Readable.from([cut]))));
  }
});

test('hazard: corrupt zstd data fails or decodes to different bytes (fzstd skips checksums; diff_id catches it)', async () => {
  const bad = Buffer.from(zstdCli(payload));
  for (let i = 20; i < bad.length; i += 97) bad[i]! ^= 0x5a;
  const out = await collect(decompress(Readable.from([bad]))).catch(() => undefined);
  assert.ok(out === undefined || !out.equals(payload));
});

test('a source error surfaces on the output', async () => {
  async function* failing(): AsyncGenerator<Buffer> {
    yield gzipSync(payload).subarray(0, 100);
    throw new Error('boom from source');
  }
  await assert.rejects(collect(decompress(Readable.from(failing()))), /boom from source/);
});

/** `zstd -3` (or `gzip -9`) of `mib` MiB of zeros, made by the CLI from /dev/zero: kilobytes that expand ~30 000×. */
function zerosBomb(tool: 'zstd' | 'gzip', mib: number): Buffer {
  const level = tool === 'zstd' ? '-3' : '-9';
  return execFileSync('bash', ['-c', `head -c ${mib}M /dev/zero | ${tool} -q -c ${level}`], { maxBuffer: 1 << 26 });
}

// A decompression bomb in ONE input chunk must not expand beyond the readable side's high-water mark plus one
// slice's worth before anyone reads: fzstd once emitted a whole 64 KiB chunk of RLE blocks (GiBs) at once.
test('hazard: a zstd (and gzip) bomb written in one chunk expands only as fast as it is read', async () => {
  for (const [tool, decoder] of [['zstd', createZstdDecompressor()], ['gzip', createGunzip({ chunkSize: 1 << 20 })]] as const) {
    const bomb = zerosBomb(tool, 160);
    assert.ok(bomb.length < 1 << 20, `${tool}: ${bomb.length} bytes`);
    decoder.write(bomb);
    decoder.end();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const buffered = decoder.readableLength;
    assert.ok(buffered <= 8 << 20, `${tool}: ${buffered} bytes decoded before any read`);
    let total = 0;
    for await (const chunk of decoder) total += (chunk as Buffer).length;
    assert.equal(total, 160 << 20, tool);
  }
});

/** Feeds `data` in chunks of 1 to 700 bytes (a fixed sequence): every header split every way. */
function ragged(data: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let i = 0, k = 1; i < data.length; k = (k * 37 + 11) % 701 || 1) parts.push(data.subarray(i, (i += k)));
  return Readable.from(parts);
}

// The fzstd decoder is fed one block at a time by our reader of zstd's framing (zstd-framing.ts): every
// frame form the zstd tools write must still decode, split anywhere.
test('zstd framing: checksummed, single-segment, empty, multi-frame and pzstd (skippable) frames decode', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmimg-zstd-'));
  const text = Buffer.from('layer text '.repeat(40_000));
  const file = join(dir, 'f');
  writeFileSync(file, text);
  const sh = (cmd: string): Buffer => execFileSync('bash', ['-c', cmd], { maxBuffer: 1 << 28 });
  const parts: [string, Buffer, Buffer][] = [
    ['zstd --check (stdin: no content size)', sh(`zstd -q -c --check < ${file}`), text],
    ['single segment (file: content size known)', sh(`zstd -q -c -19 ${file}`), text],
    ['empty input', sh('printf "" | zstd -q -c'), Buffer.alloc(0)],
    ['pzstd (skippable frames)', sh(`pzstd -q -p 2 -c ${file}`), text],
    ['random bytes (raw blocks)', zstdCli(payload), payload],
  ];
  for (const [what, z, plain] of parts) {
    assert.ok((await collect(decompress(ragged(z)))).equals(plain), what);
  }
  const all = Buffer.concat(parts.map((p) => p[1]));
  assert.ok((await collect(decompress(ragged(all)))).equals(Buffer.concat(parts.map((p) => p[2]))), 'all frames concatenated');
});

// A frame's window is allocated and moved on every block by fzstd: a 9 KiB layer declaring 1 GiB took 77 s
// and 1.1 GiB for 32 MiB of output. Refused at the frame header, naming the limit; raising it decodes.
test('hazard: a zstd window past maxZstdWindow is ERR_TOO_LARGE at the frame header', async () => {
  const data = randomBytes(64 * 1024);
  const long = execFileSync('bash', ['-c', 'zstd -q -c --long=30'], { input: data });
  await assert.rejects(collect(decompress(Readable.from([long]))), (err: Error & { code?: string; hint?: string }) => {
    assert.equal(err.code, 'ERR_TOO_LARGE');
    assert.match(err.message, /zstd frame declares a 1 GiB window, more than 8 MiB/);
    assert.match(err.hint ?? '', /maxZstdWindow/);
    return true;
  });
  const mid = execFileSync('bash', ['-c', 'zstd -q -c --long=24'], { input: data }); // a 16 MiB window
  await assert.rejects(collect(decompress(Readable.from([mid]))), /16 MiB window/);
  assert.ok((await collect(decompress(Readable.from([mid]), { maxZstdWindow: 16 << 20 }))).equals(data));
});

/** Bytes printed by a python3 program (hand-made zstd streams no zstd tool writes). */
function python(program: string, input?: Buffer): Buffer {
  return execFileSync('python3', ['-c', program], { input, maxBuffer: 1 << 26 });
}

// fzstd moves its whole window on every block: 20 000 one-byte raw blocks in an 8 MiB window (allowed) cost
// minutes of memmove for 20 KB of output (breaker Z1). Refused once the moves pass 256× the output.
test('hazard: tiny blocks in a large window are refused before they cost more than the output', async () => {
  const bomb = python(`import sys, struct
s = struct.pack('<I', 0xFD2FB528) + bytes([0, 13 << 3])  # no content size, an 8 MiB window
bh = lambda t, n, last: ((n << 3) | (t << 1) | last).to_bytes(3, 'little')
s += b''.join(bh(0, 1, 0) + b'x' for _ in range(20000)) + bh(0, 1, 1) + b'y'
sys.stdout.buffer.write(s)`);
  await assert.rejects(collect(decompress(Readable.from([bomb]))), /blocks too small for their window/);
});

// fzstd recurses once per frame it finishes within one call: 200 000 empty skippable frames before a real
// frame overflowed the stack (breaker Z4). Each skippable frame is fed on its own.
test('200 000 empty skippable frames, then a frame, decode', async () => {
  const frames = python(`import sys
sys.stdout.buffer.write(bytes.fromhex('502a4d1800000000') * 200000 + sys.stdin.buffer.read())`, zstdCli(payload));
  assert.ok((await collect(decompress(Readable.from([frames])))).equals(payload));
});

test('a source error surfaces on the zstd output as itself (not as a zstd error)', async () => {
  const boom = Object.assign(new Error('boom from source'), { code: 'ERR_SOURCE' });
  async function* failing(): AsyncGenerator<Buffer> {
    yield zstdCli(payload).subarray(0, 100);
    throw boom;
  }
  await assert.rejects(collect(decompress(Readable.from(failing()))), (err) => err === boom);
});

// fzstd is synchronous, and a source already in memory answers its reads as microtasks: without a turn of the
// event loop between blocks a whole layer decoded before any other callback ran, so `serve --prepare` answered
// no client while it flattened a zstd layer (breaker8 Z2). Counted in turns of the event loop, not time.
test('hazard: zstd decoding gives the event loop a turn every ZSTD_OUTPUT_PER_TURN bytes, whatever the source', async () => {
  const plain = Buffer.from('a line of a large text file in a zstd layer\n'.repeat(800_000)); // 35 MiB
  const z = zstdCli(plain);
  let turns = 0;
  let ticking = true;
  const tick = (): void => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  let total = 0;
  try {
    // One chunk, from a generator: every read of the source resolves without a turn of the loop.
    for await (const chunk of decompress(Readable.from((async function* () { yield z; })()))) total += (chunk as Buffer).length;
  } finally {
    ticking = false;
  }
  assert.equal(total, plain.length);
  const expected = Math.floor(plain.length / ZSTD_OUTPUT_PER_TURN);
  assert.ok(turns >= expected - 1, `${turns} turns of the event loop while decoding ${plain.length} bytes; want ~${expected}`);
});
