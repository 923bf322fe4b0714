/**
 * Failures while content streams out: a truncated `.contents` (every command that reads file bytes
 * exits 6 with one error line, no stack, no temp file left), cat of a directory, export of the dir
 * format to stdout.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { testKernel } from '../boot/kernels.js';
import { requireTool, tmpDir } from '../helpers/tools.js';
import { MULTIARCH_TAR, expectExit, type CliResult } from './run.js';

let cache: string;
let good: string;
let broken: string;
let work: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];

/** One `vmimg: …` line (a `hint:` may follow), and nothing that looks like a stack trace. */
function assertOneErrorLine(r: CliResult, pattern: RegExp): void {
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('vmimg: ')).length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
  assert.ok(lines.every((l) => l.startsWith('vmimg: ') || l.startsWith('hint: ')), r.stderr);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

before(async () => {
  cache = await tmpDir('vmimg-cli-integrity-');
  work = await tmpDir('vmimg-cli-integrity-out-');
  good = join(work, 'good');
  broken = join(work, 'broken');
  await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '-q'));
  await expectExit(0, c('export', good, '-q'));
  // copies, not the export's hardlinks: truncating those would break the cache too
  mkdirSync(broken);
  for (const f of readdirSync(good)) copyFileSync(join(good, f), join(broken, f));
  const size = (f: string): number => statSync(join(broken, f)).size;
  const largest = readdirSync(broken).filter((f) => f.endsWith('.contents')).sort((a, b) => size(b) - size(a))[0]!;
  // the largest layer holds /bin/busybox (over 1 MiB: the tar writer's streamed path)
  assert.ok(size(largest) > 1 << 20, `${largest} is over 1 MiB`);
  truncateSync(join(broken, largest), Math.floor(size(largest) / 2));
});

describe('a truncated .contents', () => {
  it('makes cat exit 6 with one error line', async () => {
    await expectExit(0, c('cat', good, '/bin/busybox', '-q'));
    const r = await expectExit(6, c('cat', broken, '/bin/busybox', '-q'));
    assertOneErrorLine(r, /\.contents is shorter than its index says/);
  });

  for (const format of ['tar', 'initramfs']) {
    it(`makes export --format ${format} exit 6 and leave no temp file, to a file and to stdout`, async () => {
      const r = await expectExit(6, c('export', join(work, `root.${format}`), broken, '--format', format, '-q'));
      assertOneErrorLine(r, /\.contents is shorter than its index says/);
      assert.deepEqual(readdirSync(work).sort(), ['broken', 'good'], 'no partial or temp file');
      const s = await expectExit(6, c('export', '-', broken, '--format', format, '-q'));
      assertOneErrorLine(s, /\.contents is shorter than its index says/);
    });
  }

  it('makes boot exit 6 before starting the VM', async () => {
    requireTool('qemu-system-aarch64', 'qemu-system-arm');
    const kernel = await testKernel('arm64');
    const r = await expectExit(6, c('boot', broken, '--kernel', kernel, '-q'));
    assertOneErrorLine(r, /\.contents is shorter than its index says/);
  });

  it('does not bother ls, which reads no contents', async () => {
    const r = await expectExit(0, c('ls', broken, '-R', '-q'));
    assert.match(r.stdout, /busybox/);
  });
});

describe('content errors of cat and export', () => {
  it('cat of a directory is one coded EISDIR line, exit 2', async () => {
    const r = await expectExit(2, c('cat', good, '/bin', '-q'));
    assertOneErrorLine(r, /^vmimg: ERR_INVALID_ARGUMENT: \/bin: illegal operation on a directory in the image \(EISDIR\)$/);
    assert.equal(r.stdout, '');
  });

  it('cat follows symlinks to regular files', async () => {
    const sh = await expectExit(0, c('cat', good, '/bin/sh', '-q'));
    const busybox = await expectExit(0, c('cat', good, '/bin/busybox', '-q'));
    assert.ok(sh.stdoutBytes.equals(busybox.stdoutBytes));
    assert.ok(busybox.stdoutBytes.length > 1 << 20);
  });

  it('export - of the dir format is a usage error', async () => {
    const r = await expectExit(2, c('export', '-', good));
    assertOneErrorLine(r, /^vmimg: ERR_INVALID_ARGUMENT: the dir format can't go to stdout; use --format tar or initramfs$/);
  });
});
