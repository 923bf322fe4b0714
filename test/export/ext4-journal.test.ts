// `exportExt4(..., { journal: true })` / `vmimg export --journal`: an internal jbd2 journal, judged by
// e2fsprogs against what mke2fs itself makes for a filesystem of the same size (dumpe2fs's journal
// fields, the journal superblock's bytes, debugfs logdump and stat <8>), e2fsck -fn, and a guest that
// writes to a --persist disk and reads it back in a second boot, its transactions in debugfs logdump.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportExt4 } from '../../src/export/index.js';
import { buildBusyboxLayout } from '../helpers/busybox.js';
import { REPO_ROOT } from '../helpers/cache.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { expectExit } from '../cli/run.js';
import { testKernel } from '../boot/kernels.js';
import { openFlattened } from './compare.js';
import { debugfs, e2fsckClean, requireE2fsprogs } from './ext4-read.js';

const JOURNAL_FIELDS = /^(Journal (features|size|sequence|start|backup)|Total journal (size|blocks)):.*$/gm;

/** The journal superblock (the journal inode's first block) without its UUID (bytes 0x30-0x3f). */
async function journalSuperblock(img: string): Promise<Buffer> {
  const block = Number((await run('debugfs', ['-R', 'bmap <8> 0', img])).trim());
  const b = Buffer.alloc(4096);
  const fd = openSync(img, 'r');
  try {
    readSync(fd, b, 0, 4096, block * 4096);
  } finally {
    closeSync(fd);
  }
  b.fill(0, 0x30, 0x40);
  return b;
}

test('ext4 with a journal: inode 8 and a jbd2 superblock as mke2fs makes them for the same size, e2fsck clean, deterministic', async () => {
  requireE2fsprogs();
  requireTools(['mkfs.ext4', 'dumpe2fs', 'truncate']);
  const fs = await openFlattened(await buildBusyboxLayout({ arch: 'arm64', tag: 'ext4-journal' }));
  try {
    const dir = await tmpDir('vmimg-ext4-journal-');
    // the default size (a small filesystem: 4 MiB of journal) and 1.5 GiB (32 MiB)
    for (const [name, sizeBytes] of [['small', undefined], ['big', 1536 << 20]] as const) {
      const img = join(dir, `${name}.img`);
      const r = await exportExt4(fs, img, { init: false, journal: true, seed: 'journal', ...(sizeBytes ? { sizeBytes } : {}) });
      await e2fsckClean(img);
      const peer = join(dir, `${name}-mke2fs.img`);
      await run('truncate', ['-s', String(r.sizeBytes), peer]);
      await run('mkfs.ext4', ['-q', '-F', '-b', '4096', peer]);
      const fields = async (f: string): Promise<string[]> => (await run('dumpe2fs', ['-h', f])).match(JOURNAL_FIELDS) ?? [];
      const ours = await fields(img);
      assert.ok(ours.length >= 6, ours.join('\n'));
      assert.deepEqual(ours, await fields(peer), `${name}: dumpe2fs's journal fields`);
      assert.match((await run('dumpe2fs', ['-h', img])).split('\n').find((l) => l.startsWith('Filesystem features:'))!, /\bhas_journal\b/);
      assert.equal(String(r.journalBlocks), /Total journal blocks:\s+(\d+)/.exec(ours.join('\n'))?.[1]);
      assert.deepEqual(await journalSuperblock(img), await journalSuperblock(peer), `${name}: the journal superblock, UUID aside`);
      const logdump = async (f: string): Promise<string> => (await debugfs(f, ['logdump'])).replace(/^debugfs.*\n/gm, '');
      assert.equal(await logdump(img), await logdump(peer));
      const stat = await debugfs(img, ['stat <8>']);
      assert.match(stat, /Type: regular\s+Mode:\s+0600/);
      assert.match(stat, new RegExp(`Size: ${r.journalBlocks * 4096}\\b`));
      assert.match(stat, /Links: 1\b/);
      assert.match(stat, new RegExp(`EXTENTS:\\n\\(0-${r.journalBlocks - 1}\\):\\d+-\\d+`), 'one contiguous run');
    }
    const again = join(dir, 'again.img');
    await exportExt4(fs, again, { init: false, journal: true, seed: 'journal' });
    const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
    assert.equal(sha(again), sha(join(dir, 'small.img')), 'same input, same bytes');
  } finally {
    await fs.close();
  }
});

test('arm64: a --journal disk booted with --persist keeps a guest write for the next boot, through the journal', async () => {
  requireTools(['qemu-system-aarch64']);
  requireE2fsprogs();
  const [kernel, dir] = await Promise.all([testKernel('arm64'), tmpDir('vmimg-journal-boot-')]);
  const sample = join(REPO_ROOT, 'images', 'busybox-multiarch.oci.tar');
  const c = (...args: string[]): string[] => ['--cache-dir', join(dir, 'cache'), ...args];
  const disk = join(dir, 'root.img');
  await expectExit(0, c('export', disk, sample, '--arch', 'arm64', '--journal', '-q'));
  const boot = (cmd: string, code: number) =>
    expectExit(code, c('boot', sample, '--arch', 'arm64', '--kernel', kernel, '--disk', disk, '--persist', '--entrypoint', '', '--', '/bin/sh', '-c', cmd));
  await boot('echo kept > /kept && sync', 0);
  assert.match(await debugfs(disk, ['logdump']), /Found expected sequence \d+, type 1 \(descriptor block\)/, 'the guest committed a transaction');
  const r = await boot('cat /kept; exit 3', 3);
  assert.equal(r.stdout, 'kept\n');
});
