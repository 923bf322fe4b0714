// SIGINT, SIGTERM and SIGHUP stop an export the same way (attack re-run: Ctrl-C could print
// ERR_INTERNAL "already finalized or destroyed" or leave `.NAME.tmp-*`, SIGTERM always left it): a
// real `vmimg export` child is signalled as soon as its temp file appears in the destination
// directory; it exits 128 + the signal's number with one coded line (and one JSON object with --json),
// and nothing is left beside the destination. The image holds 48 MiB of random bytes (python3),
// layered by umoci and archived by skopeo, so each export is still running when the signal comes.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, watch } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { buildBusyboxLayout } from '../helpers/busybox.js';
import { toOciArchive } from '../helpers/skopeo.js';
import { requireTools, run, tmpDir } from '../helpers/tools.js';
import { expectExit, vmimg, type CliResult } from './run.js';

let work: string;
let cache: string;
let image: string;

before(async () => {
  requireTools(['python3', 'umoci', 'skopeo']);
  work = await tmpDir('vmimg-signals-');
  cache = join(work, 'cache');
  const layer = join(work, 'big.tar');
  await run('python3', ['-c', `
import io, os, sys, tarfile
with tarfile.open(sys.argv[1], 'w') as t:
    for i in range(3):
        data = os.urandom(16 << 20)
        f = tarfile.TarInfo(f'data/blob{i}'); f.size = len(data); t.addfile(f, io.BytesIO(data))
`, layer]);
  const layout = await buildBusyboxLayout({ arch: 'amd64', tag: 'big', extraLayers: [{ rawTar: layer }] });
  const archive = await toOciArchive(layout, join(work, 'big.oci.tar'), 'big');
  image = (JSON.parse((await expectExit(0, ['--cache-dir', cache, 'load', archive, '--json', '-q'])).stdout) as { dir: string }).dir;
});

/** Runs `export DEST` in a fresh directory and sends `signal` when the export's temp file shows up. */
async function signalledExport(name: string, signal: NodeJS.Signals, extra: string[] = []): Promise<{ r: CliResult; sent: boolean; left: string[] }> {
  const dir = join(work, `${signal}-${name}`);
  mkdirSync(dir);
  let sent = false;
  const watcher = watch(dir);
  const r = await vmimg(['--cache-dir', cache, 'export', join(dir, name), image, '--no-init', ...extra], {
    onSpawn: (child) => {
      watcher.on('change', (_event, file) => {
        if (!sent && String(file).startsWith(`.${name}.tmp-`)) {
          sent = true;
          child.kill(signal);
        }
      });
    },
  });
  watcher.close();
  return { r, sent, left: readdirSync(dir) };
}

const CASES: { signal: NodeJS.Signals; exit: number; dest: string }[] = [
  { signal: 'SIGINT', exit: 130, dest: 'root.tar.gz' },
  { signal: 'SIGTERM', exit: 143, dest: 'root.cpio.gz' },
  { signal: 'SIGHUP', exit: 129, dest: 'root.img' },
];

for (const { signal, exit, dest } of CASES) {
  test(`${signal} during export ${dest}: exit ${exit}, one coded line, no temp file left`, async () => {
    const { r, sent, left } = await signalledExport(dest, signal);
    assert.ok(sent, `the export's temp file never appeared: ${r.stderr}`);
    assert.equal(r.code, exit, r.stderr);
    assert.equal(r.stderr, `vmimg: ERR_ABORTED: interrupted by ${signal}\nhint: rerun to continue: downloads resume, nothing half-written is kept\n`);
    assert.deepEqual(left, [], 'neither the destination nor a temp file');
  });
}

test('SIGTERM during export --json: one JSON error object with the exit status', async () => {
  const { r, sent, left } = await signalledExport('root.tar', 'SIGTERM', ['--json']);
  assert.ok(sent, r.stderr);
  assert.equal(r.code, 143, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.deepEqual(JSON.parse(lines[0]!), {
    error: { code: 'ERR_ABORTED', message: 'interrupted by SIGTERM', hint: 'rerun to continue: downloads resume, nothing half-written is kept', exit: 143 },
  });
  assert.deepEqual(left, []);
});
