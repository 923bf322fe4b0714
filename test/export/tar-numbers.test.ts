// Numbers past what tar-stream's ustar encoder writes (breaker6's T1): uid/gid above 262 143 (6 octal
// digits), device minors above it, mtimes before 1970, from 2038 (its `| 0`) and past 2242 (11 digits),
// fractional mtimes. The layer is written by python's tarfile, the export listed and extracted by GNU tar.
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportTar } from '../../src/export/index.js';
import { encodeHeader } from '../../src/export/tar-headers.js';
import { loadFromTar } from '../../src/image/index.js';
import { parsePlatform } from '../../src/platform/index.js';
import { py, pyBuild } from '../helpers/pyimage.js';
import { runFull, requireTools, tmpDir } from '../helpers/tools.js';

const IDS = [262143, 262144, 300000, 2097151, 2097152, 4294967294];
const MTIMES = [-86400.5, -1, 0, 2 ** 31 - 1, 2 ** 31, 4102444800, 2 ** 33 - 1, 2 ** 33, 2 ** 33 + 0.25]; // ext4 holds up to 2446 (0x37fffffff)
const MINORS = [262143, 262144, 1048575];

/** GNU tar's listing of `file`, by name without a leading `./` (its owner, size, device and date fields). */
async function listing(file: string): Promise<{ lines: Map<string, string>; stderr: string }> {
  const { stdout, stderr } = await runFull('tar', ['--numeric-owner', '--full-time', '-tvf', file], { env: { ...process.env, TZ: 'UTC' } });
  const lines = new Map(stdout.trim().split('\n').map((line) => [line.split(/\s+/).at(-1)!.replace(/^\.\//, ''), line.split(/\s+/).slice(0, -1).join(' ')]));
  return { lines, stderr };
}

test('uid/gid, mtimes and device minors past the ustar encoder reach GNU tar exactly (list and extraction)', async () => {
  requireTools(['tar', 'python3']);
  if (process.getuid?.() !== 0) throw new Error('this test extracts owners as root: run it as root (bash .ci/run does)');
  const work = await tmpDir('vmimg-tar-numbers-');
  const l = [
    py.dir('n'),
    ...IDS.map((id) => py.file(`n/uid-${id}`, 'u', { uid: id, gid: id })),
    ...MTIMES.map((t) => py.file(`n/mtime-${t}`, 't', { mtime: t })),
    ...MINORS.map((minor) => ({ name: `n/chr-${minor}`, type: 'chr' as const, major: 4095, minor })),
  ];
  await pyBuild({ layers: { l }, tarDir: work, layout: { dir: join(work, 'layout'), images: [{ layers: ['l'] }], archive: join(work, 'oci.tar') } });
  const image = await loadFromTar(join(work, 'oci.tar'), { platform: parsePlatform('amd64'), cacheDir: join(work, 'cache') });
  const file = join(work, 'root.tar');
  await exportTar(image, createWriteStream(file));

  // GNU tar lists the export as it lists python's layer (its own dates: it shows -86400.5 as 00:00:00.5)
  const listed = await listing(file);
  assert.equal(listed.stderr, '', 'GNU tar lists the export without a warning');
  const layer = (await listing(join(work, 'l.tar'))).lines;
  for (const [name, line] of layer) assert.equal(listed.lines.get(name), line, name);
  assert.match(layer.get(`n/uid-${IDS.at(-1)}`)!, / 4294967294\/4294967294 /);
  assert.match(layer.get(`n/chr-1048575`)!, / 4095,1048575 /);

  const out = join(work, 'out');
  mkdirSync(out);
  await runFull('tar', ['-x', '-f', file, '-C', out, '--exclude=./n/chr-*']);
  for (const id of IDS) {
    const st = statSync(join(out, 'n', `uid-${id}`));
    assert.deepEqual([st.uid, st.gid], [id, id]);
  }
  for (const t of MTIMES) {
    const ns = statSync(join(out, 'n', `mtime-${t}`), { bigint: true }).mtimeNs;
    assert.equal(ns, BigInt(Math.floor(t)) * 1_000_000_000n + BigInt(Math.round((t - Math.floor(t)) * 1e9)), `mtime ${t}`);
  }
});

test('device numbers past 7 octal digits are written in GNU base-256, which GNU tar reads without a warning', async () => {
  requireTools(['tar']);
  const work = await tmpDir('vmimg-tar-dev-');
  const file = join(work, 'd.tar');
  const h = encodeHeader({ name: './big', type: 'character-device', mode: 0o600, uid: 0, gid: 0, mtime: 0, size: 0, devmajor: 2 ** 22 + 3, devminor: 2 ** 30 + 5 });
  writeFileSync(file, Buffer.concat([h, Buffer.alloc(1024)]));
  const listed = await runFull('tar', ['--numeric-owner', '-tvf', file]);
  assert.equal(listed.stderr, '');
  assert.match(listed.stdout, new RegExp(` ${2 ** 22 + 3},${2 ** 30 + 5} `));
});
