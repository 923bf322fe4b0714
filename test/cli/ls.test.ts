/**
 * `vmimg ls --json` on an image with every entry type, made by umoci from a real directory tree:
 * hardlinks (merged inodes reported as file + hardlink entries), setuid/setgid/sticky modes,
 * character and block devices with rdev, fifos, and ownership.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildBusyboxLayout, toOciArchive } from '../helpers/busybox.js';
import { run, tmpDir } from '../helpers/tools.js';
import type { ListedEntry as LsEntry } from '../../src/cli/walk.js';
import { expectExit, jsonLines } from './run.js';


let tar: string;
let cache: string;
let byPath: Map<string, LsEntry>;

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test makes device nodes with mknod: run it as root (bash .ci/run does)');
  const image = await buildBusyboxLayout({
    arch: 'amd64',
    tag: 'cli-ls-kinds',
    extraLayers: [
      {
        files: {
          'usr/bin/su': { content: 'setuid\n', mode: 0o4755 },
          'usr/bin/wall': { content: 'setgid\n', mode: 0o2755 },
          'srv/shared': { dir: true, mode: 0o1777 },
          'data/a': 'same bytes\n',
          'data/b': { hardlink: 'data/a' },
          'data/z': { hardlink: 'data/a' },
          'loop/a': { symlink: 'b' },
          'loop/b': { symlink: '/loop/a' },
          'escape': { symlink: '../../../../etc/arch' },
        },
        populate: async (dir) => {
          await run('mkdir', ['-p', join(dir, 'dev'), join(dir, 'run')]);
          await run('mknod', ['-m', '666', join(dir, 'dev/null'), 'c', '1', '3']);
          await run('mknod', ['-m', '660', join(dir, 'dev/loop0'), 'b', '7', '0']);
          await run('mkfifo', ['-m', '600', join(dir, 'run/fifo')]);
          // chown clears set-id bits, so the mode goes on after the owner
          await run('chown', ['0:5', join(dir, 'usr/bin/wall')]);
          await run('chmod', ['2755', join(dir, 'usr/bin/wall')]);
        },
      },
    ],
  });
  tar = await toOciArchive(image, join(await tmpDir('vmimg-cli-ls-'), 'kinds.tar'), 'kinds');
  cache = await tmpDir('vmimg-cli-ls-');
  const r = await expectExit(0, ['--cache-dir', cache, 'ls', tar, '-R', '--json', '--arch', 'amd64', '-q']);
  byPath = new Map((jsonLines(r.stdout) as LsEntry[]).map((e) => [e.path, e]));
});

describe('vmimg ls --json entry types', () => {
  it('reports the first name of a hardlinked file as the file, later names as hardlinks to it', () => {
    const a = byPath.get('/data/a');
    assert.equal(a?.type, 'file');
    assert.match(a.sha256 ?? '', /^[0-9a-f]{64}$/);
    for (const p of ['/data/b', '/data/z']) {
      assert.deepEqual([byPath.get(p)?.type, byPath.get(p)?.target], ['hardlink', '/data/a'], p);
    }
  });

  it('keeps setuid, setgid and sticky bits in the octal mode', () => {
    assert.equal(byPath.get('/usr/bin/su')?.mode, '4755');
    assert.equal(byPath.get('/usr/bin/wall')?.mode, '2755');
    assert.equal(byPath.get('/usr/bin/wall')?.gid, 5);
    assert.deepEqual([byPath.get('/srv/shared')?.type, byPath.get('/srv/shared')?.mode], ['dir', '1777']);
  });

  it('reports devices with rdev and fifos', () => {
    const makedev = (major: number, minor: number): number => (major << 8) | minor;
    assert.deepEqual([byPath.get('/dev/null')?.type, byPath.get('/dev/null')?.rdev, byPath.get('/dev/null')?.mode], ['char', makedev(1, 3), '0666']);
    assert.deepEqual([byPath.get('/dev/loop0')?.type, byPath.get('/dev/loop0')?.rdev], ['block', makedev(7, 0)]);
    assert.deepEqual([byPath.get('/run/fifo')?.type, byPath.get('/run/fifo')?.mode], ['fifo', '0600']);
    assert.equal(byPath.get('/run/fifo')?.rdev, undefined);
  });
});

describe('vmimg resolve / cat on awkward symlinks', () => {
  it('keeps resolution inside the image: .. stops at the root', async () => {
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'resolve', tar, '/escape', '--arch', 'amd64'])).stdout, '/etc/arch\n');
    assert.equal((await expectExit(0, ['--cache-dir', cache, 'cat', tar, '/escape', '--arch', 'amd64'])).stdout, 'amd64\n');
  });

  it('fails with the ELOOP reason (ERR_INVALID_ARGUMENT, exit 2) for a symlink loop', async () => {
    for (const cmd of ['resolve', 'cat']) {
      const r = await expectExit(2, ['--cache-dir', cache, cmd, tar, '/loop/a', '--arch', 'amd64']);
      assert.match(r.stderr, /^vmimg: ERR_INVALID_ARGUMENT: \/loop\/a: too many symbolic links encountered in the image \(ELOOP\)$/m);
      assert.equal(r.stdout, '');
    }
  });
});
