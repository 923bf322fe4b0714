/** refs.json under concurrent writers: every update is a read-modify-write under a lock, so no name is lost. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CacheLayout } from '../../src/image/cache.js';
import { readRefs } from '../../src/image/refs.js';
import { childNode, REPO_ROOT } from '../helpers/cache.js';
import { tmpDir } from '../helpers/tools.js';

const worker = childNode(import.meta.url).script(dirname(fileURLToPath(import.meta.url)), 'refs-worker');

function record(root: string, prefix: string, count: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...worker, root, prefix, String(count)], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('refs.json', () => {
  it('four processes recording names at once lose none of them', async () => {
    const root = await tmpDir('vmimg-refs-');
    const writers = ['a', 'b', 'c', 'd'];
    const results = await Promise.all(writers.map((p) => record(root, p, 25)));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const names = Object.keys((await readRefs(new CacheLayout(root))).refs).sort();
    assert.equal(names.length, 100, `names kept: ${names.length} of 100`);
    assert.deepEqual((await readdir(root)).filter((n) => n.startsWith('refs.json.')), [], 'no temp file left behind');
  });
});
