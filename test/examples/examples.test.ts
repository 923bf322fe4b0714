/**
 * The examples run as a user would run them: `node --import tsx examples/<name>.ts`, importing the
 * package's public entry points (vmimg, vmimg/vfs, vmimg/export → dist/, so build first: npm test does).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { exportImage, loadFromTar } from '../../src/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { testKernel } from '../boot/kernels.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTool, tmpDir } from '../helpers/tools.js';

const MULTIARCH_TAR = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');
let imageDir: string;

function example(name: string, args: string[]) {
  if (!existsSync(join(REPO_ROOT, 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: the examples import vmimg through package.json "exports"; build with `npx tsc -p tsconfig.json`');
  }
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('examples', name), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.on('error', reject).on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

before(async () => {
  const work = await tmpDir('vmimg-examples-');
  const image = await loadFromTar(MULTIARCH_TAR, { platform: parsePlatform('linux/arm64'), cacheDir: join(work, 'cache') });
  imageDir = join(work, 'image');
  await exportImage(image, imageDir, { format: 'dir' });
});

describe('examples/walk.ts', () => {
  it('lists the merged tree with modes and symlink targets, then prints a file through a symlink', async () => {
    const r = await example('walk.ts', [imageDir, '/etc/arch']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^0100755 0:0 +\d+ \/bin\/busybox$/m);
    assert.match(r.stdout, /^0120777 0:0 +\d+ \/bin\/sh -> \/bin\/busybox$/m);
    assert.doesNotMatch(r.stdout, /\/etc\/issue/, 'whited out by the top layer');
    assert.match(r.stdout, /==> \/etc\/arch \(really \/etc\/arch\) <==\narm64\n/);
  });
});

describe('examples/boot.ts', () => {
  it("boots the exported image under QEMU and exits with the guest command's status", async () => {
    requireTool('qemu-system-aarch64', 'qemu-system-arm');
    const kernel = await testKernel('arm64');
    const r = await example('boot.ts', [imageDir, '--arch', 'arm64', '--kernel', kernel, '--', '-c', 'echo "machine $(uname -m)"; exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /^machine aarch64\r?$/m);
    assert.match(r.stderr, /image: linux\/arm64, \/bin\/sh -> \/bin\/busybox/);
    assert.match(r.stderr, /guest command exited 3/);
  });

  it('refuses an architecture QEMU cannot boot instead of guessing amd64', async () => {
    const r = await example('boot.ts', [imageDir, '--arch', 's390x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--arch s390x: QEMU boots amd64 \(x86_64\) or arm64 \(aarch64\) guests only/);
  });
});
