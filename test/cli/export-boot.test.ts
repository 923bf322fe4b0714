/**
 * `vmimg export --format tar|initramfs` read back by GNU tar and cpio, and `vmimg boot` of the shipped
 * sample under QEMU (aarch64, TCG) with a stock Debian kernel: output, exit status, --entrypoint.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { assertSafeExport } from '../helpers/export-check.js';
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
    await assertSafeExport(file);
    const listing = execFileSync('tar', ['-tvf', file], { encoding: 'utf8' });
    assert.match(listing, /\.\/bin\/busybox/);
    assert.match(listing, /\.\/bin\/sh -> \/bin\/busybox/);
    assert.doesNotMatch(listing, /etc\/issue/);
    await expectExit(1, c('export', file, '--format', 'tar')); // exists: refuse without --force
    await expectExit(0, c('export', file, '--format', 'tar', '--force'));
  });

  it('writes an ext4 root disk that e2fsck passes, and says what --size it needs when too small', async () => {
    requireTool('e2fsck', 'e2fsprogs');
    const file = join(work, 'root.img');
    const r = await expectExit(0, c('export', file, '--format', 'ext4', '--free', '8M', '--json'));
    const result = JSON.parse(r.stdout) as { format: string; sizeBytes: number; usedBytes: number };
    assert.equal(result.format, 'ext4');
    assert.ok(result.sizeBytes >= result.usedBytes + (8 << 20));
    execFileSync('e2fsck', ['-fn', file], { stdio: 'pipe' });
    // the guest init is in by default, with /dev/console for the stage one's switch_root
    const stat = (p: string): string => execFileSync('debugfs', ['-R', `stat ${p}`, file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(stat('/.vmimg/init'), /Type: regular +Mode: +0755/);
    assert.match(stat('/dev/console'), /Type: character special/);
    const small = await expectExit(6, c('export', join(work, 'small.img'), '--format', 'ext4', '--size', '1M'));
    assert.match(small.stderr, /needs \d+ bytes \(\d+ MiB\) as ext4; --size is 1048576 bytes/);
    assert.match(small.stderr, /--size \d+M/);
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
    await assertSafeExport(file);
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
    // streamed as it comes: "bye" is on stdout while the guest still sleeps before "late"; the
    // command's stdin is /dev/null (cat ends at once); HOME comes from the image's /etc/passwd
    let early: string | undefined;
    const failing = await vmimg(
      c('boot', MULTIARCH_TAR, '--arch', 'arm64', '--kernel', kernel, '-q', '--entrypoint', '', '--', '/bin/sh', '-c', 'echo "bye HOME=$HOME"; cat; sleep 4; echo late; exit 7'),
      {
        onSpawn: (child) => {
          let seen = '';
          child.stdout!.on('data', (b: Buffer) => {
            seen += b.toString();
            if (early === undefined && seen.includes('bye')) early = seen;
          });
        },
      },
    );
    assert.equal(failing.code, 7, failing.stderr);
    assert.equal(failing.stdout, 'bye HOME=/root\nlate\n');
    assert.ok(early !== undefined && !early.includes('late'), `"bye" arrived only with "late": ${JSON.stringify(early)}`);
    // --json: no terminal escapes from the guest; --console streams the whole console to stderr
    const json = await vmimg(c('boot', MULTIARCH_TAR, '--arch', 'arm64', '--kernel', kernel, '-q', '--json', '--console', '--entrypoint', '', '--', '/bin/sh', '-c', "printf '\\033[1;31mjson\\033[0m\\n'; exit 3"));
    assert.equal(json.code, 3, json.stderr);
    const result = JSON.parse(json.stdout) as { exitStatus: number | null; timedOut: boolean; durationMs: number; root: string; output: string };
    assert.deepEqual({ ...result, durationMs: typeof result.durationMs }, { exitStatus: 3, timedOut: false, durationMs: 'number', root: 'initramfs', output: 'json\n' });
    assert.match(json.stderr, /^vmimg: start\r?$/m);
  });

  it('checks --kernel and the guest memory before starting QEMU', async () => {
    const amd64 = await testKernel('amd64');
    const wrong = await expectExit(5, c('boot', MULTIARCH_TAR, '--arch', 'arm64', '--kernel', amd64, '-q'));
    assert.match(wrong.stderr, /is an amd64 kernel, the guest is arm64/);
    const missing = await expectExit(3, c('boot', MULTIARCH_TAR, '--arch', 'arm64', '--kernel', join(work, 'no-such-vmlinuz'), '-q'));
    assert.match(missing.stderr, /no-such-vmlinuz: no such file/);
    // the least --memory a boot takes (the kernel's share) holds no initramfs with any file in it
    // (without --root the default would pick a disk for an image this size in 48 MiB)
    const small = await expectExit(6, c('boot', MULTIARCH_TAR, '--arch', 'amd64', '--kernel', amd64, '--memory', '48', '--root', 'initramfs', '-q'));
    assert.match(small.stderr, /needs about \d+ MiB in RAM as an initramfs; the guest has 48 MiB/);
    assert.match(small.stderr, /--memory \d+/);
  });

  it('refuses to boot an image for another architecture than asked', async () => {
    await expectExit(5, c('boot', MULTIARCH_TAR, '--arch', 's390x', '-q'));
  });
});
