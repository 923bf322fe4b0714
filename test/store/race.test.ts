import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlobStore } from '../../src/store/index.js';
import { childNode, REPO_ROOT } from '../helpers/cache.js';
import { content, sha256, tempRoot } from './helpers.js';
import { HANG_AFTER, RACE_SIZE } from './race-worker.js';

const here = dirname(fileURLToPath(import.meta.url));
const worker = childNode(import.meta.url).script(here, 'race-worker');
const data = content(RACE_SIZE, 'race');
const digest = sha256(data);

interface Exit { code: number | null; signal: string | null; stdout: string; stderr: string }

function run(root: string, mode: 'normal' | 'hang', log: string): { child: ChildProcess; done: Promise<Exit> } {
  const child = spawn(process.execPath, [...worker, root, mode, log], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Exit>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, done };
}

async function opens(log: string): Promise<[number, number][]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.trim().split('\n').filter(Boolean).map((l) => l.split(' ').map(Number) as [number, number]);
}

describe('fetchInto across processes', () => {
  it('two processes racing for one blob: one download, no corruption', async (t) => {
    const root = await tempRoot(t);
    const log = join(root, 'opens.log');
    const a = run(root, 'normal', log);
    const b = run(root, 'normal', log);
    const [ea, eb] = await Promise.all([a.done, b.done]);
    assert.equal(ea.code, 0, `worker A failed: ${ea.stderr}`);
    assert.equal(eb.code, 0, `worker B failed: ${eb.stderr}`);
    const results = [JSON.parse(ea.stdout), JSON.parse(eb.stdout)];
    assert.deepEqual(results.map((r) => r.fetched).sort(), [false, true], 'exactly one process downloaded');
    assert.deepEqual((await opens(log)).map(([, offset]) => offset), [0], 'the blob was requested once');
    assert.deepEqual(await readFile(new BlobStore(root).path(digest)), data);
  });

  it('a process killed mid-download leaves a partial and a stale lock; the next one resumes', async (t) => {
    const root = await tempRoot(t);
    const log = join(root, 'opens.log');
    const partial = join(root, 'partial', digest.slice(7));
    const first = run(root, 'hang', log);
    // Wait (without a time assertion) for the first process to have written its bytes.
    for (let i = 0; ; i++) {
      const size = await stat(partial).then((s) => s.size, () => 0);
      if (size >= HANG_AFTER) break;
      if (first.child.exitCode !== null || i > 6000) {
        first.child.kill('SIGKILL');
        const e = await first.done;
        assert.fail(`first worker never reached ${HANG_AFTER} bytes (exit ${e.code}): ${e.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    first.child.kill('SIGKILL');
    assert.equal((await first.done).signal, 'SIGKILL');
    assert.equal(await stat(`${partial}.lock`).then(() => true, () => false), true, 'the dead process left its lock');

    const second = run(root, 'normal', log);
    const e = await second.done;
    assert.equal(e.code, 0, `second worker failed: ${e.stderr}`);
    const res = JSON.parse(e.stdout);
    assert.equal(res.fetched, true);
    assert.equal(res.resumedFrom, HANG_AFTER);
    assert.deepEqual((await opens(log)).map(([, offset]) => offset), [0, HANG_AFTER]);
    assert.deepEqual(await readFile(new BlobStore(root).path(digest)), data);
  });
});
