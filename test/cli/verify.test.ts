/**
 * Cached layer bytes are checked against the sha256 each file has in its layer index (issue 9 item 8;
 * attack C03): bytes flipped in a `.contents` make cat, the tar and initramfs exports and validate exit 6
 * (ERR_DIGEST_MISMATCH naming the file; ext4 too), the library's verifying reads reject, and loading the image
 * again converts the damaged layer anew. The flips are made as the attack did: found by content.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, closeSync, writeSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerFS } from '../../src/vfs/index.js';
import { isVmimgError } from '../../src/errors.js';
import { tmpDir } from '../helpers/tools.js';
import { MULTIARCH_TAR, expectExit } from './run.js';

let cache: string;
let work: string;
let good: string;
let broken: string;
let passwd: string;
/** The cached image directory (hard links to the cache's layer files). */
let cached: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];

/** Flips the byte `at` bytes into the first occurrence of `needle` among `dir`'s .contents files. */
function flip(dir: string, needle: string, at = 1): string {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.contents'))) {
    const path = join(dir, f);
    const data = readFileSync(path);
    const i = data.indexOf(needle);
    if (i < 0) continue;
    chmodSync(path, 0o644);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from([data[i + at]! ^ 0x20]), 0, 1, i + at);
    closeSync(fd);
    return f;
  }
  throw new Error(`"${needle}" is in no .contents of ${dir}`);
}

const oneLine = (stderr: string, path: string): void => {
  assert.match(stderr, new RegExp(`ERR_DIGEST_MISMATCH.*${path.replace(/\//g, '\\/')}: content does not match the sha256 in its layer index`));
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
};

before(async () => {
  cache = await tmpDir('vmimg-cli-verify-');
  work = await tmpDir('vmimg-cli-verify-out-');
  good = join(work, 'good');
  broken = join(work, 'broken');
  cached = (JSON.parse((await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64', '-q', '--json'))).stdout) as { dir: string }).dir;
  await expectExit(0, c('export', good, '-q'));
  passwd = (await expectExit(0, c('cat', good, '/etc/passwd'))).stdout;
  // copies, not the export's hard links: the cache stays intact for the other tests
  mkdirSync(broken);
  for (const f of readdirSync(good)) copyFileSync(join(good, f), join(broken, f));
  flip(broken, 'root:x:0:0');
  flip(broken, 'BusyBox v');
});

describe('a byte flipped in a .contents', () => {
  it('makes cat exit 6 naming the file: nothing of a small file printed, a big one cut short', async () => {
    const small = await expectExit(6, c('cat', broken, '/etc/passwd'));
    oneLine(small.stderr, '/etc/passwd');
    assert.equal(small.stdout, '');
    const big = await expectExit(6, c('cat', broken, '/bin/busybox'));
    oneLine(big.stderr, '/bin/busybox');
    const whole = (await expectExit(0, c('cat', good, '/bin/busybox'))).stdoutBytes;
    assert.ok(big.stdoutBytes.length < whole.length, 'the last chunk is held back');
  });

  for (const format of ['tar', 'initramfs', 'ext4']) {
    it(`makes export --format ${format} exit 6 naming a damaged file, leaving no file`, async () => {
      const r = await expectExit(6, c('export', join(work, `root.${format}`), broken, '--format', format, '-q'));
      assert.match(r.stderr, /ERR_DIGEST_MISMATCH.*\/(etc\/passwd|bin\/busybox): content does not match/);
      assert.deepEqual(readdirSync(work).sort(), ['broken', 'good']);
    });
  }

  it('makes validate exit 6 naming the file; the intact export validates', async () => {
    const r = await expectExit(6, c('validate', broken));
    assert.match(r.stderr, /ERR_DIGEST_MISMATCH.*\/(etc\/passwd|bin\/busybox) \(layer /);
    const ok = await expectExit(0, c('validate', good, '--json'));
    const report = JSON.parse(ok.stdout) as { verified: boolean; files: number; bytes: number };
    assert.equal(report.verified, true);
    assert.ok(report.files >= 5 && report.bytes > 1 << 20, ok.stdout);
  });

  it("fails the library's verifying reads; plain reads still return the bytes", async () => {
    const fs = await ContainerFS.open(broken);
    try {
      const isMismatch = (e: unknown): boolean => isVmimgError(e, 'ERR_DIGEST_MISMATCH') && /\/etc\/passwd/.test((e as Error).message);
      await assert.rejects(fs.readFile('/etc/passwd', { verify: true }), isMismatch);
      assert.notEqual((await fs.readFile('/etc/passwd')).toString(), passwd);
      await assert.rejects(fs.verify(fs.resolvePath('/etc/passwd'), '/etc/passwd'), isMismatch);
      const stream = fs.createReadStream('/etc/passwd', { verify: true });
      await assert.rejects(async () => {
        for await (const _ of stream) void _;
      }, isMismatch);
    } finally {
      await fs.close();
    }
    const intact = await ContainerFS.open(good);
    assert.equal((await intact.readFile('/etc/passwd', { verify: true })).toString(), passwd);
    await intact.close();
  });

  it('in the cache is converted again by the next load, with a warning', async () => {
    const layers = join(cache, 'layers', 'sha256');
    const damaged = flip(layers, 'root:x:0:0');
    await expectExit(6, c('validate', cached));
    const r = await expectExit(0, c('load', MULTIARCH_TAR, '--arch', 'arm64'));
    assert.match(r.stderr, /warning: layer \d\/3: the cached copy is damaged .*\/etc\/passwd.*converting it again/);
    assert.equal((await expectExit(0, c('cat', cached, '/etc/passwd', '-q'))).stdout, passwd);
    await expectExit(0, c('validate', cached));
    assert.ok(readdirSync(layers).includes(damaged), 'the layer is back');
  });
});
