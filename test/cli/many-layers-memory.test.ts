/**
 * Memory of a load is bounded by the layers in flight, not by the layer count (breaker6 M1): an OCI
 * archive of many one-file gzip layers, written by python3's tarfile, loads under a generous peak RSS.
 * Before the fix every gzip layer's inflate rings stayed alive in the worker threads (~1.5 MiB a
 * layer: 300 layers ≈ 550 MiB, 1000 ≈ 1.6 GiB); the peak is measured by the kernel (python3's
 * getrusage of its child), the tree judged by GNU tar reading the exported tar.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { BIN } from './run.js';
import { pyBuild, py, type PyEntry } from '../helpers/pyimage.js';
import { run, tmpDir } from '../helpers/tools.js';

const LAYERS = 300;
/** Peak RSS allowed (KiB): a load of a few layers takes ~130 MiB; the old code took ~550 MiB here. */
const BOUND_KIB = 320 << 10;

/** Runs the command and prints its peak RSS in KiB (Linux ru_maxrss), as measured by the kernel. */
const MAXRSS_PY = 'import resource, subprocess, sys\nsubprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\nprint(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)';

let archive: string;
let cache: string;

before(async () => {
  const dir = await tmpDir('vmimg-many-');
  archive = join(dir, 'img.tar');
  cache = join(dir, 'cache');
  const layers: Record<string, PyEntry[]> = {};
  for (let i = 0; i < LAYERS; i++) layers[`l${i}`] = [py.file(`l/${i}`, String(i))];
  await pyBuild({ layers, layout: { dir: join(dir, 'layout'), images: [{ layers: Object.keys(layers), tag: 'many' }], gzip: true, archive } });
});

describe('a load of many gzip layers', () => {
  it(`keeps peak RSS under ${BOUND_KIB >> 10} MiB for ${LAYERS} one-file layers, and every file arrives`, async () => {
    const kib = Number((await run('python3', ['-c', MAXRSS_PY, process.execPath, BIN, '--cache-dir', cache, 'load', '-q', archive])).trim());
    assert.ok(kib > 0, `no peak RSS measured: ${kib}`);
    assert.ok(kib < BOUND_KIB, `peak RSS ${kib >> 10} MiB for ${LAYERS} layers: memory grows with the layer count`);
    const tarFile = join(cache, '..', 'out.tar');
    await run(process.execPath, [BIN, '--cache-dir', cache, 'export', '-q', tarFile, archive, '--format', 'tar']);
    const names = (await run('tar', ['-tf', tarFile])).split('\n').filter((n) => /^(\.\/)?l\/\d+$/.test(n));
    assert.equal(names.length, LAYERS);
  });
});
