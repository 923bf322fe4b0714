/**
 * Usage errors and help: one coded line naming the command's own --help, `vmimg help CMD`, no
 * far-fetched command suggestions, a clear --arch/--platform conflict, and -q that is quiet.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from '../helpers/tools.js';
import { MULTIARCH_TAR, expectExit } from './run.js';

let cache: string;
before(async () => {
  cache = await tmpDir('vmimg-cli-usage-');
});

describe('usage errors and help', () => {
  it('a missing argument names the argument, the usage and the command help', async () => {
    const r = await expectExit(2, ['pull']);
    assert.equal(r.stderr, 'vmimg: ERR_INVALID_ARGUMENT: pull: missing REF (usage: vmimg pull <ref> [options])\nhint: vmimg pull --help shows its arguments and options\n');
    const cat = await expectExit(2, ['cat', 'IMG']);
    assert.match(cat.stderr, /^vmimg: ERR_INVALID_ARGUMENT: cat: missing PATH .*\nhint: vmimg cat --help/);
  });

  it('vmimg help CMD prints the command help, vmimg help the overview', async () => {
    for (const cmd of ['pull', 'export', 'rm']) {
      const help = await expectExit(0, ['help', cmd]);
      assert.equal(help.stdout, (await expectExit(0, [cmd, '--help'])).stdout);
      assert.match(help.stdout, new RegExp(`^vmimg ${cmd} `));
    }
    assert.equal((await expectExit(0, ['help'])).stdout, (await expectExit(0, ['--help'])).stdout);
  });

  it('an unknown command suggests only a near miss', async () => {
    const run = await expectExit(2, ['run', 'alpine']);
    assert.equal(run.stderr, 'vmimg: ERR_INVALID_ARGUMENT: unknown command "run"\nhint: vmimg --help lists the commands\n');
    const pul = await expectExit(2, ['pul', 'alpine']);
    assert.match(pul.stderr, /^hint: did you mean "vmimg pull"\?/m);
  });

  it('--arch with --platform is one coded line that says which to give', async () => {
    const r = await expectExit(2, ['load', MULTIARCH_TAR, '--arch', 'arm64', '--platform', 'linux/arm64']);
    assert.match(r.stderr, /^vmimg: ERR_INVALID_ARGUMENT: --arch and --platform cannot be used together\nhint: give one: /);
  });

  it('-q is quiet: no result block from load, no exported line', async () => {
    const load = await expectExit(0, ['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'arm64', '-q']);
    assert.deepEqual([load.stdout, load.stderr], ['', '']);
    const dst = join(await tmpDir('vmimg-cli-usage-'), 'out');
    const exp = await expectExit(0, ['--cache-dir', cache, 'export', dst, '-q']);
    assert.deepEqual([exp.stdout, exp.stderr], ['', '']);
    assert.ok(readdirSync(dst).includes('config.json'));
    const loud = await expectExit(0, ['--cache-dir', cache, 'load', MULTIARCH_TAR, '--arch', 'arm64']);
    assert.match(loud.stdout, /^platform: linux\/arm64/m, 'without -q the result block is there');
  });

  it('rm --help shows no "[required] [default: []]" noise', async () => {
    const help = (await expectExit(0, ['rm', '--help'])).stdout;
    assert.doesNotMatch(help, /\[default: \[\]\]/);
  });
});
