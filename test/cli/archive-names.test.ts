/**
 * Names of loaded archives, as `images` shows them, work with `rm` (attack re-run: `rm /abs/x.tar`
 * said "no cached image" while `rm /abs/x.tar:latest` worked), relative paths too; and two unnamed
 * images of one archive, picked by digest, get a name each (`<path>@<digest>`) instead of sharing the
 * path (the second displaced the first). Archives are written by python3's tarfile (mkimage.py).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../helpers/cache.js';
import { py, pyBuild, type PyReport } from '../helpers/pyimage.js';
import { tmpDir } from '../helpers/tools.js';
import { expectExit } from './run.js';

let work: string;
let two: PyReport;
const layers = { first: [py.dir('etc/'), py.file('etc/which', 'first\n')], second: [py.dir('etc/'), py.file('etc/which', 'second\n')] };

before(async () => {
  work = await tmpDir('vmimg-archive-names-');
  two = await pyBuild({ layers, layout: { dir: join(work, 'two'), archive: join(work, 'two.tar'), images: [{ layers: ['first'] }, { layers: ['second'] }] } });
  await pyBuild({ layers, layout: { dir: join(work, 'latest'), archive: join(work, 'latest.tar'), images: [{ layers: ['first'], tag: 'latest' }] } });
  await pyBuild({ layers, layout: { dir: join(work, 'plain'), archive: join(work, 'plain.tar'), images: [{ layers: ['second'] }] } });
});

interface Listed { id: string; names: string[] }

async function cli(cache: string, ...args: string[]) {
  return expectExit(0, ['--cache-dir', cache, ...args]);
}
const images = async (cache: string): Promise<Listed[]> => JSON.parse((await cli(cache, 'images', '--json')).stdout) as Listed[];

test('rm takes the name images shows for a loaded archive, the path without :latest, and a relative path', async () => {
  const cache = await tmpDir('vmimg-archive-names-cache-');
  const latest = join(work, 'latest.tar');
  const plain = join(work, 'plain.tar');
  for (const [file, form] of [[latest, latest], [latest, `./${relative(REPO_ROOT, latest)}`], [plain, plain], [plain, `./${relative(REPO_ROOT, plain)}`]] as const) {
    await cli(cache, 'load', file, '-q');
    const shown = (await images(cache)).flatMap((i) => i.names);
    assert.deepEqual(shown, [file === latest ? `${latest}:latest` : plain]);
    const r = await cli(cache, 'rm', form);
    assert.match(r.stdout, /^removed sha256:[0-9a-f]{64}$/m, `rm ${form}`);
    assert.deepEqual(await images(cache), [], `rm ${form} left nothing`);
  }
  const missing = await expectExit(3, ['--cache-dir', cache, 'rm', latest]);
  assert.match(missing.stderr, /^vmimg: ERR_NOT_FOUND: no cached image named/m);
});

test('two unnamed images of one archive, each picked by digest, are cached under a name each', async () => {
  const cache = await tmpDir('vmimg-archive-names-cache-');
  const file = join(work, 'two.tar');
  const [a, b] = two.layout!;
  for (const image of [a!, b!]) await cli(cache, 'load', file, '--tag', image.manifestDigest!, '-q');
  const listed = await images(cache);
  const nameOf = (id: string): string[] => listed.find((i) => i.id === id)?.names ?? [];
  assert.deepEqual(nameOf(a!.configDigest), [`${file}@${a!.manifestDigest}`]);
  assert.deepEqual(nameOf(b!.configDigest), [`${file}@${b!.manifestDigest}`]);
  assert.equal((await cli(cache, 'cat', a!.configDigest, '/etc/which')).stdout, 'first\n');
  assert.equal((await cli(cache, 'cat', b!.configDigest, '/etc/which')).stdout, 'second\n');
  await cli(cache, 'rm', `${file}@${a!.manifestDigest}`);
  assert.deepEqual((await images(cache)).map((i) => i.id), [b!.configDigest]);
});

test('ls and cat take the names images shows for archive images (<path>@<digest>, <path>:<ref name>) before reading them as paths', async () => {
  const cache = await tmpDir('vmimg-archive-names-cache-');
  const dir = await tmpDir('vmimg-archive-names-moved-');
  const file = join(dir, 'two.tar');
  const latest = join(dir, 'latest.tar');
  copyFileSync(join(work, 'two.tar'), file);
  copyFileSync(join(work, 'latest.tar'), latest);
  const [a, b] = two.layout!;
  // not cached yet: the path before `@` is the archive, the digest picks its image
  assert.equal((await cli(cache, 'cat', `${file}@${b!.manifestDigest}`, '/etc/which')).stdout, 'second\n');
  await cli(cache, 'load', file, '--tag', a!.manifestDigest!, '-q');
  await cli(cache, 'load', latest, '-q');
  rmSync(file);
  rmSync(latest);
  // the archives are gone: the names images shows still mean the cached images
  assert.equal((await cli(cache, 'cat', `${file}@${a!.manifestDigest}`, '/etc/which')).stdout, 'first\n');
  assert.equal((await cli(cache, 'cat', `${file}@${b!.manifestDigest}`, '/etc/which')).stdout, 'second\n');
  assert.match((await cli(cache, 'ls', `${latest}:latest`, '/etc')).stdout, /^which$/m);
  assert.match((await cli(cache, 'validate', `${file}@${a!.manifestDigest}`)).stdout, /verified$/m);
  const rel = `./${relative(REPO_ROOT, file)}@${a!.manifestDigest}`;
  assert.equal((await cli(cache, 'cat', rel, '/etc/which')).stdout, 'first\n');
  const missing = await expectExit(3, ['--cache-dir', cache, 'cat', `${file}@sha256:${'0'.repeat(64)}`, '/etc/which']);
  assert.match(missing.stderr, /ERR_NOT_FOUND/);
});
