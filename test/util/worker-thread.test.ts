/**
 * Worker threads start from a program that node runs from a string: `node --input-type=module -e` and
 * stdin (a user's one-liner over the built package). Node hands such a program's `--input-type` on to
 * its workers, which refuse it: every hash and inflate worker failed (util/worker-thread.ts drops it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../helpers/cache.js';
import { runFull } from '../helpers/tools.js';

const hashPool = pathToFileURL(join(REPO_ROOT, 'dist', 'util', 'hash-pool.js')).href;
const program = `import { sharedHashPool } from ${JSON.stringify(hashPool)};\nconsole.log(await sharedHashPool().digest(Buffer.from('abc')));\n`;
const want = createHash('sha256').update('abc').digest('hex');

test('a worker starts from a program given with --input-type=module -e, and from stdin', async () => {
  for (const args of [['--input-type=module', '-e', program], ['--input-type', 'module', '-e', program]]) {
    const r = await runFull(process.execPath, args, { cwd: REPO_ROOT, timeoutMs: 50_000 });
    assert.equal(r.stdout.trim(), want, `${args[0]}: ${r.stderr}`);
  }
  const r = await runFull(process.execPath, ['--input-type=module'], { cwd: REPO_ROOT, timeoutMs: 50_000, input: program });
  assert.equal(r.stdout.trim(), want, `stdin: ${r.stderr}`);
});
