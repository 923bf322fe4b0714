// Permission bits reach the tar as the image has them, 000 included: tar-stream's pack, which the
// export used before, replaced a zero mode with 0755/0644 (Fedora's /etc/shadow and /etc/gshadow are
// 000). The layer is written by python's tarfile, the export read back by GNU tar. And an mtime past
// 2038, which tar-stream's ustar encoder writes wrong, reaches GNU tar's extraction intact.
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportTar } from '../../src/export/index.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { ContainerFS } from '../../src/vfs/index.js';
import { py, pyBuild } from '../helpers/pyimage.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { layer } from '../helpers/vfs-fixtures.js';

test('mode 000 files and directories, and setuid/sticky bits, keep their modes in the tar export', async () => {
  requireTools(['tar', 'python3']);
  const work = await tmpDir('vmimg-tar-modes-');
  const layers = {
    l: [
      py.dir('etc', { mode: 0o755 }),
      py.file('etc/shadow', 'root:!::0:99999:7:::\n', { mode: 0 }),
      py.dir('locked', { mode: 0 }),
      py.file('locked/inside', 'x', { mode: 0o600 }),
      py.file('suid', '#!/bin/sh\n', { mode: 0o4755 }),
      py.dir('tmp', { mode: 0o1777 }),
    ],
  };
  await pyBuild({ layers, layout: { dir: join(work, 'layout'), images: [{ layers: ['l'] }], archive: join(work, 'oci.tar') } });
  const image = await loadFromTar(join(work, 'oci.tar'), { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  const file = join(work, 'root.tar');
  await exportTar(image, createWriteStream(file));
  const modes = new Map<string, string>();
  for (const line of (await run('tar', ['-tvf', file, '--numeric-owner'])).trim().split('\n')) {
    const fields = line.split(/\s+/);
    modes.set(fields.at(-1)!, fields[0]!);
  }
  assert.equal(modes.get('./etc/shadow'), '----------');
  assert.equal(modes.get('./locked/'), 'd---------');
  assert.equal(modes.get('./locked/inside'), '-rw-------');
  assert.equal(modes.get('./suid'), '-rwsr-xr-x');
  assert.equal(modes.get('./tmp/'), 'drwxrwxrwt');
});

test('an mtime past 2038 reaches GNU tar through a pax record (the ustar field cannot hold it as written)', async () => {
  requireTools(['tar']);
  const dir = await tmpDir('vmimg-tar-mtime-');
  const late = 2 ** 33 + 7; // 2242
  const fs = ContainerFS.fromLayers([layer().file('late', 'x', { mtime: late }).file('early', 'y', { mtime: 1_700_000_000 }).build(dir)]);
  const file = join(dir, 'r.tar');
  await exportTar(fs, createWriteStream(file));
  await fs.close();
  const out = join(dir, 'out');
  mkdirSync(out);
  await run('tar', ['-x', '-f', file, '-C', out]);
  assert.equal(statSync(join(out, 'late')).mtimeMs / 1000, late);
  assert.equal(statSync(join(out, 'early')).mtimeMs / 1000, 1_700_000_000);
});
