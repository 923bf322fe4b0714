/**
 * ParallelGzip (src/util/parallel-gzip.ts), judged by GNU gzip: `gzip -t` accepts what it writes (its
 * CRC-32 and size included) and `gzip -dc` gives back the input, for inputs of no bytes, one byte, a block
 * exactly, a block and a byte, and many blocks of text and random bytes (small blocks, so a test has many
 * of them) at several levels and numbers of blocks in flight; it compresses within 1 % of one
 * single-thread stream (each block's dictionary is the previous block's end); and a writer reusing its
 * buffer once a write is called back cannot change what was compressed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { ParallelGzip, type ParallelGzipOptions } from '../../src/util/parallel-gzip.js';
import { run, tmpDir } from '../helpers/tools.js';

const BLOCK = 64 << 10;

/** Text with long repeats across block boundaries, and random stretches. */
function mixed(bytes: number): Buffer {
  const parts: Buffer[] = [];
  for (let n = 0, i = 0; n < bytes; i++) {
    const part = i % 3 === 2 ? randomBytes(5000) : Buffer.from(Array.from({ length: 400 }, (_, k) => `line ${k % 97} of part ${i % 11}\n`).join(''));
    parts.push(part);
    n += part.length;
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

/** The gzip of `input` written in `pieces`-byte writes. */
async function gzipOf(input: Buffer, options: ParallelGzipOptions, pieces = 10_000): Promise<Buffer> {
  const out: Buffer[] = [];
  const chunks = Array.from({ length: Math.ceil(input.length / pieces) }, (_, i) => input.subarray(i * pieces, (i + 1) * pieces));
  await pipeline(Readable.from(chunks), new ParallelGzip(options), new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  return Buffer.concat(out);
}

/** GNU gzip's verdict: `gzip -t` passes and `gzip -dc` gives `input` back. */
async function gnuAccepts(gz: Buffer, input: Buffer, name: string): Promise<void> {
  const dir = await tmpDir('vmimg-pgzip-');
  const file = join(dir, `${name}.gz`);
  writeFileSync(file, gz);
  await run('gzip', ['-t', file]);
  await run('gzip', ['-d', file]);
  assert.ok(readFileSync(join(dir, name)).equals(input), `${name}: gzip -dc gives the input back`);
}

test('GNU gzip reads what ParallelGzip writes: empty, 1 byte, a block, a block and a byte, many blocks; levels 1, 6, 9; 1-4 blocks in flight', async () => {
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['one-byte', Buffer.from('x')],
    ['one-block', mixed(BLOCK)],
    ['block-and-byte', mixed(BLOCK + 1)],
    ['many', mixed(40 * BLOCK + 777)],
  ];
  for (const [name, input] of cases) {
    for (const [level, inFlight] of [[6, 1], [1, 2], [9, 4], [6, 3]] as const) {
      await gnuAccepts(await gzipOf(input, { blockBytes: BLOCK, level, inFlight }), input, `${name}-l${level}-f${inFlight}`);
    }
  }
});

test('blocks primed with the previous block compress within 1 % of a single stream', async () => {
  // 30 000 random bytes over and over: every repeat refers back ~30 KB, across block boundaries too,
  // so a block without its dictionary would spell the 30 000 bytes out again (64 times)
  const pattern = randomBytes(30_000);
  const input = Buffer.concat(Array.from({ length: Math.ceil((64 * BLOCK) / pattern.length) }, () => pattern)).subarray(0, 64 * BLOCK);
  const parallel = await gzipOf(input, { blockBytes: BLOCK, level: 6 }, 1 << 20);
  const single = gzipSync(input, { level: 6 });
  assert.ok(parallel.length <= single.length * 1.01, `${parallel.length} bytes vs ${single.length}`);
  await gnuAccepts(parallel, input, 'ratio');
  const text = mixed(64 * BLOCK);
  const [p, s] = [await gzipOf(text, { blockBytes: 4 * BLOCK, level: 6 }, 1 << 20), gzipSync(text, { level: 6 })];
  assert.ok(p.length <= s.length * 1.01, `text: ${p.length} bytes vs ${s.length}`);
});

test('a writer may reuse its buffer once its write is called back', async () => {
  const input = mixed(10 * BLOCK);
  const gz = new ParallelGzip({ blockBytes: BLOCK, inFlight: 2 });
  const out: Buffer[] = [];
  const collected = pipeline(gz, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
  const reused = Buffer.alloc(3000);
  for (let at = 0; at < input.length; at += reused.length) {
    const n = input.copy(reused, 0, at, at + reused.length);
    await new Promise<void>((resolve, reject) => gz.write(reused.subarray(0, n), (err) => (err ? reject(err) : resolve())));
    reused.fill(0x5a); // scribbled over at once: a block holding a view of it would compress this
  }
  gz.end();
  await collected;
  await gnuAccepts(Buffer.concat(out), input, 'reused');
});
