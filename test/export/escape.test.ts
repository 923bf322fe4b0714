// Exports never escape or stop early when extracted (issue 9 item 7; attacks A1.26, A1.23):
// vmimg's own entries go only below real directories of the image, a root `TRAILER!!!` does not end
// the cpio, and the escape checker (test/helpers/export-check.ts) catches what it must, judged on
// archives written by GNU tar, GNU cpio and python's tarfile.
import assert from 'node:assert/strict';
import { createWriteStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportExt4, exportInitramfs, exportTar } from '../../src/export/index.js';
import type { RuntimeConfig } from '../../src/image/index.js';
import { buildBusyboxLayout, type ExtraLayer } from '../helpers/busybox.js';
import { assertSafeExport, entryNames, exportProblems, listArchive } from '../helpers/export-check.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { AMD64_TAR, expectExit } from '../cli/run.js';
import { openFlattened } from './compare.js';
import { e2fsckClean, requireE2fsprogs, statExt4 } from './ext4-read.js';

const config = { env: ['PATH=/bin'], entrypoint: ['/bin/sh'], cmd: [], workingDir: '/', uid: 0, gid: 0, user: '', architecture: 'amd64' } as unknown as RuntimeConfig;

/** Exports the busybox image plus `layers` as a plain cpio with the guest init, and as a tar. */
async function exportBoth(tag: string, layers: ExtraLayer[]): Promise<{ cpio: string; tar: string; warnings: string[]; dir: string }> {
  const fs = await openFlattened(await buildBusyboxLayout({ arch: 'amd64', tag, extraLayers: layers }));
  try {
    const dir = await tmpDir(`vmimg-escape-${tag}-`);
    const cpio = join(dir, 'root.cpio');
    const tar = join(dir, 'root.tar');
    const r = await exportInitramfs(fs, createWriteStream(cpio), { config, gzip: false });
    await exportTar(fs, createWriteStream(tar));
    return { cpio, tar, warnings: r.warnings, dir };
  } finally {
    await fs.close();
  }
}

/** Extracts a cpio with GNU cpio into `<sandbox>/root`, as the attack report did; returns the sandbox. */
async function extractCpio(cpio: string, sandbox: string): Promise<string> {
  const root = join(sandbox, 'root');
  mkdirSync(root, { recursive: true });
  await run('cpio', ['-idm', '--no-absolute-filenames', '--quiet', '-F', cpio], { cwd: root });
  return root;
}

for (const [what, target] of [['relative', '../canary'], ['absolute', '/etc']] as const) {
  test(`an image whose /dev is a ${what} symlink (${target}): dev/console lands in a real /dev, never through the link`, async () => {
    requireTools(['cpio', 'umoci']);
    const { cpio, tar, warnings, dir } = await exportBoth(`dev-${what}`, [{ whiteout: '/dev' }, { files: { dev: { symlink: target } } }]);
    const listing = await assertSafeExport(cpio);
    assert.ok(entryNames(listing).includes('dev/console'));
    await assertSafeExport(tar);
    assert.match(warnings.join('\n'), new RegExp(`/dev is a symlink to "${target.replace(/\./g, '\\.')}"`));
    const sandbox = join(dir, 'sb');
    mkdirSync(join(sandbox, 'canary'), { recursive: true });
    const root = await extractCpio(cpio, sandbox);
    assert.deepEqual(readdirSync(join(sandbox, 'canary')), [], 'nothing written outside the extraction directory');
    assert.ok(lstatSync(join(root, 'dev')).isDirectory());
    assert.ok(lstatSync(join(root, 'dev', 'console')).isCharacterDevice());
    assert.ok(!existsSync(join(root, 'etc', 'console')), "nothing written into the image's /etc");
  });
}

test('an image whose /proc is a symlink to /etc and whose /tmp is a file: real directories in the initramfs, with warnings', async () => {
  requireTools(['cpio', 'umoci']);
  const { cpio, warnings } = await exportBoth('mounts', [{ whiteout: '/proc' }, { files: { proc: { symlink: '/etc' }, tmp: 'not a dir\n' } }]);
  const root = await extractCpio(cpio, await tmpDir('vmimg-escape-mounts-x-'));
  assert.ok(lstatSync(join(root, 'proc')).isDirectory());
  assert.equal(lstatSync(join(root, 'tmp')).mode & 0o7777, 0o1777);
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings.join('\n'), /\/proc is a symlink to "\/etc"/);
  assert.match(warnings.join('\n'), /\/tmp is a file/);
});

