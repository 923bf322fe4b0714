/**
 * `vmimg export DIR --force` replaces only what vmimg wrote there (issue 10 item 9): a directory
 * holding anything else is refused with ERR_DESTINATION_EXISTS naming the foreign file and left as it
 * was; a previous export is replaced in place (the directory itself kept); `.` works as its path.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from '../helpers/tools.js';
import { AMD64_TAR, BIN, MULTIARCH_TAR, expectExit } from './run.js';

let cache: string;
let work: string;
/** Image directories in the cache: amd64 and arm64 busybox. */
let amd64: string;
let arm64: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];

/** vmimg run with its working directory at `cwd` (for `export .`). */
function vmimgIn(cwd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr });
    });
  });
}

const layerFiles = (dir: string): string[] => readdirSync(dir).filter((f) => f !== 'config.json').sort();

before(async () => {
  cache = await tmpDir('vmimg-cli-force-');
  work = await tmpDir('vmimg-cli-force-out-');
  const dirOf = async (...args: string[]): Promise<string> => (JSON.parse((await expectExit(0, c('load', ...args, '--json', '-q'))).stdout) as { dir: string }).dir;
  amd64 = await dirOf(AMD64_TAR);
  arm64 = await dirOf(MULTIARCH_TAR, '--arch', 'arm64');
});

describe('export DIR --force', () => {
  it("refuses a directory holding the user's own files, names one, and deletes nothing", async () => {
    for (const [name, files] of [
      ['own', { 'notes.txt': 'mine\n' }],
      ['own-config', { 'config.json': '{"mine": true}\n' }],
    ] as const) {
      const dst = join(work, name);
      mkdirSync(join(dst, 'sub'), { recursive: true });
      for (const [f, text] of Object.entries(files)) writeFileSync(join(dst, f), text);
      const r = await expectExit(1, c('export', dst, amd64, '--force', '-q'));
      const named = Object.keys(files)[0]!;
      assert.match(r.stderr, /ERR_DESTINATION_EXISTS/);
      assert.match(r.stderr, new RegExp(`"${named.replace('.', '\\.')}", which vmimg did not write`));
      assert.deepEqual(readdirSync(dst).sort(), [...Object.keys(files), 'sub'].sort());
      assert.equal(readFileSync(join(dst, named), 'utf8'), files[named as keyof typeof files]);
    }
  });

  it('refuses a previous export that also holds a foreign file', async () => {
    const dst = join(work, 'mixed');
    await expectExit(0, c('export', dst, amd64, '-q'));
    writeFileSync(join(dst, 'zz-notes.txt'), 'mine\n');
    const before = readdirSync(dst).sort();
    const r = await expectExit(1, c('export', dst, arm64, '--force', '-q'));
    assert.match(r.stderr, /"zz-notes\.txt", which vmimg did not write/);
    assert.deepEqual(readdirSync(dst).sort(), before);
  });

  it('replaces a previous export in place: new layers, old ones gone, same directory', async () => {
    const dst = join(work, 'again');
    await expectExit(0, c('export', dst, amd64, '-q'));
    const old = layerFiles(dst);
    const ino = statSync(dst).ino;
    await expectExit(0, c('export', dst, arm64, '--force', '-q'));
    const config = JSON.parse(readFileSync(join(dst, 'config.json'), 'utf8')) as { architecture: string; layers: string[] };
    assert.equal(config.architecture, 'arm64');
    assert.deepEqual(layerFiles(dst), [...new Set(config.layers)].flatMap((d) => [`${d.slice(7)}.contents`, `${d.slice(7)}.idx`]).sort());
    assert.notDeepEqual(layerFiles(dst), old);
    assert.equal(statSync(dst).ino, ino, 'the directory itself is kept');
    assert.equal((await expectExit(0, c('cat', dst, '/etc/arch'))).stdout, 'arm64\n');
  });

  it('exports to . (empty, then again with --force) as to its absolute path', async () => {
    const dst = join(work, 'here');
    mkdirSync(dst);
    const first = await vmimgIn(dst, c('export', '.', amd64, '-q'));
    assert.equal(first.code, 0, first.stderr);
    const second = await vmimgIn(dst, c('export', '.', arm64, '--force', '-q'));
    assert.equal(second.code, 0, second.stderr);
    assert.equal((await expectExit(0, c('cat', dst, '/etc/arch'))).stdout, 'arm64\n');
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('.')), [], 'no temp dirs left beside it');
  });

  it('--force never replaces a device node or a fifo with a file (tar, initramfs, ext4): refused, node kept', async () => {
    const fifo = join(work, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const devnull = join(work, 'null-link');
    symlinkSync('/dev/null', devnull); // a name leading to a character device, made without privileges
    for (const [dst, kind] of [[fifo, 'fifo'], [devnull, 'character device']] as const) {
      for (const format of ['tar', 'initramfs', 'ext4']) {
        const r = await expectExit(1, c('export', dst, amd64, '--format', format, '--force', '-q'));
        assert.match(r.stderr, /ERR_DESTINATION_EXISTS/);
        assert.match(r.stderr, new RegExp(`is a ${kind}, not a regular file`));
      }
    }
    // refused before the image is looked for: a registry nobody answers is never asked
    const r = await expectExit(1, c('export', devnull, '127.0.0.1:9/never/pulled:1', '--format', 'ext4', '--force'));
    assert.match(r.stderr, /ERR_DESTINATION_EXISTS: .* is a character device/);
    assert.ok(lstatSync(fifo).isFIFO(), 'the fifo is still a fifo');
    assert.ok(lstatSync(devnull).isSymbolicLink() && statSync('/dev/null').isCharacterDevice(), '/dev/null untouched');
  });
});
