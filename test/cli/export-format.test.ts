/**
 * `vmimg export DEST`: the format comes from DEST's name when --format is absent (.tar, .tar.gz/.tgz,
 * .cpio, .cpio.gz, .img/.ext4), a plain cpio can be written, the line says what was written, and a
 * --format the name contradicts is refused before anything is written. Outputs judged by GNU tar,
 * cpio, gzip and e2fsck.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { AMD64_TAR, expectExit } from './run.js';

let cache: string;
let work: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

before(async () => {
  requireTools(['tar', 'cpio', 'gzip', 'e2fsck']);
  cache = await tmpDir('vmimg-cli-exfmt-');
  work = await tmpDir('vmimg-cli-exfmt-out-');
  await expectExit(0, c('load', AMD64_TAR, '-q'));
});

/** How an outside tool lists each format (a path inside the image it must show). */
const LISTERS: Record<string, (file: string) => Promise<string>> = {
  tar: (f) => run('tar', ['-tf', f]),
  'tar.gz': (f) => run('tar', ['-tzf', f]),
  cpio: (f) => run('cpio', ['-t', '--quiet', '-F', f]),
  'cpio.gz': (f) => run('sh', ['-c', `gzip -dc '${f}' | cpio -t --quiet`]),
  ext4: (f) => run('e2fsck', ['-fn', f]),
};

describe('export infers the format from the file name', () => {
  for (const [name, lister, gzip, said] of [
    ['root.tar', 'tar', false, /as a tar of the flattened root \(\d+ entries\) to /],
    ['root.tar.gz', 'tar.gz', true, /as a gzip-compressed tar of the flattened root/],
    ['root.tgz', 'tar.gz', true, /as a gzip-compressed tar/],
    ['root.cpio', 'cpio', false, /as a plain newc cpio initramfs \(\d+ entries\)/],
    ['root.cpio.gz', 'cpio.gz', true, /as a gzip-compressed newc cpio initramfs/],
    ['root.img', 'ext4', false, /as an ext4 disk image \(/],
  ] as const) {
    it(`${name}: ${lister}`, async () => {
      const file = join(work, name);
      const r = await expectExit(0, c('export', file));
      assert.match(r.stdout, said);
      assert.ok(r.stdout.trimEnd().endsWith(file), r.stdout);
      assert.equal(readFileSync(file).subarray(0, 2).equals(GZIP_MAGIC), gzip, `${name} gzip-compressed: ${gzip}`);
      const listing = await LISTERS[lister]!(file);
      if (lister !== 'ext4') assert.match(listing, /(^|\n)(\.\/)?bin\/busybox\n/);
    });
  }

  it('a name without a known ending is a directory; --format decides the rest', async () => {
    const dir = join(work, 'vm');
    assert.match((await expectExit(0, c('export', dir))).stdout, /as an image directory \(config\.json \+ 3 layers/);
    assert.ok(readdirSync(dir).includes('config.json'));
    const initrd = join(work, 'initrd');
    const json = JSON.parse((await expectExit(0, c('export', initrd, '--format', 'initramfs', '--json'))).stdout) as { format: string; gzip: boolean };
    assert.deepEqual([json.format, json.gzip], ['initramfs', true]);
    assert.match(await LISTERS['cpio.gz']!(initrd), /bin\/busybox/);
    const plain = join(work, 'plain.cpio');
    assert.equal((JSON.parse((await expectExit(0, c('export', plain, '--format', 'initramfs', '--json'))).stdout) as { gzip: boolean }).gzip, false);
  });

  it('refuses a --format the name contradicts, writing nothing', async () => {
    for (const [format, name] of [['initramfs', 'x.tar'], ['dir', 'root.tar'], ['tar', 'x.cpio.gz'], ['initramfs', 'x.img']] as const) {
      const file = join(work, 'contra', name);
      const r = await expectExit(2, c('export', file, '--format', format));
      assert.match(r.stderr, new RegExp(`^vmimg: ERR_INVALID_ARGUMENT: --format ${format} contradicts the file name .*${name.replace('.', '\\.')}`));
      assert.match(r.stderr, /\nhint: drop --format to write /);
      assert.ok(!existsSync(file), `${name} not created`);
    }
  });

  it('refuses --journal for anything but ext4, writing nothing', async () => {
    const file = join(work, 'journal', 'root.tar');
    const r = await expectExit(2, c('export', file, '--journal'));
    assert.match(r.stderr, /^vmimg: ERR_INVALID_ARGUMENT: --journal applies to ext4 only, not tar/);
    assert.ok(!existsSync(file), 'root.tar not created');
  });
});