test('a root file named TRAILER!!! does not end the cpio: GNU cpio sees every entry and extracts the file', async () => {
  requireTools(['cpio', 'umoci']);
  const { cpio, tar } = await exportBoth('trailer', [{ files: { 'TRAILER!!!': 'in band\n', AAAA: 'before\n', '0/TRAILER!!!': 'nested\n' } }]);
  const listing = await assertSafeExport(cpio);
  const listed = (await run('cpio', ['-t', '--quiet', '-F', cpio])).trim().split('\n');
  assert.equal(listed.length, listing.entries.length, 'cpio -t lists every entry');
  for (const name of ['./TRAILER!!!', '0/TRAILER!!!', 'bin/sh', '.vmimg/init', 'dev/console']) assert.ok(listed.includes(name), name);
  const root = await extractCpio(cpio, await tmpDir('vmimg-escape-trailer-x-'));
  assert.equal(readFileSync(join(root, 'TRAILER!!!'), 'utf8'), 'in band\n');
  assert.ok(existsSync(join(root, '.vmimg', 'init')));
  assert.ok(entryNames(await assertSafeExport(tar)).includes('TRAILER!!!'));
});

// The checker itself must fail on bad archives, written here by outside tools.
test('the escape checker flags entries below a symlink, escaping names, and an in-band cpio trailer', async () => {
  requireTools(['tar', 'cpio', 'python3']);
  const dir = await tmpDir('vmimg-escape-checker-');
  const src = join(dir, 'src');
  mkdirSync(join(src, 'real'), { recursive: true });
  symlinkSync('../outside', join(src, 'dev'));
  writeFileSync(join(src, 'real', 'f'), 'x\n');
  writeFileSync(join(src, 'TRAILER!!!'), '');
  // GNU cpio writes the names it is given: a root TRAILER!!! before the rest
  const cpio = join(dir, 'bad.cpio');
  await run('sh', ['-c', `printf '%s\\n' . 'TRAILER!!!' real real/f dev | cpio -o -H newc --quiet > '${cpio}'`], { cwd: src });
  assert.match(exportProblems(await listArchive(cpio)).join('\n'), /in-band TRAILER!!! after entry 1 hides 3 entries/);
  // python's tarfile: a symlink, then an entry through it, an absolute name and a `..` name
  const tar = join(dir, 'bad.tar');
  await run('python3', ['-c', `
import io, tarfile, sys
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    for name, kind, link in [('./', tarfile.DIRTYPE, ''), ('./dev', tarfile.SYMTYPE, '../x'), ('./dev/console', tarfile.CHRTYPE, ''),
                             ('/abs', tarfile.REGTYPE, ''), ('a/../../up', tarfile.REGTYPE, ''), ('./h', tarfile.LNKTYPE, './nowhere')]:
        i = tarfile.TarInfo(name); i.type = kind; i.linkname = link; t.addfile(i)
`, tar]);
  const problems = exportProblems(await listArchive(tar)).join('\n');
  assert.match(problems, /"\.\/dev\/console" is below the symlink "dev"/);
  assert.match(problems, /"\/abs" escapes the root/);
  assert.match(problems, /"a\/\.\.\/\.\.\/up" escapes the root/);
  assert.match(problems, /hardlink to "nowhere", which is no earlier file/);
  // GNU tar of a clean tree passes
  const good = join(dir, 'good.tar');
  await run('tar', ['-cf', good, '-C', src, '.']);
  assert.deepEqual(exportProblems(await listArchive(good)), []);
});

test('the shipped sample images export as a tar and an initramfs the checker passes', async () => {
  const dir = await tmpDir('vmimg-escape-samples-');
  const cache = join(dir, 'cache');
  for (const format of ['tar', 'initramfs']) {
    const file = join(dir, `root.${format}`);
    await expectExit(0, ['--cache-dir', cache, 'export', file, AMD64_TAR, '--format', format, '-q']);
    assert.ok(entryNames(await assertSafeExport(file)).includes('bin/busybox'));
  }
});

test('the ext4 export of an image whose /dev is a symlink to /etc has a real /dev (the stage-one init mounts there)', async () => {
  requireE2fsprogs();
  const fs = await openFlattened(await buildBusyboxLayout({ arch: 'amd64', tag: 'dev-absolute', extraLayers: [{ whiteout: '/dev' }, { files: { dev: { symlink: '/etc' } } }] }));
  try {
    const img = join(await tmpDir('vmimg-escape-ext4-'), 'root.img');
    const warnings: string[] = [];
    await exportExt4(fs, img, { config, seed: 'escape', onWarning: (m) => warnings.push(m) });
    await e2fsckClean(img);
    assert.match(await statExt4(img, 'dev'), /Type: directory/);
    assert.match(warnings.join('\n'), /\/dev is a symlink to "\/etc"/);
  } finally {
    await fs.close();
  }
});
