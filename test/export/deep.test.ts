// A 5 000-level tree (issue 9 item 9; attacks R07, R08), written by python's tarfile and added to
// the busybox image with `umoci raw add-layer`: `ls -R`, `cat`, the tar and the initramfs exports
// all succeed and hold every level (no recursion on the depth; correctness only, the bench times it).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { buildBusyboxLayout } from '../helpers/busybox.js';
import { assertSafeExport, entryNames } from '../helpers/export-check.js';
import { toOciArchive } from '../helpers/skopeo.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { expectExit } from '../cli/run.js';

const DEPTH = 5000;
const deepFile = `/${'d/'.repeat(DEPTH - 1)}leaf`;

let cache: string;
let work: string;
let image: string;
const c = (...args: string[]): string[] => ['--cache-dir', cache, ...args];

before(async () => {
  requireTools(['python3', 'umoci', 'skopeo']);
  work = await tmpDir('vmimg-deep-');
  cache = join(work, 'cache');
  const layer = join(work, 'deep.tar');
  await run('python3', ['-c', `
import io, sys, tarfile
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    path = 'd/' * ${DEPTH - 1} + 'leaf'
    for i in range(1, ${DEPTH}):
        d = tarfile.TarInfo('d/' * i); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
    f = tarfile.TarInfo(path); data = b'at the bottom\\n'; f.size = len(data); t.addfile(f, io.BytesIO(data))
`, layer]);
  const layout = await buildBusyboxLayout({ arch: 'amd64', tag: 'deep', extraLayers: [{ rawTar: layer }] });
  const archive = await toOciArchive(layout, join(work, 'deep.oci.tar'), 'deep');
  image = (JSON.parse((await expectExit(0, c('load', archive, '--json', '-q'))).stdout) as { dir: string }).dir;
});

test(`ls -R lists all ${DEPTH} levels and cat reads the deepest file`, async () => {
  const r = await expectExit(0, c('ls', image, '/d', '-R'));
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, DEPTH - 1, 'every level below /d, the leaf included');
  assert.equal(lines.at(-1), deepFile);
  assert.equal((await expectExit(0, c('cat', image, deepFile))).stdout, 'at the bottom\n');
});

for (const format of ['tar', 'initramfs']) {
  test(`export --format ${format} holds every level, safe to extract`, async () => {
    const file = join(work, `root.${format}`);
    await expectExit(0, c('export', file, image, '--format', format, '-q'));
    const names = entryNames(await assertSafeExport(file));
    assert.ok(names.includes(deepFile.slice(1)), 'the deepest file is in the archive');
    assert.equal(names.filter((n) => n === 'd' || n.startsWith('d/')).length, DEPTH);
  });
}
