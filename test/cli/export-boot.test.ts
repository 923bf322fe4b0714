/**
 * `vmimg export --format tar|initramfs` read back by GNU tar and cpio, and `vmimg boot` of the shipped
 * sample under QEMU (aarch64, TCG) with a stock Debian kernel: output, exit status, --entrypoint.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpDir, requireTool } from '../helpers/tools.js';
import { testKernel } from '../boot/kernels.js';
import { MULTIARCH_TAR, expectExit, vmimg } from './run.js';

let cache: string;
let work: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];

before(async () => {
  cache = await tmpDir('vmimg-cli-export-');
  work = await tmpDir('vmimg-cli-export-out-');
  await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '-q'));
});

describe('vmimg export --format', () => {
  it('writes the flattened root as a tar that GNU tar lists, with the whiteout applied', async () => {
    const file = join(work, 'root.tar');
    await expectExit(0, c('export', file, '--format', 'tar'));
    const listing = execFileSync('tar', ['-tvf', file], { encoding: 'utf8' });
    assert.match(listing, /\.\/bin\/busybox/);
    assert.match(listing, /\.\/bin\/sh -> \/bin\/busybox/);
    assert.doesNotMatch(listing, /etc\/issue/);
    await expectExit(1, c('export', file, '--format', 'tar')); // exists: refuse without --force
    await expectExit(0, c('export', file, '--format', 'tar', '--force'));
  });

  it('streams a tar to stdout with -', async () => {
    const r = await expectExit(0, c('export', '-', '--format', 'tar'));
    const listing = execFileSync('tar', ['-t'], { input: r.stdoutBytes, encoding: 'utf8' });
    assert.match(listing, /\.\/etc\/arch/);
  });

  it('writes a gzip newc initramfs that cpio lists, with the guest init', async () => {
    requireTool('cpio', 'cpio');
    const file = join(work, 'root.cpio.gz');
    await expectExit(0, c('export', file, '--format', 'initramfs', '--', '/bin/cat', '/etc/arch'));
    const listing = execFileSync('sh', ['-c', `gzip -dc '${file}' | cpio -t 2>/dev/null`], { encoding: 'utf8' });
    for (const path of ['.vmimg/init', '.vmimg/config', 'bin/busybox', 'etc/arch']) {
      assert.ok(listing.split('\n').some((l) => l.replace(/^\.\//, '') === path), `${path} in the initramfs`);
    }
  });
});

describe('vmimg boot', () => {
  it("boots the arm64 sample and prints its entrypoint's output, exiting with the guest's status", async () => {
    requireTool('qemu-system-aarch64', 'qemu-system-arm');
    const kernel = await testKernel('arm64');
    const r = await expectExit(0, c('boot', MULTIARCH_TAR, '--arch', 'arm64', '--kernel', kernel, '-q'));
    assert.match(r.stdout, /^arm64$/m);
    const failing = await vmimg(c('boot', MULTIARCH_TAR, '--arch', 'arm64', '--kernel', kernel, '-q', '--entrypoint', '', '--', '/bin/sh', '-c', 'echo bye; exit 7'));
    assert.equal(failing.code, 7, failing.stderr);
    assert.match(failing.stdout, /^bye$/m);
    const json = await vmimg(c('boot', MULTIARCH_TAR, '--arch', 'arm64', '--kernel', kernel, '-q', '--json', '--entrypoint', '', '--', '/bin/sh', '-c', 'echo json; exit 3'));
    assert.equal(json.code, 3, json.stderr);
    const result = JSON.parse(json.stdout) as { exitStatus: number | null; timedOut: boolean; durationMs: number; output: string };
    assert.deepEqual({ ...result, durationMs: typeof result.durationMs }, { exitStatus: 3, timedOut: false, durationMs: 'number', output: 'json\n' });
  });

  it('refuses to boot an image for another architecture than asked', async () => {
    await expectExit(5, c('boot', MULTIARCH_TAR, '--arch', 's390x', '-q'));
  });
});
