// A span's tar bytes written into `.contents` in pieces (the span worker's 1 MiB chunks) must land
// exactly as placeTar (the whole-blob fill's writer, its own code) writes the whole span: file bytes at their offsets, alignment zeros between
// neighbours, nothing where no file is.
import assert from 'node:assert/strict';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { placeTar, writePlan, writePlanPartSync, type Placed } from '../../src/lazy/placed-files.js';
import { tmpDir } from '../helpers/tools.js';

/** Files laid out as a flatten does: 512-byte tar headers between them, each 4096-aligned in `.contents`. */
function layout(sizes: number[]): { files: Placed[]; tarSize: number } {
  const files: Placed[] = [];
  let tar = 0;
  let contents = 0;
  for (const size of sizes) {
    tar += 512; // the header
    files.push({ offset: contents, size, tarOffset: tar, sha256: undefined, verified: false });
    tar += Math.ceil(size / 512) * 512;
    contents = Math.ceil((contents + size) / 4096) * 4096;
  }
  return { files, tarSize: tar };
}

test('writePlanPartSync over consecutive chunks writes what placeTar writes at once', async () => {
  const dir = await tmpDir('vmimg-placed-');
  let seed = 7;
  const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  // small files (zeros runs between them), a file of exactly 4096, empty-ish ones, one larger than any chunk
  const sizes = [1, 4096, 4095, 100, 70000, 3, 5000, 0x3000, 1, 200000, 17, 4097];
  const { files, tarSize } = layout(sizes.filter((n) => n > 0));
  const tar = Buffer.alloc(tarSize);
  for (let i = 0; i < tar.length; i++) tar[i] = 1 + (i % 251); // never 0: a missed zero run or byte shows
  for (const [at, length] of [[0, tarSize], [700, tarSize - 1900], [5000, 80000]] as const) {
    const span = tar.subarray(at, at + length);
    const plan = writePlan(files, at, length);
    const whole = join(dir, `whole-${at}`);
    const filler = Buffer.alloc(files.at(-1)!.offset + 2 * 4096 + 200000, 0xee); // a zero run not written shows
    writeFileSync(whole, filler);
    const fh = await open(whole, 'r+');
    await placeTar(fh, files, span, at);
    await fh.close();
    for (const chunk of [1, 511, 512, 4096, 65536, 1 << 20, 0]) {
      const parts = join(dir, `parts-${at}-${chunk}`);
      writeFileSync(parts, filler);
      const fd = openSync(parts, 'r+');
      for (let from = 0; from < span.length; ) {
        const n = chunk > 0 ? chunk : 1 + rand(9000); // 0: random sizes
        writePlanPartSync(fd, span.subarray(from, from + n), from, plan);
        from += n;
      }
      closeSync(fd);
      assert.ok(readFileSync(parts).equals(readFileSync(whole)), `span at ${at}, chunks of ${chunk || 'random'} bytes`);
    }
  }
});
